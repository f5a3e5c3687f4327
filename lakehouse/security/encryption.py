"""Encryption at rest of PHI columns: Parquet modular encryption, keys from a key-management client.

Parquet modular encryption (the Parquet format's own, AES-GCM) encrypts chosen columns of every data file, and
the file footer, with data keys that are wrapped by master keys held in a key-management service (KMS). A file
carries only the wrapped keys; reading it needs the KMS. AES-GCM authenticates every page and the footer, so a
file altered on disk fails to read (``TagVerificationException``) instead of returning altered data.

- Which tables and columns: a table's Delta properties (:func:`table_properties`, set by its ``TableSpec``).
  Under the ``phi`` master key: ``restricted.patient_identities.patient_ref`` (the raw patient identifier),
  ``bronze.telemetry.value`` and ``silver.quarantine.raw_value`` (device messages as received: raw patient
  reference and vital signs); every other column of those tables under the ``footer`` key. Their writes
  (appends, streaming batches, MERGE, OPTIMIZE) encrypt; other tables and Delta's log and checkpoints do not.
  Bronze and the quarantine keep a signed plaintext footer (their row counts stay readable without keys, for
  the ``deltalake`` check of ``lakehouse replicate verify``); the identities table, never replicated, does not.
- Which KMS: the Spark setting ``spark.hadoop.parquet.encryption.kms.client.class``. The embedded default is
  ``healthlake.crypto.FileKmsClient`` (``jvm/crypto``, built by ``make setup``): master keys from a local key file,
  ``$LAKEHOUSE_KMS_KEY_FILE``, else ``<state_dir>/secrets/parquet-master.keys`` (generated once, mode 0600),
  never in code or committed config. A production profile names its KMS's client in ``spark.conf`` instead.

Both regions must hold the same master keys: replication copies files byte for byte, and a promoted secondary
reads and writes them.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.security import credentials

KEY_FILE_ENV = "LAKEHOUSE_KMS_KEY_FILE"
KEY_FILE_NAME = "parquet-master.keys"
FILE_KMS_CLIENT = "healthlake.crypto.FileKmsClient"
CRYPTO_FACTORY = "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory"
FOOTER_KEY = "footer"  # master key of the footers (and, with complete columns, the non-PHI columns)
PHI_KEY = "phi"  # master key of the PHI columns
MASTER_KEYS = (FOOTER_KEY, PHI_KEY)


def key_file(cfg: Config) -> Path:
    """The embedded KMS's key file: ``$LAKEHOUSE_KMS_KEY_FILE`` (must exist and hold every master key), else
    ``<state_dir>/secrets/parquet-master.keys``, created on first use with a random 256-bit key per master key."""
    if os.environ.get(KEY_FILE_ENV):
        path = Path(os.environ[KEY_FILE_ENV])
        if not path.is_file():
            raise LakehouseError(f"{KEY_FILE_ENV}={path}: no such key file", fix="give an existing key file")
    else:
        path = credentials.secret_file(cfg, KEY_FILE_NAME)
        if not path.is_file():  # several jobs start together: one creates it, all read the same keys
            lines = [f"{k}:{base64.b64encode(secrets.token_bytes(32)).decode()}" for k in MASTER_KEYS]
            credentials.write_private(path, ("\n".join(lines) + "\n").encode(), exclusive=True)
    missing = set(MASTER_KEYS) - set(master_key_ids(path.read_text()))
    if missing:
        raise LakehouseError(f"the key file {path} lacks master keys {sorted(missing)}", fix="add keyId:base64 lines")
    return path


def master_key_ids(text: str) -> list[str]:
    """The key ids of a key file's text (``keyId:base64key`` lines; blank lines and ``#`` comments skipped)."""
    lines = (line.strip() for line in text.splitlines())
    return [line.split(":", 1)[0].strip() for line in lines if line and not line.startswith("#") and ":" in line]


def spark_conf(cfg: Config) -> dict[str, str]:
    """Session settings: Parquet's properties-driven crypto factory and the file KMS. They encrypt nothing by
    themselves (a table opts in through :func:`table_properties`); the profile's ``spark.conf`` may override them."""
    return {
        "spark.hadoop.parquet.crypto.factory.class": CRYPTO_FACTORY,
        "spark.hadoop.parquet.encryption.kms.client.class": FILE_KMS_CLIENT,
        "spark.hadoop.healthlake.kms.key.file": str(key_file(cfg)),
    }


def table_properties(*phi_columns: str, plaintext_footer: bool = False) -> tuple[tuple[str, str], ...]:
    """Delta table properties that encrypt ``phi_columns`` under the PHI key and every other column under the
    footer key (complete columns: no byte of a data file is left unauthenticated). The footer is encrypted, or
    with ``plaintext_footer`` left readable and signed (row counts for clients without keys, such as the
    ``deltalake`` reader of ``lakehouse replicate verify``; no column is readable without keys either way)."""
    properties = (
        ("parquet.encryption.footer.key", FOOTER_KEY),
        ("parquet.encryption.column.keys", f"{PHI_KEY}:{','.join(phi_columns)}"),
        ("parquet.encryption.complete.columns", "true"),
    )
    return (*properties, ("parquet.encryption.plaintext.footer", "true")) if plaintext_footer else properties
