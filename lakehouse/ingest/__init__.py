"""Streaming ingestion: each layer as a pure builder (works on batch frames too) plus a runner."""
