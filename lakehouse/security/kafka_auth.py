"""Kafka's secure mode (profile key ``kafka_security.enabled``): TLS and SASL/SCRAM listeners, and ACLs.

Four SCRAM users, each allowed only its part (Kafka's ``StandardAuthorizer``, deny by default):

- ``device``: writes the telemetry topic (the producers of `lakehouse simulate` and `replay`);
- ``pipeline``: reads telemetry, writes alerts and reads them back (gold.alerts is built from the topic: the
  streaming jobs, the scorer, the exporter's offsets);
- ``clinical``: reads alerts only (clinical systems; consumer groups named ``clinical*``);
- ``admin``: the broker's own user and the only super user; creates topics and ACLs at `lakehouse stack up`.

The embedded profile generates a CA, each broker's certificate (for 127.0.0.1) and the users' passwords into
``<state_dir>/secrets/kafka`` (git-ignored, mode 0600). The plaintext listener is absent in this mode.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

from lakehouse.config import KafkaAuth, KafkaConfig, TopicsConfig
from lakehouse.errors import LakehouseError
from lakehouse.security import credentials

ADMIN, DEVICE, PIPELINE, CLINICAL = "admin", "device", "pipeline", "clinical"
USERS = (ADMIN, DEVICE, PIPELINE, CLINICAL)
CLINICAL_GROUPS = "clinical"  # prefix of the consumer groups clinical systems may use
SPARK_GROUPS = "spark-kafka-"  # prefix of the groups Spark's Kafka source and sink name


def password(auth: KafkaAuth, user: str) -> str:
    fix = "run `lakehouse stack up` (it generates the embedded stack's credentials) or mount the secret"
    return credentials.read_secret(auth.password_file(user), f"the Kafka password of user {user!r}", fix)


def client_kwargs(kafka: KafkaConfig, user: str = PIPELINE) -> dict[str, Any]:
    """kafka-python settings for ``user`` (nothing on a plaintext profile)."""
    if kafka.auth is None:
        return {}
    return {
        "security_protocol": "SASL_SSL", "sasl_mechanism": kafka.auth.mechanism, "sasl_plain_username": user,
        "sasl_plain_password": password(kafka.auth, user), "ssl_cafile": str(kafka.auth.ca_file),
        "ssl_check_hostname": True,
    }  # fmt: skip


def java_client_properties(kafka: KafkaConfig, user: str = PIPELINE) -> dict[str, str]:
    """Kafka Java client settings for ``user`` (Spark's source and sink take them with a ``kafka.`` prefix)."""
    if kafka.auth is None:
        return {}
    secret = password(kafka.auth, user).replace("\\", "\\\\").replace('"', '\\"')
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": kafka.auth.mechanism,
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{secret}";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(kafka.auth.ca_file),
    }


def spark_options(kafka: KafkaConfig, user: str = PIPELINE) -> dict[str, str]:
    return {f"kafka.{k}": v for k, v in java_client_properties(kafka, user).items()}


# -- the broker side (embedded stack) ---------------------------------------------------------------------------


def ensure_material(auth: KafkaAuth) -> None:
    """The CA (key and certificate) and a password per user, generated once into ``auth.secrets_dir``."""
    import secrets

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    for user in USERS:
        if not auth.password_file(user).is_file():
            credentials.write_private(auth.password_file(user), secrets.token_urlsafe(24).encode())
    key_file = auth.secrets_dir / "ca-key.pem"
    if auth.ca_file.is_file() and key_file.is_file():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lakehouse local Kafka CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pkcs8 = serialization.PrivateFormat.PKCS8
    credentials.write_private(
        key_file, key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
    )
    credentials.write_private(auth.ca_file, cert.public_bytes(serialization.Encoding.PEM))


def broker_keystore(auth: KafkaAuth, host: str, path: Path) -> None:
    """A PEM keystore for a broker at ``host`` (its key, its certificate signed by the CA, the CA), once."""
    if path.is_file():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key((auth.secrets_dir / "ca-key.pem").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(auth.ca_file.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    credentials.write_private(path, private + cert.public_bytes(pem) + ca.public_bytes(pem))


def broker_properties(auth: KafkaAuth, host: str, port: int, controller_port: int, keystore: Path) -> list[str]:
    """server.properties lines of a secure single-node broker: clients only on SASL_SSL (the controller's own
    listener stays on loopback for the KRaft quorum), ACLs enforced, deny when no ACL matches."""
    admin = password(auth, ADMIN).replace("\\", "\\\\").replace('"', '\\"')
    mech = auth.mechanism
    jaas = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" password="{admin}";'
    return [
        f"listeners=SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners=SASL_SSL://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=SASL_SSL",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        f"sasl.enabled.mechanisms={mech}",
        f"sasl.mechanism.inter.broker.protocol={mech}",
        f"listener.name.sasl_ssl.{mech.lower()}.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={auth.ca_file}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # the controller listener's (loopback, KRaft-internal) principal is ANONYMOUS; clients have no such path
        f"super.users=User:{ADMIN};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found=false",
    ]


def scram_format_args(auth: KafkaAuth) -> list[str]:
    """`kafka-storage format` arguments that create every user's SCRAM credential with the metadata log."""
    return [a for u in USERS for a in ("--add-scram", f"{auth.mechanism}=[name={u},password={password(auth, u)}]")]


def acl_bindings(topics: TopicsConfig) -> list[Any]:
    """Who may do what: see the module docstring."""
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern
    from kafka.admin import ResourceType as R

    def allow(user: str, op: Any, kind: Any, name: str, prefixed: bool = False) -> Any:
        pattern = ACLResourcePatternType.PREFIXED if prefixed else ACLResourcePatternType.LITERAL
        return ACL(f"User:{user}", "*", op, ACLPermissionType.ALLOW, ResourcePattern(kind, name, pattern))

    t, a, op = topics.telemetry, topics.alerts, ACLOperation
    return [
        allow(DEVICE, op.WRITE, R.TOPIC, t), allow(DEVICE, op.DESCRIBE, R.TOPIC, t),
        allow(PIPELINE, op.READ, R.TOPIC, t), allow(PIPELINE, op.DESCRIBE, R.TOPIC, t),
        allow(PIPELINE, op.WRITE, R.TOPIC, a), allow(PIPELINE, op.DESCRIBE, R.TOPIC, a),
        allow(PIPELINE, op.READ, R.TOPIC, a),  # the alerts stream builds gold.alerts from the topic
        allow(PIPELINE, op.READ, R.GROUP, SPARK_GROUPS, prefixed=True),
        allow(CLINICAL, op.READ, R.TOPIC, a), allow(CLINICAL, op.DESCRIBE, R.TOPIC, a),
        allow(CLINICAL, op.READ, R.GROUP, CLINICAL_GROUPS, prefixed=True),
    ]  # fmt: skip


def provision(kafka: KafkaConfig, topics: TopicsConfig) -> None:
    """As ``admin``: create the telemetry and alerts topics and the ACLs (both idempotent)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap, client_id="lakehouse-provision",
                             **client_kwargs(kafka, ADMIN))  # fmt: skip
    try:
        missing = [t for t in (topics.telemetry, topics.alerts) if t not in admin.list_topics()]
        if missing:
            admin.create_topics([NewTopic(t, topics.partitions, topics.replication_factor) for t in missing])
        result = admin.create_acls(acl_bindings(topics))
        if result["failed"]:
            raise LakehouseError(f"Kafka refused ACLs: {result['failed']}", fix="check the broker's log")
    finally:
        admin.close()
