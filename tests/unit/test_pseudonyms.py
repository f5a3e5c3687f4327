"""Patient pseudonyms (lakehouse.security.pseudonyms): the key's source, the Spark and Python forms agree, and the
transform replaces raw references without touching anything else."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.security import pseudonyms

KEY = pseudonyms.purpose_key(b"0123456789abcdef0123456789abcdef", pseudonyms.PATIENT_PURPOSE)


def test_spark_and_python_pseudonyms_agree_and_depend_on_the_key(spark: SparkSession) -> None:
    raw = ["p000001", "ü-ñ", "", "x" * 300, "HOME-42"]
    df = spark.createDataFrame([(i, v) for i, v in enumerate(raw)] + [(99, None)], "i int, patient_ref string")
    out = {r["i"]: r["patient_ref"] for r in pseudonyms.pseudonymize(df, KEY).collect()}
    assert [out[i] for i in range(len(raw))] == [pseudonyms.pseudonym(v, KEY) for v in raw]
    assert out[99] is None
    expected = "pt-" + hmac.new(KEY, b"p000001", hashlib.sha256).hexdigest()[:32]
    assert out[0] == expected and len({out[i] for i in range(len(raw))}) == len(raw)
    assert pseudonyms.pseudonym("p000001", pseudonyms.purpose_key(b"another site key 0123", b"x")) != expected


def test_pseudonymizing_twice_changes_nothing(spark: SparkSession) -> None:
    """A pseudonym is left as it is (a sepsis-risk alert the scorer could not re-identify passes gold.alerts'
    pseudonymization unchanged), and the columns besides patient_ref are untouched."""
    df = spark.createDataFrame([("p1", 5.0), ("p2", 7.0)], "patient_ref string, value double")
    once = pseudonyms.pseudonymize(df, KEY)
    twice = pseudonyms.pseudonymize(once, KEY)
    assert sorted(once.collect()) == sorted(twice.collect())
    assert once.columns == df.columns and sorted(r["value"] for r in once.collect()) == [5.0, 7.0]


def test_identities_pair_each_raw_reference_with_its_pseudonym_once(spark: SparkSession) -> None:
    df = spark.createDataFrame([("p1",), ("p1",), ("p2",), (None,)], "patient_ref string")
    found = pseudonyms.identities(df, KEY)
    assert sorted((r["pseudonym"], r["patient_ref"]) for r in found.collect()) == sorted(
        (pseudonyms.pseudonym(p, KEY), p) for p in ("p1", "p2")
    )
    known = found.where(F.col("patient_ref") == "p1").withColumn("first_seen_time", F.current_timestamp())
    new = pseudonyms.new_identities(found, known).collect()
    assert [r["patient_ref"] for r in new] == ["p2"] and new[0]["first_seen_time"] is not None
    assert pseudonyms.raw_refs(known, {pseudonyms.pseudonym("p1", KEY), "pt-unknown"}) == {
        pseudonyms.pseudonym("p1", KEY): "p1"
    }


def test_the_key_comes_from_a_secret_file_never_from_config(
    cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    local = replace(cfg, state_dir=tmp_path / "state")
    monkeypatch.delenv(pseudonyms.KEY_ENV, raising=False)
    generated = pseudonyms.site_key(local)  # generated once into the state folder, private to its owner
    path = tmp_path / "state" / "secrets" / "pseudonym.key"
    assert path.stat().st_mode & 0o777 == 0o600 and pseudonyms.site_key(local) == generated
    assert len(generated) == 64 and pseudonyms.patient_key(local) == pseudonyms.purpose_key(
        generated, pseudonyms.PATIENT_PURPOSE
    )
    given = tmp_path / "site.key"
    given.write_text("f" * 64)
    monkeypatch.setenv(pseudonyms.KEY_ENV, str(given))
    assert pseudonyms.site_key(local) == b"f" * 64
    given.write_text("short")
    with pytest.raises(LakehouseError, match="shorter than 16 bytes"):
        pseudonyms.site_key(local)
    monkeypatch.setenv(pseudonyms.KEY_ENV, str(tmp_path / "missing.key"))
    with pytest.raises(LakehouseError, match="does not exist"):
        pseudonyms.site_key(local)


def test_queries_starting_together_read_the_same_generated_key(cfg: Config, tmp_path: Path) -> None:
    """The pipeline starts its queries together: each must get the one key, never an empty or half-written file
    (a query under another key would name the same patient differently)."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace
    from threading import Barrier

    for attempt in range(5):
        local = replace(cfg, state_dir=tmp_path / f"state{attempt}")
        start = Barrier(8)

        def race(_: int, local: Config = local, start: Barrier = start) -> bytes:
            start.wait()
            return pseudonyms.site_key(local)

        with ThreadPoolExecutor(8) as pool:
            keys = set(pool.map(race, range(8)))
        assert len(keys) == 1 and len(keys.pop()) == 64
        assert [p.name for p in (tmp_path / f"state{attempt}" / "secrets").iterdir()] == ["pseudonym.key"]


def test_one_off_writers_add_each_identity_once(spark: SparkSession, tmp_path: Path) -> None:
    """The registry and a backfill MERGE their raw references into restricted.patient_identities: a second
    registration of the same patients adds nothing, a new patient adds one row."""
    from lakehouse.io.delta import ensure_table
    from lakehouse.tables import SPECS

    location = str(tmp_path / "patient_identities")
    ensure_table(spark, location, SPECS[pseudonyms.IDENTITIES_TABLE])
    pseudonyms.record_identities(spark, location, ["p1", "p2", "p1"], KEY)
    pseudonyms.record_identities(spark, location, ["p2", "p3"], KEY)
    pseudonyms.record_identities(spark, location, [], KEY)
    rows = spark.read.format("delta").load(location).collect()
    assert sorted((r["pseudonym"], r["patient_ref"]) for r in rows) == sorted(
        (pseudonyms.pseudonym(p, KEY), p) for p in ("p1", "p2", "p3")
    )
    assert all(r["first_seen_time"] is not None for r in rows)
