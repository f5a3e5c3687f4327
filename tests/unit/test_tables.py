"""Table names map to region paths safely; anything else is refused."""

from __future__ import annotations

import pytest

from lakehouse.config import load_config
from lakehouse.errors import LakehouseError
from lakehouse.io.tables import checkpoint_uri, table_uri


def test_table_and_checkpoint_uris_live_in_the_region() -> None:
    cfg = load_config("local")
    assert table_uri(cfg.region("europe"), "silver.vitals") == "hdfs://127.0.0.1:29000/lakehouse/silver/vitals"
    assert checkpoint_uri(cfg.primary, "bronze.telemetry").endswith("/lakehouse/_checkpoints/bronze/telemetry")


@pytest.mark.parametrize("name", ["bronze", "../etc.passwd", "bronze.telemetry/../../x", "Gold.Alerts", ""])
def test_invalid_table_names_are_refused(name: str) -> None:
    with pytest.raises(LakehouseError, match="invalid table name"):
        table_uri(load_config("local").primary, name)
