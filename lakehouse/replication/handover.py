"""A region's pipeline as a failover sees it, on whatever host it runs: its status and a failover's stop request.

Both live in the region's own HDFS, beside the region state (``<root>/_dr/``), so a failover run by the scheduler
on one host can stop the primary's pipeline and find the secondary's warm standby on others (the cluster
profile: each region's pipeline is a long-running service, docker-compose.yml), exactly as on one machine:

    _dr/pipeline.json        written by the region's pipeline process: {"region", "state": standby | running |
                             stopped, "epoch", "host", "pid", "updated", "stop_request"}, at each change of state
                             and every ``HEARTBEAT_S`` while it lives; older than ``FRESH_S``: nothing runs there
    _dr/pipeline.stop.json   written by a planned failover: {"id", "epoch", "requested", "by"}: the pipeline that
                             runs under that epoch stops its queries cleanly, records ``stopped`` with the request's
                             id and ends; no pipeline starts (or leaves its standby) under that epoch while it holds

A region runs one pipeline: a second one refuses to start, or keeps standing by, while another reports running.
A failover that does not promote withdraws its request (the region's standby resumes at once). The request is
what makes a planned failover's RPO 0 on every profile: the final replication pass starts only once the primary
acknowledged that its queries stopped, so nothing commits there after the pass.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from lakehouse.config import RegionConfig
from lakehouse.io.hdfs import Hdfs
from lakehouse.stack import process

STATUS_FILE = "_dr/pipeline.json"
STOP_FILE = "_dr/pipeline.stop.json"
HEARTBEAT_S = 5.0  # a living pipeline rewrites its status this often
FRESH_S = 30.0  # a status older than this is a pipeline that died without saying so
STATES = ("standby", "running", "stopped")


@dataclass(frozen=True)
class PipelineStatus:
    """What the region's pipeline process said last."""

    region: str
    state: str
    epoch: int
    host: str
    pid: int
    updated: str
    stop_request: str | None = None

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds since it was written."""
        return ((now or datetime.now(UTC)) - datetime.fromisoformat(self.updated)).total_seconds()

    def alive(self, now: datetime | None = None) -> bool:
        """A pipeline process (standby or running) that wrote within ``FRESH_S`` (and, on this host, whose process
        still exists: one killed with SIGKILL says nothing)."""
        if self.state == "stopped" or self.age_s(now) > FRESH_S:
            return False
        return self.host != socket.gethostname() or process.is_alive(self.pid)

    def shown(self) -> str:
        """Its state as ops read it: ``stale`` for a process that stopped reporting without saying it stopped."""
        return self.state if self.state == "stopped" or self.alive() else "stale"

    def where(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class StopRequest:
    """A failover's request that the pipeline running under ``epoch`` stop."""

    id: str
    epoch: int
    requested: str
    by: str


def _path(region: RegionConfig, name: str) -> str:
    return "/" + region.lakehouse_root.strip("/") + "/" + name


def _read(region: RegionConfig, name: str, timeout_s: float, confirm: bool = True) -> dict[str, object] | None:
    """The JSON document ``name`` of the region, or None. A rewrite (:meth:`Hdfs.publish`: delete, then rename)
    leaves no file for a few milliseconds: with ``confirm`` an absent file is looked for once more, 0.2 s later,
    before it counts as absent."""
    hdfs = Hdfs(region, timeout_s=timeout_s)
    path = _path(region, name)
    for attempt in range(2 if confirm else 1):
        if hdfs.status(path) is not None:
            try:
                return dict(json.loads(hdfs.read(path)))
            except Exception:  # replaced between the status and the read: look again
                if attempt:
                    raise
        if not attempt:
            time.sleep(0.2)
    return None


def read_status(region: RegionConfig, timeout_s: float = 10.0) -> PipelineStatus | None:
    """The region's pipeline status (None: no pipeline ever wrote one); raises when the region's HDFS does not
    answer."""
    found = _read(region, STATUS_FILE, timeout_s)
    return None if found is None else PipelineStatus(**found)  # type: ignore[arg-type]


