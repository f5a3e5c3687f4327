"""Kafka's secure mode as configuration: clients get SASL_SSL settings only when the profile enables it, the
broker's refusals parse into audit rows, and the ACLs give each user only its part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lakehouse.config import CONF_DIR, load_config
from lakehouse.errors import LakehouseError
from lakehouse.security import kafka_audit, kafka_auth

DENIED = (
    "[2026-11-28 15:28:47,377] INFO Principal = User:clinical is Denied operation = DESCRIBE from host = 127.0.0.1 "
    "on resource = Topic:LITERAL:telemetry.vitals for request = Metadata with resourceRefCount = 1 based on rule "
    "DefaultDeny (kafka.authorizer.logger)"
)
FAILED = (
    "[2026-11-28 15:29:20,483] INFO [SocketServer listenerType=BROKER, nodeId=1] Failed authentication with "
    "/127.0.0.1 (channelId=127.0.0.1:39092-127.0.0.1:59382-2-3) (Authentication failed during authentication due "
    "to invalid credentials with SASL mechanism SCRAM-SHA-512) (org.apache.kafka.common.network.Selector)"
)
ALLOWED = DENIED.replace("is Denied", "is Allowed")


def _secure(tmp_path: Path) -> Path:
    data = yaml.safe_load((CONF_DIR / "local.yaml").read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["kafka_security"] = {"enabled": True}
    path = tmp_path / "secure.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_embedded_default_is_plaintext_and_the_secure_mode_one_key_away(tmp_path: Path) -> None:
    plain = load_config("local").primary.kafka
    assert plain.auth is None and kafka_auth.client_kwargs(plain) == {} and kafka_auth.spark_options(plain) == {}
    cfg = load_config(str(_secure(tmp_path)))
    kafka = cfg.primary.kafka
    assert kafka.auth is not None and kafka.auth.secrets_dir == tmp_path / "state" / "secrets" / "kafka"
    assert all(r.kafka.auth == kafka.auth for r in cfg.regions.values())
    with pytest.raises(LakehouseError, match="stack up"):  # no credentials generated yet: a clear error
        kafka_auth.client_kwargs(kafka, kafka_auth.DEVICE)
    kafka_auth.ensure_material(kafka.auth)
    settings = kafka_auth.client_kwargs(kafka, kafka_auth.DEVICE)
    assert settings["security_protocol"] == "SASL_SSL" and settings["sasl_plain_username"] == "device"
    assert settings["sasl_plain_password"] == kafka.auth.password_file("device").read_text()
    spark = kafka_auth.spark_options(kafka, kafka_auth.PIPELINE)
    assert spark["kafka.security.protocol"] == "SASL_SSL" and 'username="pipeline"' in spark["kafka.sasl.jaas.config"]
    assert spark["kafka.ssl.truststore.location"] == str(kafka.auth.ca_file)
    passwords = {kafka.auth.password_file(u).read_text() for u in kafka_auth.USERS}
    assert len(passwords) == len(kafka_auth.USERS)  # one secret per user


def test_the_acls_give_devices_telemetry_the_pipeline_both_and_clinicians_alerts(tmp_path: Path) -> None:
    topics = load_config("local").topics
    grants = {
        (a.principal, a.operation.name, a.resource_pattern.resource_name) for a in kafka_auth.acl_bindings(topics)
    }
    writes = {(p, t) for p, op, t in grants if op == "WRITE"}
    reads = {(p, t) for p, op, t in grants if op == "READ" and t in (topics.telemetry, topics.alerts)}
    assert writes == {("User:device", topics.telemetry), ("User:pipeline", topics.alerts)}
    # the pipeline reads its own alert events back: the alerts stream builds gold.alerts from the topic
    assert reads == {
        ("User:pipeline", topics.telemetry),
        ("User:pipeline", topics.alerts),
        ("User:clinical", topics.alerts),
    }


def test_broker_refusals_become_denied_audit_rows() -> None:
    denied, failed = kafka_audit.parse(DENIED, "asia"), kafka_audit.parse(FAILED, "europe")
    assert denied is not None and failed is not None
    assert (denied["actor"], denied["target"], denied["region"], denied["outcome"]) == (
        "kafka:clinical", "Topic:telemetry.vitals", "asia", "denied",
    )  # fmt: skip
    assert json.loads(denied["detail"])["operation"] == "DESCRIBE"
    assert (failed["actor"], failed["target"], failed["region"]) == (
        "kafka:unauthenticated",
        "authentication",
        "europe",
    )
    assert "invalid credentials" in json.loads(failed["detail"])["reason"]
    assert kafka_audit.parse(ALLOWED, "asia") is None
    assert (
        kafka_audit.parse("[2026-11-28 15:28:47,377] INFO Kafka Server started (kafka.server.KafkaRaftServer)", "asia")
        is None
    )
