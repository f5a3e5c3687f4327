"""Unit tests of the embedded stack's pure helpers (no processes started)."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from lakehouse.config import load_config
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


def test_embedded_mlflow_caches_verified_credentials_as_configured(tmp_path: Path) -> None:
    """The basic-auth app checks a password hash (scrypt, ~0.5 CPU s) on every request unless MLflow's credential
    cache is on: the server's auth config carries the profile's TTL, and MLflow's own reader takes it."""
    from mlflow.server.auth.config import read_auth_config

    base = load_config()
    for ttl in (60, 0):
        cfg = replace(
            base,
            state_dir=tmp_path,
            mlflow=replace(
                base.mlflow,
                password_file=tmp_path / "pw",
                artifacts_uri=(tmp_path / "a").as_uri(),
                auth_cache_ttl_s=ttl,
            ),
        )
        [server] = [s for s in services.services(cfg) if s.name == "mlflow"]
        assert isinstance(server, services.MlflowServer)
        server.prepare(cfg, Path("java"))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_AUTH_CONFIG_PATH", str(server.auth_config))
            assert read_auth_config().auth_cache_ttl_seconds == ttl