def write_status(region: RegionConfig, state: str, epoch: int, stop_request: str | None = None) -> PipelineStatus:
    """Publish this process's status (atomically: a reader sees the old or the new document)."""
    if state not in STATES:
        raise ValueError(f"unknown pipeline state {state!r}")
    status = PipelineStatus(region.name, state, epoch, socket.gethostname(), os.getpid(),
                            datetime.now(UTC).isoformat(), stop_request)  # fmt: skip
    hdfs = Hdfs(region, timeout_s=10.0)
    hdfs.makedirs(_path(region, STATUS_FILE).rsplit("/", 1)[0])
    hdfs.publish(_path(region, STATUS_FILE), json.dumps(asdict(status)).encode())
    return status


def read_stop(region: RegionConfig, timeout_s: float = 10.0, confirm: bool = False) -> StopRequest | None:
    """The stop request in the region (None: none; a pipeline polling it every second sees a request being
    replaced at its next look, so absence is not confirmed unless asked)."""
    found = _read(region, STOP_FILE, timeout_s, confirm)
    return None if found is None else StopRequest(**found)  # type: ignore[arg-type]


def holds(request: StopRequest | None, epoch: int) -> bool:
    """Whether ``request`` stops a pipeline of ``epoch`` (a request of an earlier epoch is spent)."""
    return request is not None and request.epoch == epoch


def request_stop(region: RegionConfig, epoch: int, by: str) -> StopRequest:
    """Ask the pipeline running in ``region`` under ``epoch`` to stop (and none to start under it)."""
    request = StopRequest(uuid.uuid4().hex, epoch, datetime.now(UTC).isoformat(), by)
    hdfs = Hdfs(region, timeout_s=10.0)
    hdfs.makedirs(_path(region, STOP_FILE).rsplit("/", 1)[0])
    hdfs.publish(_path(region, STOP_FILE), json.dumps(asdict(request)).encode())
    return request


def withdraw_stop(region: RegionConfig, request: StopRequest) -> bool:
    """Remove ``request`` if it is still the region's (a later one is left alone); whether it was removed."""
    found = read_stop(region, confirm=True)
    if found is None or found.id != request.id:
        return False
    return Hdfs(region, timeout_s=10.0).delete(_path(region, STOP_FILE))


def running(status: PipelineStatus | None) -> bool:
    """Whether ``status`` is a pipeline process running its queries now (not a standby, not stopped, not stale)."""
    return status is not None and status.state == "running" and status.alive()


def other_running(region: RegionConfig) -> PipelineStatus | None:
    """The status of another process (not this one) running the region's queries now, if any: a region runs one
    pipeline (two would write the same tables from the same checkpoints)."""
    status = read_status(region)
    if running(status) and status is not None and (status.host, status.pid) != (socket.gethostname(), os.getpid()):
        return status
    return None


def await_stopped(
    region: RegionConfig, request: StopRequest, timeout_s: float, poll_s: float = 0.5
) -> tuple[bool, PipelineStatus | None]:
    """Wait until no pipeline runs its queries in ``region``: it reported ``stopped`` for ``request`` (or is a
    standby, or went stale: died). (True, its last status), or (False, its last status) at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = read_status(region)
        if not running(status) or (status is not None and status.stop_request == request.id):
            return True, status
        if time.monotonic() >= deadline:
            return False, status
        time.sleep(poll_s)


class Heartbeat:
    """The pipeline process's side: its status, rewritten every ``HEARTBEAT_S`` (or at once on a change of state);
    an HDFS that does not answer is said through ``progress`` and never stops the pipeline."""

    def __init__(self, region: RegionConfig, progress: Callable[[str], None]) -> None:
        self.region, self.progress = region, progress
        self._last: tuple[str, int] | None = None
        self._written = 0.0
        self._failing = False

    def beat(self, state: str, epoch: int, stop_request: str | None = None) -> None:
        if self._last == (state, epoch) and time.monotonic() - self._written < HEARTBEAT_S and stop_request is None:
            return
        try:
            write_status(self.region, state, epoch, stop_request)
        except Exception as exc:  # noqa: BLE001 -- the next beat retries; a failover then sees a stale status
            if not self._failing:
                self.progress(f"pipeline ({self.region.name}): cannot write its status to HDFS ({exc}); retrying")
            self._failing = True
            return
        self._failing = False
        self._last, self._written = (state, epoch), time.monotonic()
