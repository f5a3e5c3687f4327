"""Device side: message producers (synthetic devices; later PhysioNet replay) and the message contract."""
