"""Synthetic devices are deterministic and well-formed; table names map to region paths safely."""

from __future__ import annotations

from collections import defaultdict

import pytest

from lakehouse.config import load_config
from lakehouse.devices import synthetic
from lakehouse.errors import LakehouseError
from lakehouse.io.tables import checkpoint_uri, table_uri


def test_messages_are_deterministic_with_per_device_sequences() -> None:
    first = list(synthetic.messages(120, devices=7, seed=3))
    again = list(synthetic.messages(120, devices=7, seed=3))
    assert [m["message_id"] for _, m in first] == [m["message_id"] for _, m in again]
    assert len({m["message_id"] for _, m in first}) == 120
    seqs: dict[str, list[int]] = defaultdict(list)
    for key, msg in first:
        assert key == msg["device_id"]
        assert {m["vital"] for m in msg["measurements"]} == set(synthetic.VITALS)
        seqs[key].append(msg["seq"])
    assert len(seqs) == 7
    assert all(s == list(range(len(s))) for s in seqs.values())


def test_table_and_checkpoint_uris_live_in_the_region() -> None:
    cfg = load_config("local")
    assert table_uri(cfg.region("europe"), "silver.vitals") == "hdfs://127.0.0.1:29000/lakehouse/silver/vitals"
    assert checkpoint_uri(cfg.primary, "bronze.telemetry").endswith("/lakehouse/_checkpoints/bronze/telemetry")


@pytest.mark.parametrize("name", ["bronze", "../etc.passwd", "bronze.telemetry/../../x", "Gold.Alerts", ""])
def test_invalid_table_names_are_refused(name: str) -> None:
    with pytest.raises(LakehouseError, match="invalid table name"):
        table_uri(load_config("local").primary, name)
