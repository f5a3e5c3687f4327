"""Data quality: expectation suites as data (suites), the great-expectations facade (gx_facade) and the
severity gate that routes failures and records results (gate)."""
