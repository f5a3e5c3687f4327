"""Device side: message producers — synthetic devices in several dialects, and PhysioNet 2019 ICU replay."""
