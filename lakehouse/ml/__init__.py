"""Sepsis model: point-in-time features, training on Spark, MLflow registry, scoring."""
