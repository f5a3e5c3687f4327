"""Healthcare IoT lakehouse: device telemetry from Kafka into bronze/silver/gold Delta tables on HDFS."""

__version__ = "0.1.0"
