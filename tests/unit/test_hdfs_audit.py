"""HDFS refusals into ops.audit_log: NameNode audit lines are parsed, the pipeline user's own lines are not
refusals, and the position file makes each line count once across restarts and rotation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lakehouse.config import load_config
from lakehouse.security import hdfs_audit, refusals

T = "\t"
DENIED = (
    f"2026-11-28 04:37:04,159 INFO FSNamesystem.audit: allowed=false{T}ugi=analyst (auth:SIMPLE){T}ip=/127.0.0.1"
    f"{T}cmd=listStatus{T}src=/lakehouse/silver/vitals{T}dst=null{T}perm=null{T}proto=webhdfs"
)
ALLOWED = DENIED.replace("allowed=false", "allowed=true").replace("ugi=analyst", "ugi=lakehouse")
OWN = DENIED.replace("ugi=analyst", "ugi=lakehouse").replace("cmd=listStatus", "cmd=delete")


def test_a_refusal_is_parsed_with_who_what_where_and_when() -> None:
    r = hdfs_audit.parse(DENIED)
    assert r == hdfs_audit.Refusal(
        datetime(2026, 11, 28, 4, 37, 4, 159000, tzinfo=UTC), "analyst", "127.0.0.1", "listStatus",
        "/lakehouse/silver/vitals", "null", "webhdfs",
    )  # fmt: skip
    assert hdfs_audit.parse(ALLOWED) is None
    assert hdfs_audit.parse("2026-11-28 04:37:04,159 INFO namenode.NameNode: STARTUP_MSG") is None


def test_rows_leave_out_the_pipeline_user_and_name_the_hdfs_user() -> None:
    region = load_config().primary
    refusals = [r for r in map(hdfs_audit.parse, [DENIED, OWN]) if r is not None]
    rows = hdfs_audit.rows(region, refusals)
    assert len(refusals) == 2 and len(rows) == 1
    row = rows[0]
    assert (row["action"], row["outcome"], row["actor"]) == ("hdfs.access", "denied", "hdfs:analyst")
    assert row["target"] == "/lakehouse/silver/vitals" and row["region"] == region.name
    assert row["event_time"] == datetime(2026, 11, 28, 4, 37, 4, 159000)


def test_each_line_is_read_once_across_polls_restarts_and_rotation(tmp_path: Path) -> None:
    log, position = tmp_path / "namenode.log", tmp_path / "pos"
    log.write_text("old line\n")
    assert refusals.read_new(log, position) == ([], len("old line\n"))  # first start: from the end
    position.write_text(str(len("old line\n")))
    with log.open("a") as fh:
        fh.write(DENIED + "\n" + "partial")
    lines, at = refusals.read_new(log, position)
    assert lines == [DENIED] and at == len("old line\n") + len(DENIED) + 1  # the partial line waits
    position.write_text(str(at))
    assert refusals.read_new(log, position) == ([], at)
    log.write_text(OWN + "\n")  # rotated: shorter than the position
    assert refusals.read_new(log, position) == ([OWN], len(OWN) + 1)
