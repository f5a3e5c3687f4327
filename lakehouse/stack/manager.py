"""`lakehouse stack up | down | status`: start, stop and report the services of the profile."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from lakehouse.config import Config
from lakehouse.errors import ServiceUnavailable, StackError
from lakehouse.stack import jvm, process
from lakehouse.stack.services import Service, services

__all__ = ["ServiceStatus", "down", "require", "select", "services", "status", "up"]

Progress = Callable[[str], None]
JVM_KINDS = ("kafka", "hdfs-namenode", "hdfs-datanode", "metastore", "spark-connect", "spark-master", "spark-worker")


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `lakehouse stack status`."""

    name: str
    kind: str
    region: str | None
    port: int
    managed: bool
    pid: int | None
    running: bool
    healthy: bool
    detail: str
    log: str | None
    rss_mb: float | None  # resident memory of the service's whole process group

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def select(cfg: Config, only: Iterable[str] | None = None, with_optional: bool = False) -> list[Service]:
    """The profile's services, restricted to the names in ``only`` when given; without names, the optional
    ones (Spark Connect, unless it autostarts) only ``with_optional``."""
    every = services(cfg)
    if not only:
        return every if with_optional else [s for s in every if not s.optional]
    wanted = list(only)
    known = {s.name for s in every}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise StackError(f"unknown service(s): {', '.join(unknown)}", fix=f"choose from: {', '.join(sorted(known))}")
    return [s for s in every if s.name in wanted]


def _running_pid(svc: Service) -> int | None:
    pid = process.read_pid(svc.pid_file)
    return pid if svc.managed and any(process.is_ours(pid, m) for m in svc.markers) else None


def service_status(cfg: Config, svc: Service, timeout_s: float = 5.0) -> ServiceStatus:
    """Process and health of one service (health is a real request to it)."""
    pid = _running_pid(svc)
    probe = svc.probe(cfg, timeout_s)
    return ServiceStatus(
        name=svc.name, kind=svc.kind, region=svc.region, port=svc.port, managed=svc.managed,
        pid=pid, running=pid is not None or (not svc.managed and probe.ok), healthy=probe.ok,
        detail=probe.detail, log=str(svc.log_file) if svc.managed else None,
        rss_mb=process.group_rss_mb(pid) if pid is not None else None,
    )  # fmt: skip


def status(cfg: Config, only: Iterable[str] | None = None) -> list[ServiceStatus]:
    """Status of every selected service (without names: the regular ones, and optional ones that are running)."""
    chosen = select(cfg, only) if only else [
        s for s in select(cfg, with_optional=True) if not s.optional or _running_pid(s) is not None
    ]  # fmt: skip
    return [service_status(cfg, s) for s in chosen]


def _port_holder(port: int) -> str:
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except Exception:  # noqa: BLE001 - naming the holder is best effort (it may belong to another user)
        return ""
    return ""


def _preflight(cfg: Config, todo: list[Service]) -> None:
    if not todo:
        return
    if any(s.kind in JVM_KINDS for s in todo):
        jvm.check_java(cfg)
        for jar_set in sorted({j for s in todo for j in s.jar_sets}):
            jvm.jar_dir(cfg, jar_set)
    taken = [
        f"port {port} ({svc.name}) is already in use{_port_holder(port)}"
        for svc in todo
        for port in svc.ports
        if process.port_in_use(svc.host, port)
    ]
    if taken:
        raise StackError(
            "cannot start the stack: " + "; ".join(taken),
            fix=f"stop whatever holds the port(s), or change the ports in {cfg.source}",
        )


