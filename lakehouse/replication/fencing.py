"""Durable region state and fencing: which region is primary, under an epoch that only ever increases.

The state is a small JSON document, ``<lakehouse_root>/_dr/region_state.json``, written to the HDFS of every
region that answers (atomically: temporary file + rename); the state in force is the one with the highest
epoch among the regions a reader can reach. Without any document, the configured primary holds epoch 0.

Fencing: a pipeline takes the epoch in force when it starts and refuses to start outside the primary;
before each commit its writers call :func:`check`, which re-reads the state (at most every
``CHECK_EVERY_S``) and raises :class:`Fenced` once the epoch moved on, so a stale primary that comes back
after a failover stops instead of committing. A failover writes the new epoch before promoting.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakehouse import audit
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io.hdfs import Hdfs

STATE_FILE = "_dr/region_state.json"
CHECK_EVERY_S = 1.0


class Fenced(LakehouseError):
    """This process's region is no longer the primary (a failover moved the epoch on): it must not commit."""


@dataclass(frozen=True)
class RegionState:
    """Which region is primary under which epoch, and the history of changes."""

    epoch: int
    primary: str
    updated: str
    reason: str
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_json(self) -> bytes:
        """The document as written to HDFS."""
        data = asdict(self)
        data["history"] = list(self.history)
        return json.dumps(data, indent=1).encode()

    @staticmethod
    def from_json(data: bytes) -> RegionState:
        """Parse the document."""
        raw = json.loads(data)
        return RegionState(
            int(raw["epoch"]), str(raw["primary"]), str(raw["updated"]), str(raw["reason"]),
            tuple(raw.get("history") or ()),
        )  # fmt: skip

    def advanced(self, primary: str, reason: str) -> RegionState:
        """The next epoch, with ``primary`` promoted."""
        now = datetime.now(UTC).isoformat()
        entry = {"epoch": self.epoch + 1, "primary": primary, "previous": self.primary, "at": now, "reason": reason}
        return RegionState(self.epoch + 1, primary, now, reason, (*self.history, entry))


def _path(region: RegionConfig) -> str:
    return "/" + region.lakehouse_root.strip("/") + "/" + STATE_FILE


def read_region(region: RegionConfig) -> RegionState | None:
    """The document in one region's HDFS (None: none there); raises when that HDFS does not answer."""
    hdfs = Hdfs(region, timeout_s=5.0)
    path = _path(region)
    if hdfs.status(path) is None:
        return None
    return RegionState.from_json(hdfs.read(path))


def in_force(held: Iterable[RegionState | None], configured_primary: str) -> RegionState:
    """The state in force among the documents ``held`` (None: a region holding none): the highest epoch; without
    any, the configured primary at epoch 0."""
    best = RegionState(0, configured_primary, "", "configured primary")
    for found in held:
        if found is not None and found.epoch > best.epoch:
            best = found
    return best


def current(cfg: Config) -> tuple[RegionState, dict[str, bool]]:
    """The state in force (:func:`in_force` among reachable regions) and which regions answered."""
    held: list[RegionState | None] = []
    reached: dict[str, bool] = {}
    for region in cfg.regions.values():
        try:
            held.append(read_region(region))
            reached[region.name] = True
        except Exception:  # noqa: BLE001 - an unreachable region is what failover is for
            reached[region.name] = False
    return in_force(held, cfg.primary.name), reached


def direction(regions: Iterable[str], primary: str, source: str | None, target: str | None) -> tuple[str, str]:
    """Source and target of a replication: ``source`` defaults to ``primary`` (the one in force), ``target`` to
    the one other region (required with more than two)."""
    names = list(regions)
    source = source or primary
    if not target:
        others = [n for n in names if n != source]
        if len(others) != 1:
            raise LakehouseError(
                f"which region holds the replica? {len(names)} regions are configured ({', '.join(names)})",
                fix=f"name it: --target {others[0] if others else '<region>'}",
            )
        target = others[0]
    if source == target:
        raise LakehouseError(f"source and target are the same region ({source})", fix="--target <another region>")
    return source, target


def write(cfg: Config, new: RegionState, regions: list[str] | None = None) -> list[str]:
    """Write ``new`` to each region that answers (or only ``regions``); returns where it was written.

    Refuses to go backwards: a region already holding a higher or equal epoch is an error (a concurrent failover).
    """
    written: list[str] = []
    for region in cfg.regions.values():
        if regions is not None and region.name not in regions:
            continue
        try:
            existing = read_region(region)
        except Exception:  # noqa: BLE001, S112 - an unreachable region keeps its stale state; failback fences it
            continue
        if existing is not None and existing.epoch >= new.epoch and existing != new:
            raise LakehouseError(
                f"region {region.name} already holds epoch {existing.epoch} (primary {existing.primary}); "
                f"refusing to write epoch {new.epoch}",
                fix="another failover ran concurrently: read `lakehouse failover --status` and retry",
            )
        hdfs = Hdfs(region, timeout_s=10.0)
        hdfs.makedirs(_path(region).rsplit("/", 1)[0])
        hdfs.publish(_path(region), new.to_json())
        written.append(region.name)
    return written


class Guard:
    """A writer's fence: the epoch it started under; :meth:`check` raises :class:`Fenced` once it moved on."""

    def __init__(self, cfg: Config, region: RegionConfig) -> None:
        self.cfg, self.region = cfg, region
        self._recorded = False
        state, _ = current(cfg)
        if state.primary != region.name:
            raise self._denied(state, Fenced(
                f"region {region.name} is not the primary (epoch {state.epoch}: {state.primary} is)",
                fix=f"run the pipeline in {state.primary}, or `lakehouse failback` / `lakehouse failover` first",
            ))  # fmt: skip
        self.epoch = state.epoch
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise :class:`Fenced` when a newer epoch is in force (re-read at most every ``CHECK_EVERY_S``)."""
        with self._lock:
            if time.monotonic() - self._checked < CHECK_EVERY_S:
                return
            state, _ = current(self.cfg)
            self._checked = time.monotonic()
        if state.epoch != self.epoch or state.primary != self.region.name:
            raise self._denied(state, Fenced(
                f"fenced: {self.region.name} started under epoch {self.epoch}, epoch {state.epoch} made "
                f"{state.primary} the primary; this writer stops without committing"
            ))  # fmt: skip

    def _denied(self, state: RegionState, error: Fenced) -> Fenced:
        """``error``, recorded first as a denied write in the primary's ops.audit_log (the fenced region's
        own log would be a replica by now); once per writer process, however many of its queries hit the fence."""
        if self._recorded:
            return error
        self._recorded = True
        audit.try_record(self.cfg.region(state.primary), audit.entry(
            "fencing.write", self.region.name, self.region.name, "denied",
            {"epoch": state.epoch, "primary": state.primary, "reason": error.message},
        ))  # fmt: skip
        return error


_GUARD: Guard | None = None


def install(cfg: Config, region: RegionConfig) -> Guard:
    """Fence this process's writers (the pipeline calls it at start)."""
    global _GUARD
    _GUARD = Guard(cfg, region)
    return _GUARD


def check() -> None:
    """Called by writers before each commit; a no-op in processes that installed no guard (tests, tools)."""
    if _GUARD is not None:
        _GUARD.check()
