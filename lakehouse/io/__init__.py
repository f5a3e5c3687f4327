"""I/O layer: where tables and checkpoints live, and how Kafka is read and written. No transforms here."""