def _wait_ready(cfg: Config, started: dict[str, tuple[Service, int, float]], progress: Progress) -> None:
    deadline = time.monotonic() + cfg.stack.ready_timeout_s
    pending = dict(started)
    last: dict[str, str] = {}
    while pending:
        for name, (svc, pid, t0) in list(pending.items()):
            if not process.is_alive(pid):
                raise StackError(
                    f"{name} exited during start-up; last lines of {svc.log_file}:\n{process.tail(svc.log_file)}",
                    fix=f"read {svc.log_file}",
                )
            probe = svc.probe(cfg, timeout_s=2.0)
            last[name] = probe.detail
            if probe.ok:
                progress(f"  {name:<22} ready in {time.monotonic() - t0:5.1f}s  ({probe.detail})")
                del pending[name]
        if pending and time.monotonic() > deadline:
            name, (svc, _, _) = next(iter(pending.items()))
            raise StackError(
                f"{name} did not become ready within {cfg.stack.ready_timeout_s:g}s (last check: {last.get(name)}); "
                f"last lines of {svc.log_file}:\n{process.tail(svc.log_file)}",
                fix=f"read {svc.log_file}; raise stack.ready_timeout_s in {cfg.source} on a slow machine",
            )
        if pending:
            time.sleep(0.5)


def up(cfg: Config, only: Iterable[str] | None = None, progress: Progress = print) -> list[ServiceStatus]:
    """Start every selected managed service that is not already running; wait until all are ready.

    Idempotent: a healthy running service is left alone. On any failure, the services this call
    started are stopped again and a :class:`StackError` names the cause.
    """
    chosen = select(cfg, only)
    managed = [s for s in chosen if s.managed]
    if not managed:
        raise StackError(
            f"profile {cfg.profile!r} runs no embedded services (they are managed by the platform)",
            fix="use `lakehouse stack status` to check them, or LAKEHOUSE_ENV=local for the embedded stack",
        )
    todo = [s for s in managed if _running_pid(s) is None]
    for svc in managed:
        if svc not in todo:
            progress(f"  {svc.name:<22} already running (pid {_running_pid(svc)})")
    _preflight(cfg, todo)
    java = jvm.java_binary(cfg) if any(s.kind in JVM_KINDS for s in todo) else Path("java")
    started: dict[str, tuple[Service, int, float]] = {}
    try:
        for svc in todo:
            svc.prepare(cfg, java)
            pid = process.spawn(
                svc.command(cfg, java), env=svc.env(cfg, java), log_file=svc.log_file,
                pid_file=svc.pid_file, cwd=svc.home,
            )  # fmt: skip
            started[svc.name] = (svc, pid, time.monotonic())
            progress(f"  {svc.name:<22} started (pid {pid}, port {svc.port})")
        _wait_ready(cfg, started, progress)
        for svc, _, _ in started.values():
            svc.provision(cfg)
    except BaseException:
        for svc, pid, _ in started.values():
            process.stop(pid, cfg.stack.stop_timeout_s)
            svc.pid_file.unlink(missing_ok=True)
        raise
    return [service_status(cfg, s) for s in managed]


def down(cfg: Config, only: Iterable[str] | None = None, progress: Progress = print) -> list[str]:
    """Stop the selected services (without names: all, optional ones too) that the stack started (by pid file);
    their data stays."""
    stopped = []
    for svc in reversed([s for s in select(cfg, only, with_optional=True) if s.managed]):
        pid = _running_pid(svc)
        if pid is None:
            svc.pid_file.unlink(missing_ok=True)
            continue
        killed = process.stop(pid, cfg.stack.stop_timeout_s)
        svc.pid_file.unlink(missing_ok=True)
        progress(f"  {svc.name:<22} stopped (pid {pid}{', killed after timeout' if killed else ''})")
        stopped.append(svc.name)
    return stopped


def require(cfg: Config, *kinds: str, region: str | None = None) -> None:
    """Fail with one clear error unless the services of ``kinds`` (in ``region``, if given) answer."""
    for svc in services(cfg):
        if svc.kind not in kinds or (region is not None and svc.region not in (None, region)):
            continue
        probe = svc.probe(cfg, timeout_s=5.0)
        if not probe.ok:
            up = f"lakehouse stack up --service {svc.name}" if svc.optional else "lakehouse stack up"
            fix = f"run `{up}`" if svc.managed else f"check the {svc.kind} service of the cluster"
            raise ServiceUnavailable(f"{svc.name} is not available: {probe.detail}", fix=fix)
