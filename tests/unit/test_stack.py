"""Unit tests of the embedded stack's pure helpers (no processes started)."""

from __future__ import annotations

import base64

from lakehouse.stack import services


def test_cluster_id_never_starts_with_a_dash() -> None:
    # 0xF8 encodes to '-' as the first URL-safe base64 character: kafka-storage would
    # read such an id as an option ("--cluster-id: expected one argument").
    draws = iter([b"\xf8" + bytes(15), b"\x10" + bytes(15)])
    cid = services.new_cluster_id(lambda n: next(draws))
    assert not cid.startswith("-")
    assert base64.urlsafe_b64decode(cid + "==") == b"\x10" + bytes(15)


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {services.new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16
