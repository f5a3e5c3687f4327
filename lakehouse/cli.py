"""The `lakehouse` command line: thin argument parsing over the package's functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from lakehouse.config import ENV_VAR, load_config
from lakehouse.errors import LakehouseError


def _stack(args: argparse.Namespace) -> int:
    from lakehouse.stack import manager

    cfg = load_config()
    if args.action == "up":
        print(f"stack up ({cfg.profile} profile, state in {cfg.state_dir})", flush=True)
        rows = manager.up(cfg, args.service, progress=lambda m: print(m, flush=True))
        print(f"stack is up: {sum(r.healthy for r in rows)}/{len(rows)} services healthy")
        return 0
    if args.action == "down":
        stopped = manager.down(cfg, args.service, progress=lambda m: print(m, flush=True))
        print(f"stack down: {len(stopped)} service(s) stopped; data kept in {cfg.state_dir}")
        return 0
    rows = manager.status(cfg, args.service)
    healthy = all(r.healthy for r in rows)
    if args.json:
        print(json.dumps({"profile": cfg.profile, "healthy": healthy, "services": [r.as_dict() for r in rows]}))
    else:
        print(f"{'service':<22} {'region':<8} {'port':>6} {'pid':>8} {'MiB':>6}  {'health':<9} detail")
        for r in rows:
            health = "healthy" if r.healthy else ("starting" if r.running else "down")
            mem = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
            print(f"{r.name:<22} {r.region or '-':<8} {r.port:>6} {r.pid or '-':>8} {mem:>6}  {health:<9} {r.detail}")
        total = sum(r.rss_mb or 0 for r in rows)
        print(f"{sum(r.healthy for r in rows)}/{len(rows)} healthy; {total:.0f} MiB resident in the stack's processes")
    return 0 if healthy else 1


def _demo(args: argparse.Namespace) -> int:
    from lakehouse import demo

    cfg = load_config()
    summary = demo.run(cfg, messages=args.messages, devices=args.devices, region=args.region)
    print(summary.render())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakehouse",
        description="Healthcare IoT lakehouse: device telemetry -> Kafka -> Delta tables on HDFS.",
        epilog=f"The profile comes from ${ENV_VAR} (default: local, the embedded stack).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="start, stop or check the local stack (Kafka, HDFS, MLflow)")
    stack.add_argument(
        "action",
        choices=["up", "down", "status"],
        help="up: start (idempotent); down: stop what the stack started, keep data; status: health of each service",
    )
    stack.add_argument(
        "--service",
        action="append",
        metavar="NAME",
        help="act on this service only (repeatable), e.g. kafka-asia, hdfs-namenode-europe, mlflow",
    )
    stack.add_argument("--json", action="store_true", help="status: print one JSON object")
    stack.set_defaults(func=_stack)

    demo = sub.add_parser("demo", help="send device messages to Kafka and stream them into a Delta table")
    demo.add_argument("--messages", type=int, default=5000, help="device messages to send (default 5000)")
    demo.add_argument("--devices", type=int, default=50, help="simulated devices (default 50)")
    demo.add_argument("--region", default=None, help="region to run in (default: the primary)")
    demo.set_defaults(func=_demo)
    return parser


def guarded(job: Callable[[], int]) -> int:
    """Run an entry point: a :class:`LakehouseError` prints one clear message (no traceback) and exits non-zero."""
    try:
        return int(job())
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lakehouse` console script; errors print one clear message, no traceback."""
    args = build_parser().parse_args(argv)
    return guarded(lambda: int(args.func(args)))


if __name__ == "__main__":
    sys.exit(main())
