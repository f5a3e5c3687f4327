"""Security controls that are not part of one layer: the secrets scan."""
