"""Encryption at rest (lakehouse.security.encryption): restricted.patient_identities written through its table
spec keeps the raw identifiers out of the bytes of its data files, is unreadable without the KMS's keys, and a
file altered on disk fails to read instead of returning altered rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.io.delta import ensure_table
from lakehouse.security import encryption, pseudonyms
from lakehouse.tables import SPECS

KEY = pseudonyms.purpose_key(b"0123456789abcdef0123456789abcdef", pseudonyms.PATIENT_PURPOSE)
RAW = [f"MRN-{n:06d}-SMITH" for n in range(40)]


def _data_files(location: Path) -> list[Path]:
    return sorted(p for p in location.glob("*.parquet"))


@pytest.fixture(scope="module")
def identities(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    location = tmp_path_factory.mktemp("enc") / "patient_identities"
    ensure_table(spark, str(location), SPECS[pseudonyms.IDENTITIES_TABLE])
    spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ('delta.checkpointInterval' = '2')")
    for start in range(0, len(RAW), 10):  # four MERGE commits: a checkpoint is written at versions 2 and 4
        pseudonyms.record_identities(spark, str(location), RAW[start : start + 10], KEY)
    return location


def test_the_table_reads_back_whole_through_the_kms(spark: SparkSession, identities: Path) -> None:
    rows = spark.read.format("delta").load(str(identities)).collect()
    assert sorted((r["pseudonym"], r["patient_ref"]) for r in rows) == sorted(
        (pseudonyms.pseudonym(p, KEY), p) for p in RAW
    )
    # Delta's own log is plaintext and readable: the table's checkpoints were written
    assert list((identities / "_delta_log").glob("*.checkpoint.parquet"))


def test_raw_identifiers_are_not_in_the_data_files_and_other_readers_cannot_open_them(identities: Path) -> None:
    import pyarrow.parquet as pq

    files = _data_files(identities)
    assert files
    for path in files:
        data = path.read_bytes()
        assert data[:4] == b"PARE" and data[-4:] == b"PARE", "encrypted footer mode"
        assert not any(raw.encode() in data for raw in RAW)
        assert b"pt-" not in data, "complete columns: the pseudonyms are encrypted too"
        with pytest.raises(OSError, match="(?i)encrypt"):
            pq.read_table(path)


@pytest.mark.parametrize("where", ["column data", "footer"])
def test_a_tampered_file_fails_to_read(spark: SparkSession, identities: Path, tmp_path: Path, where: str) -> None:
    """One bit flipped in a page of the first column or in the encrypted footer: AES-GCM's tag check fails.
    The file's checksum is dropped, as an attacker rewriting the file would make it match (HDFS recomputes it)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(identities, copy)
    victim = _data_files(copy)[0]
    (victim.parent / f".{victim.name}.crc").unlink()
    data = bytearray(victim.read_bytes())
    data[40 if where == "column data" else len(data) - 100] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.raises(Exception, match="TagVerificationException|Tag mismatch"):
        spark.read.format("delta").load(str(copy)).collect()


def test_other_tables_stay_plaintext(spark: SparkSession, tmp_path: Path) -> None:
    """The session's crypto factory encrypts only tables whose properties ask for it."""
    import pyarrow.parquet as pq

    location = tmp_path / "plain"
    spark.createDataFrame([("pt-1", 1)], "patient_ref string, n int").write.format("delta").save(str(location))
    values = [v for path in _data_files(location) for v in pq.read_table(path).column("patient_ref").to_pylist()]
    assert values == ["pt-1"]


def test_the_key_file_is_generated_once_and_checked(
    cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    sandbox = dataclasses.replace(cfg, state_dir=tmp_path / "state")
    monkeypatch.delenv(encryption.KEY_FILE_ENV, raising=False)
    path = encryption.key_file(sandbox)
    first = path.read_text()
    assert encryption.key_file(sandbox) == path and path.read_text() == first
    assert sorted(encryption.master_key_ids(first)) == sorted(encryption.MASTER_KEYS)
    assert path.stat().st_mode & 0o777 == 0o600
    partial = tmp_path / "partial.keys"
    partial.write_text("# only one key\nfooter:" + "A" * 44 + "\n")
    monkeypatch.setenv(encryption.KEY_FILE_ENV, str(partial))
    with pytest.raises(LakehouseError, match="lacks master keys.*phi"):
        encryption.key_file(sandbox)
    monkeypatch.setenv(encryption.KEY_FILE_ENV, str(tmp_path / "absent.keys"))
    with pytest.raises(LakehouseError, match="no such key file"):
        encryption.key_file(sandbox)


def test_bronze_payloads_are_encrypted_and_its_row_counts_stay_readable(spark: SparkSession, tmp_path: Path) -> None:
    """bronze.telemetry (and silver.quarantine) encrypt the raw payload with a signed plaintext footer: the
    deltalake check of `lakehouse replicate verify` counts rows without keys; no column is readable without."""
    import datetime as dt

    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from lakehouse.ingest.bronze import BRONZE_SCHEMA

    location = tmp_path / "telemetry"
    ensure_table(spark, str(location), SPECS["bronze.telemetry"])
    now = dt.datetime(2026, 12, 3, 8, 0)
    rows = [(f"dev-{n}", f'{{"patient_ref": "{RAW[n]}", "hr": 80}}'.encode(), "telemetry.vitals", 0, n, now, now,
             now.date()) for n in range(len(RAW))]  # fmt: skip
    spark.createDataFrame(rows, BRONZE_SCHEMA).write.format("delta").mode("append").save(str(location))
    assert spark.read.format("delta").load(str(location)).where("value IS NOT NULL").count() == len(RAW)
    files = list(location.rglob("*.parquet"))
    assert files
    for path in files:
        data = path.read_bytes()
        assert data[:4] == data[-4:] == b"PAR1", "plaintext (signed) footer"
        assert not any(raw.encode() in data for raw in RAW)
        with pytest.raises(OSError, match="(?i)decrypt"):
            pq.read_table(path, columns=["topic"])
    assert DeltaTable(str(location)).to_pyarrow_dataset().count_rows() == len(RAW)
