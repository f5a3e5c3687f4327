"""The replication rules that need no service: which files a commit references, residency decisions, what a
continuous replicator does when its storage does not answer."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from lakehouse.config import PSEUDONYMOUS_PROPERTY
from lakehouse.errors import LakehouseError
from lakehouse.replication import deltalog, fencing
from lakehouse.replication.fencing import RegionState
from lakehouse.replication.policy import ResidencyViolation, check_residency


def commit(*actions: dict[str, object]) -> bytes:
    return "\n".join(json.dumps(a) for a in actions).encode()


def test_deletion_vector_path_follows_the_protocol_example() -> None:
    # PROTOCOL.md, "Deletion Vector Descriptor Schema": prefix "ab" + Z85-encoded UUID
    dv = {"storageType": "u", "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^", "offset": 4, "sizeInBytes": 40}
    assert deltalog.deletion_vector_path(dv) == "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
    assert (
        deltalog.deletion_vector_path(
            {"storageType": "i", "pathOrInlineDv": "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L"}
        )
        is None
    )


def test_a_commit_references_its_data_change_and_deletion_vector_files() -> None:
    dv = {
        "storageType": "u",
        "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^",
        "offset": 1,
        "sizeInBytes": 36,
        "cardinality": 2,
    }
    parsed = deltalog.parse_commit(
        7,
        commit(
            {"commitInfo": {"operation": "MERGE", "timestamp": 1700000000000}},
            {"metaData": {"configuration": {PSEUDONYMOUS_PROPERTY: "pseudonymous"}}},
            {
                "add": {
                    "path": "d=2026-01-01/part%20one.parquet",
                    "size": 10,
                    "modificationTime": 5,
                    "deletionVector": dv,
                }
            },
            {"cdc": {"path": "_change_data/cdc-1.parquet", "size": 3}},
            {"remove": {"path": "d=2026-01-01/old.parquet"}},
        ),
    )
    assert parsed.files == (
        "d=2026-01-01/part one.parquet",
        "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin",
        "_change_data/cdc-1.parquet",
    )
    assert parsed.removed == ("d=2026-01-01/old.parquet",)
    assert parsed.operation == "MERGE" and parsed.configuration == {PSEUDONYMOUS_PROPERTY: "pseudonymous"}
    assert parsed.sizes["d=2026-01-01/part one.parquet"] == (10, 5)


def test_a_shallow_clone_path_is_refused() -> None:
    with pytest.raises(LakehouseError, match="shallow clone"):
        deltalog.parse_commit(0, commit({"add": {"path": "hdfs://nn:9000/other/table/part-0.parquet"}}))


def test_log_listing_helpers() -> None:
    names = ["00000000000000000000.json", "00000000000000000010.json", "00000000000000000010.checkpoint.parquet",
             "00000000000000000010.crc", "_last_checkpoint", ".00000000000000000011.json.replicating"]  # fmt: skip
    assert deltalog.versions(names) == [0, 10]
    assert deltalog.checkpoint_files(names, 10) == ["00000000000000000010.checkpoint.parquet"]


@pytest.mark.parametrize(
    ("policy", "configuration", "refused"),
    [
        ("allowed", None, False),
        ("forbidden", {PSEUDONYMOUS_PROPERTY: "pseudonymous"}, True),
        ("pseudonymous", None, True),
        ("pseudonymous", {PSEUDONYMOUS_PROPERTY: "no"}, True),
        ("pseudonymous", {PSEUDONYMOUS_PROPERTY: "pseudonymous"}, False),
    ],
)
def test_residency(policy: str, configuration: dict[str, str] | None, refused: bool) -> None:
    if refused:
        with pytest.raises(ResidencyViolation):
            check_residency("silver.vitals", policy, configuration, 3)
    else:
        check_residency("silver.vitals", policy, configuration, 3)


def _state(epoch: int, primary: str) -> RegionState:
    return RegionState(epoch, primary, "2026-12-03T00:00:00+00:00", "test")


def test_the_state_in_force_is_the_highest_epoch_held_else_the_configured_primary() -> None:
    assert fencing.in_force([None, None], "asia") == RegionState(0, "asia", "", "configured primary")
    assert fencing.in_force([_state(1, "europe"), None], "asia").primary == "europe"
    # a region back from a disaster holds an older epoch: the newer one wins, in either order
    held = [_state(2, "asia"), _state(3, "europe")]
    assert fencing.in_force(held, "asia").epoch == 3 and fencing.in_force(held[::-1], "asia").primary == "europe"


def test_replication_direction_defaults_follow_the_primary_in_force() -> None:
    regions = ["asia", "europe"]
    assert fencing.direction(regions, "asia", None, None) == ("asia", "europe")
    assert fencing.direction(regions, "europe", "", "") == ("europe", "asia")  # after a failover (a DAG's empty params)
    assert fencing.direction(regions, "europe", "asia", None) == ("asia", "europe")  # named: as asked
    with pytest.raises(LakehouseError, match="same region"):
        fencing.direction(regions, "asia", None, "asia")
    with pytest.raises(LakehouseError, match="3 regions"):
        fencing.direction([*regions, "us"], "asia", None, None)


def test_a_continuous_replicator_outlives_a_failed_pass_and_gives_up_on_a_lasting_failure() -> None:
    """A pass that raised (here: HDFS refusing connections) is reported and tried again at the next interval; the
    replicator ends with the error only after MAX_FAILED_PASSES in a row (CI once lost one to a single bad pass)."""
    from lakehouse.config import load_config
    from lakehouse.replication import replicator

    cfg = load_config()

    def unreachable(name: str) -> Any:
        region = cfg.regions[name]
        return replace(region, hdfs=replace(region.hdfs, webhdfs_url="http://127.0.0.1:9"))  # nothing listens

    lines: list[str] = []
    rep = replicator.Replicator(unreachable("asia"), unreachable("europe"), dict(cfg.replication.tables), 2,
                                lines.append)  # fmt: skip
    replicator.run_continuous(rep, 0.01, passes=replicator.MAX_FAILED_PASSES - 1)
    failed = [line for line in lines if line.startswith("pass failed")]
    assert len(failed) == replicator.MAX_FAILED_PASSES - 1, lines
    assert "HDFS of region asia at http://127.0.0.1:9 does not answer" in failed[0]
    lines.clear()
    with pytest.raises(LakehouseError, match="does not answer"):
        replicator.run_continuous(rep, 0.01)
    assert len([line for line in lines if line.startswith("pass failed")]) == replicator.MAX_FAILED_PASSES - 1


def test_a_pass_whose_source_dies_mid_way_still_writes_what_the_target_holds(tmp_path: Any) -> None:
    """A failover reads the target's ops.replication_state: a pass that copied some tables and then lost its source
    (here, its audit record fails as a dead NameNode's would) writes those tables' state before the error goes on,
    so the failover never reads the pass before (a drill's state had claimed less than europe held)."""
    from pathlib import Path

    from lakehouse.config import load_config
    from lakehouse.replication import replicator, state

    cfg = load_config()

    def local(name: str) -> Any:  # a region whose tables live in tmp_path (the state table is a real Delta table)
        region = cfg.regions[name]
        return replace(region, hdfs=replace(region.hdfs, namenode_uri=Path(tmp_path, name).as_uri()))

    class SourceDiesAfterTheCopies(replicator.Replicator):
        def _one(self, table: str) -> replicator.TableResult:  # the copies themselves run against HDFS elsewhere
            return replicator.TableResult(table, "replicated", replicated_version=7, source_version=7, versions=2)

        def _record(self, out: replicator.PassResult) -> None:
            raise ConnectionError("HDFS of region asia: Connection refused")

    rep = SourceDiesAfterTheCopies(local("asia"), local("europe"), {"gold.a": "allowed", "gold.b": "allowed"})
    rep._secured = True  # no folders to secure on local files
    with pytest.raises(ConnectionError, match="Connection refused"):
        rep._pass(None, write_state=True)
    rows = {r["table"]: r for r in state.read(rep.target)}
    assert set(rows) == {"gold.a", "gold.b"}
    assert {r["replicated_version"] for r in rows.values()} == {7}
