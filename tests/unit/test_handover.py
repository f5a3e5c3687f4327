"""The pipeline's status and a failover's stop request as read by both sides (lakehouse.replication.handover);
their round trip through a region's HDFS runs in tests/integration/test_replication.py and the DR drills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lakehouse.replication.handover import FRESH_S, PipelineStatus, StopRequest, holds, running


def status(state: str, age_s: float, stop_request: str | None = None) -> PipelineStatus:
    updated = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
    return PipelineStatus("asia", state, 3, "host-a", 4242, updated, stop_request)


def test_a_status_is_alive_while_fresh_and_not_stopped() -> None:
    assert status("running", 1.0).alive() and status("standby", FRESH_S - 5).alive()
    assert not status("running", FRESH_S + 5).alive(), "a process that stopped writing died"
    assert not status("stopped", 0.0).alive()
    assert status("running", 12.0).age_s() >= 12.0
    assert status("running", 0.0).where() == "pid 4242 on host-a"
    assert [status(s, 0.0).shown() for s in ("running", "standby", "stopped")] == ["running", "standby", "stopped"]
    assert status("running", FRESH_S + 5).shown() == "stale" and status("stopped", FRESH_S + 5).shown() == "stopped"


def test_only_a_fresh_running_pipeline_is_running() -> None:
    assert running(status("running", 0.0))
    assert not running(None) and not running(status("standby", 0.0)) and not running(status("stopped", 0.0))
    assert not running(status("running", FRESH_S + 1))


def test_a_stop_request_holds_only_for_its_epoch() -> None:
    request = StopRequest("id-1", 3, datetime.now(UTC).isoformat(), "planned failover asia -> europe")
    assert holds(request, 3)
    assert not holds(request, 4), "a request of an earlier epoch is spent once a failover moved the epoch on"
    assert not holds(None, 3)


def test_on_this_host_a_status_whose_process_is_gone_is_not_alive() -> None:
    """A pipeline killed with SIGKILL writes no last word: on its own host, its missing process tells."""
    import os
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = datetime.now(UTC).isoformat()
    here = socket.gethostname()
    assert not PipelineStatus("asia", "running", 1, here, gone.pid, now).alive()
    assert PipelineStatus("asia", "running", 1, here, os.getpid(), now).alive()
    assert PipelineStatus("asia", "running", 1, "another-host", gone.pid, now).alive(), "elsewhere: its reports tell"
