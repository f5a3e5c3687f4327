"""The `lakehouse` command line: thin argument parsing over the package's functions."""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.config import ENV_VAR, SANDBOX_VAR, Config, RegionConfig, load_config
from lakehouse.errors import LakehouseError, StackError


def _log_job(cfg: Config, job: str, region: str | None) -> None:
    """JSON-line log of this job run under the state folder (see lakehouse.observability.logs)."""
    from lakehouse.observability import logs

    logs.configure(cfg, job, region)


def _stack(args: argparse.Namespace) -> int:
    from lakehouse.stack import manager

    cfg = load_config()
    if args.spark_cluster:
        from lakehouse.stack.services import spark_cluster_services

        cluster = [s.name for s in spark_cluster_services(cfg)]
        if not cluster:
            raise StackError(f"the profile {cfg.source} has no spark_cluster section", fix="see conf/local.yaml")
        # up: the stack and the cluster; down and status: the cluster (and the services named)
        base = args.service or ([s.name for s in manager.select(cfg)] if args.action == "up" else [])
        args.service = [*base, *(n for n in cluster if n not in base)]
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


def _submit(args: argparse.Namespace) -> int:
    from lakehouse import session

    cfg = load_config()
    job_args = list(args.job_args)
    if job_args[:1] == ["--"]:
        job_args = job_args[1:]
    command = session.submit_command(cfg, args.job, job_args, args.master)
    if args.print_only:
        lines, rest = [shlex.quote(command[0])], command[1:]
        while rest:  # one option and its value per line
            n = 2 if rest[0].startswith("--") and len(rest) > 1 else 1
            lines.append(" ".join(shlex.quote(a) for a in rest[:n]))
            rest = rest[n:]
        print(" \\\n  ".join(lines))
        return 0
    print(f"submit: jobs/{args.job}.py on {command[command.index('--master') + 1]}", file=sys.stderr, flush=True)
    # the caller's folder: relative paths among the job's arguments mean what they mean in the shell
    return subprocess.run(command, env=session.submit_env(cfg), check=False).returncode


def _dags(args: argparse.Namespace) -> int:
    from datetime import datetime

    from lakehouse.orchestration.airflow import AirflowClient, AirflowError

    cfg = load_config()
    client = AirflowClient.from_config(cfg)
    if args.action == "list":
        dags, errors = client.dags(), client.import_errors()
        if args.json:
            print(json.dumps({"dags": dags, "import_errors": errors}, default=str))
        else:
            print(f"{'dag':<28} {'paused':<7} {'schedule':<20} next run")
            for d in dags:
                print(f"{d['dag_id']:<28} {str(d['is_paused']).lower():<7} {d.get('timetable_summary')!s:<20} "
                      f"{d.get('next_dagrun_logical_date') or '-'}")  # fmt: skip
            for e in errors:
                print(f"import error in {e.get('filename')}: {str(e.get('stack_trace')).strip().splitlines()[-1]}")
        return 1 if errors else 0
    if args.dag is None:
        raise AirflowError(
            "`lakehouse dags trigger` needs a DAG id", fix="e.g. `lakehouse dags trigger nightly_retraining`"
        )
    try:
        conf = json.loads(args.conf) if args.conf else {}
    except ValueError as exc:
        raise AirflowError(f"--conf is not valid JSON ({exc})", fix='e.g. --conf \'{"region": "asia"}\'') from None
    if not isinstance(conf, dict):
        raise AirflowError("--conf must be a JSON object", fix='e.g. --conf \'{"region": "asia"}\'')
    logical = datetime.fromisoformat(args.logical_date) if args.logical_date else None
    client.wait_for_dag(args.dag, timeout_s=30.0)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    if args.keep_paused:
        run = client.trigger(args.dag, conf, logical, run_id=args.run_id)
    else:  # takes the logical date of a due scheduled run, so unpausing does not run the DAG twice
        run = client.trigger_and_unpause(args.dag, conf, logical, run_id=args.run_id)
    say(f"triggered {run.dag_id} run {run.run_id} ({run.state})")
    if not args.wait:
        if args.json:
            print(json.dumps(run.as_dict()))
        return 0
    done = client.wait(run.dag_id, run.run_id, timeout_s=args.timeout, progress=say)
    say(f"{done.dag_id} run {done.run_id}: {done.state}")
    if args.json:
        print(json.dumps(done.as_dict()))
    return 0 if done.succeeded else 1


def _demo(args: argparse.Namespace) -> int:
    from lakehouse import demo
    from lakehouse.observability import logs

    cfg = load_config()
    logs.configure(cfg, "demo", cfg.region(args.region).name)
    summary = demo.run(
        cfg, patients=args.patients, devices=args.devices, messages=args.messages,
        bad_fraction=args.bad_fraction, region=args.region, progress=lambda m: print(m, flush=True),
    )  # fmt: skip
    print(summary.render())
    return 0 if summary.balanced else 1


def _simulate(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from lakehouse.devices import simulator
    from lakehouse.ingest.registry import register_assignments

    cfg = load_config()
    region = cfg.region(args.region)
    _log_job(cfg, "simulate", region.name)
    if not args.no_register:
        fleet = simulator.make_fleet(args.devices, args.seed, prefix=args.prefix)
        since = datetime.now(UTC) - timedelta(seconds=args.seconds + 3600)
        print(f"registering {register_assignments(cfg, region, simulator.fleet_assignments(fleet, since, region.name))}"
              " devices in silver.device_registry", flush=True)  # fmt: skip
    sim, _ = simulator.simulate(
        cfg, args.devices, args.rate, args.seconds, region.name, args.bad_fraction, args.seed,
        realtime=not args.fast, prefix=args.prefix, progress=lambda m: print(m, flush=True),
    )  # fmt: skip
    if args.expected_json:
        with open(args.expected_json, "w", encoding="utf-8") as fh:
            json.dump(sim.expected.as_dict(), fh, indent=2)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lakehouse.devices import physionet
    from lakehouse.ingest.registry import register_assignments

    cfg = load_config()
    region = cfg.region(args.region)
    _log_job(cfg, "replay", region.name)
    archive = Path(args.archive)
    if not archive.exists():
        raise LakehouseError(
            f"PhysioNet archive {archive} does not exist", fix="give --archive a .tar.gz or a folder of .psv files"
        )
    if not args.no_register:
        records = list(physionet.iter_patients(archive, args.patients))
        since = physionet.default_origin(records)
        n = register_assignments(cfg, region, physionet.assignments(records, since, region.name))
        print(f"registering {n} devices in silver.device_registry", flush=True)
    physionet.replay(cfg, archive, args.patients, args.speed, region.name, progress=lambda m: print(m, flush=True))
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from lakehouse import pipeline
    from lakehouse.observability import logs

    cfg = load_config()
    region = cfg.region(args.region)
    logs.configure(cfg, "pipeline", region.name)
    if args.action == "start":
        started = pipeline.start_background(cfg, region, standby=args.standby)
        print(f"pipeline ({region.name}) {'standing by' if args.standby else 'running'} as pid {started};"
              f" log in {cfg.state_dir / 'pipeline' / region.name}")  # fmt: skip
        return 0
    if args.action == "stop":
        stopped = pipeline.stop_background(cfg, region)
        print(f"pipeline ({region.name}) " + (f"stopped (pid {stopped})" if stopped else "was not running"))
        return 0
    if args.action == "status":
        from lakehouse.replication import handover

        pid = pipeline.running_pid(cfg, region)
        print(f"pipeline ({region.name}): " + (f"running (pid {pid})" if pid else "not running") + " on this host")
        try:  # any host's pipeline of the region, as a failover sees it
            seen = handover.read_status(region)
        except Exception as exc:  # noqa: BLE001 -- the local answer stands; say why the region's is missing
            print(f"pipeline ({region.name}) in the region's HDFS: unknown ({exc})")
            return 0 if pid else 1
        if seen is not None:
            print(f"pipeline ({region.name}) in the region's HDFS: {seen.shown()} at epoch {seen.epoch} ({seen.where()},"
                  f" {seen.age_s():.0f}s ago)")  # fmt: skip
        return 0 if pid or (seen is not None and seen.alive()) else 1
    from lakehouse.session import build_spark

    if args.tier == "background":
        from lakehouse import tiers

        if args.once or args.standby or args.action != "run" or args.metrics_port is None:
            raise LakehouseError("--tier background is the child `pipeline run` starts itself",
                                 fix="run `lakehouse pipeline run [--standby]`; it starts its background tier")  # fmt: skip
        tiers.become_background(cfg)
        spark = build_spark(cfg, f"lakehouse-pipeline-{region.name}-background", catalog_region=region.name)
        starters = [(name, start) for name, start in pipeline.STARTERS if name not in tiers.FRONT]
        return tiers.run_background(spark, cfg, region, starters, args.metrics_port)
    spark = build_spark(cfg, f"lakehouse-pipeline-{region.name}", catalog_region=region.name)
    if args.once:
        pipeline.run_once(spark, cfg, region, progress=lambda m: print(m, flush=True))
        rec = pipeline.reconcile(spark, region)
        print(
            f"reconciliation ({region.name}): bronze {rec.bronze_rows} = accepted {rec.accepted} + quarantined "
            f"{rec.quarantined} + duplicates {rec.duplicate}: {'balanced' if rec.balanced else 'NOT BALANCED'}"
        )
        return 0 if rec.balanced else 1
    pipeline.run_continuous(spark, cfg, region, progress=lambda m: print(m, flush=True), standby=args.standby)
    return 0


def _range_args(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """--start/--end, or the hours a PhysioNet backfill covers (--psv, narrowed by --patients: the DAG passes its
    psv and patients params on)."""
    if args.psv:
        from lakehouse.ml import build

        return build.psv_archive_range(Path(args.psv), args.patients or None)
    return args.start, args.end


def _ml(args: argparse.Namespace) -> int:
    from lakehouse.session import build_spark, ml_overrides
    from lakehouse.stack import manager

    cfg = load_config()
    region = cfg.region(args.region)
    _log_job(cfg, f"ml-{args.action}", region.name)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    if args.action in ("evaluate", "cv") and not args.psv_dir:
        raise LakehouseError(f"ml {args.action} needs --psv-dir", fix="give a folder of PhysioNet .psv files")
    if args.psv_dir:
        from lakehouse.devices import physionet

        physionet.require_archive(Path(args.psv_dir))  # a wrong path fails at once, before Spark starts
    start, end = _range_args(args)
    manager.require(cfg, "mlflow")
    manager.require(cfg, "hdfs-namenode", "hdfs-datanode", region=region.name)
    spark = build_spark(cfg, f"lakehouse-ml-{args.action}-{region.name}", ml_overrides(cfg), catalog_region=region.name)
    spark.sparkContext.setLogLevel("ERROR")
    from lakehouse.observability import exporter

    result: dict[str, object]
    if args.action == "evaluate":
        from lakehouse.ml import evaluate

        result = evaluate.evaluate_psv(
            spark, cfg, args.psv_dir, args.model_uri, args.threshold, args.patients, progress=say
        )
    elif args.action == "cv":
        from lakehouse.ml import cv

        result = cv.cross_validate(spark, cfg, args.psv_dir, args.folds, args.patients, progress=say)
    elif args.action == "score":
        from lakehouse.ml import scoring

        if start is None or end is None:
            raise LakehouseError("ml score needs a range", fix="give --start and --end (or --psv)")
        result = scoring.batch_score(spark, cfg, region, start, end, progress=say).as_dict()
        exporter.push(cfg, "model-scoring", region.name)
    elif args.action == "drift":
        from lakehouse.ml import drift

        hours = args.hours
        if start is not None and end is not None and hours is None:
            hours = max(1, int((end - start).total_seconds() // 3600))
        result = drift.check_drift(spark, cfg, region, end, hours, progress=say).as_dict()
        exporter.push(cfg, "model-drift", region.name)
    else:  # scorer
        from lakehouse.ml import scoring

        manager.require(cfg, "kafka", region=region.name)
        query = scoring.start_scorer(spark, cfg, region, once=args.once, progress=say)
        say(f"scorer ({region.name}): following silver.vitals" + (" (one catch-up pass)" if args.once else
            f" every {cfg.ml.scorer_trigger_s} s; Ctrl-C or SIGTERM stops it"))  # fmt: skip
        query.awaitTermination()
        return 0
    print(json.dumps(result, default=str, indent=None if args.json else 2))
    return 0


def _maintain(args: argparse.Namespace) -> int:
    from lakehouse import maintenance
    from lakehouse.io.tables import check_table_names
    from lakehouse.session import build_spark
    from lakehouse.tables import SPECS

    cfg = load_config()
    region = cfg.region(args.region)
    _log_job(cfg, "maintenance", region.name)
    hours = cfg.pipeline.vacuum_min_retention_hours if args.retention_hours is None else args.retention_hours
    maintenance.check_retention(hours, cfg.pipeline.vacuum_min_retention_hours)  # refuse before any work
    check_table_names(args.table, SPECS)
    from lakehouse.stack import manager

    manager.require(cfg, "hdfs-namenode", "hdfs-datanode", region=region.name)
    spark = build_spark(cfg, f"lakehouse-maintenance-{region.name}", catalog_region=region.name)
    print(f"maintenance ({region.name}): OPTIMIZE" + ("" if args.no_vacuum else f", VACUUM retaining {hours:g} h"))
    maintenance.maintain(spark, cfg, region, args.table, hours, vacuum=not args.no_vacuum)
    return 0


def _timestamp(text: str) -> datetime:
    """An ISO-8601 time (a bare date is midnight UTC) for --since/--until."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 time: {text!r} (e.g. 2026-11-25 or 2026-11-25T08:00Z)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _export(args: argparse.Namespace) -> int:
    from lakehouse.interop import export
    from lakehouse.security import pseudonyms
    from lakehouse.session import build_spark
    from lakehouse.stack import manager

    cfg = load_config()
    region = cfg.region(args.region)
    _log_job(cfg, "export-fhir", region.name)
    until = args.until or datetime.now(UTC)
    key = pseudonyms.site_key(cfg, args.key_file)
    manager.require(cfg, "hdfs-namenode", "hdfs-datanode", region=region.name)
    spark = build_spark(cfg, f"lakehouse-export-fhir-{region.name}")
    print(
        f"FHIR R4 bulk export ({region.name}): event times [{args.since.isoformat()}, {until.isoformat()}) -> {args.out}"
    )
    result = export.export_fhir(
        spark, cfg, region, args.since, until, args.out, key, progress=lambda m: print(m, flush=True)
    )
    print(
        f"export done: {', '.join(f'{k} {v}' for k, v in result.counts.items())} resources; manifest {args.out / 'manifest.json'}"
    )
    if not args.validate:
        return 0
    checked = export.validate(args.out)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(checked.checked.items()))
    print(f"FHIR R4 validation: {summary} valid; {checked.invalid} invalid")
    for problem in checked.problems:
        print(f"  {problem}")
    return 1 if checked.invalid else 0


def _import(args: argparse.Namespace) -> int:
    from lakehouse.interop import fhir_import
    from lakehouse.stack import manager

    cfg = load_config()
    region = cfg.region(args.region)
    manager.require(cfg, "kafka", region=region.name)
    print(f"FHIR import ({region.name}): {args.folder} -> Kafka {cfg.topics.telemetry}", flush=True)
    result = fhir_import.import_fhir(cfg, region, args.folder, progress=lambda m: print(m, flush=True))
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(result.skipped.items())) or "none"
    print(f"import done: {result.lines} lines in {result.files} file(s): {result.sent} sent to the pipeline "
          f"(silver accepts or quarantines each), skipped {skipped}")  # fmt: skip
    return 0


def _dq(args: argparse.Namespace) -> int:
    from datetime import date

    from lakehouse.session import build_spark
    from lakehouse.stack import manager

    cfg = load_config()
    region = cfg.region(args.region)
    _log_job(cfg, "data_quality", region.name)
    docs = cfg.quality.data_docs_dir(cfg.state_dir) / "index.html"
    if args.action == "report":
        from lakehouse.quality import validate

        manager.require(cfg, "hdfs-namenode", "hdfs-datanode", region=region.name)
        spark = build_spark(cfg, f"lakehouse-dq-report-{region.name}", persistent_catalog=False)
        spark.sparkContext.setLogLevel("ERROR")
        rows = validate.report(spark, region, args.days).collect()
        print(f"data quality ({region.name}), last {args.days} day(s): {len(rows)} expectations checked")
        head = f"{'table':<20} {'expectation':<38} {'severity':<10} {'runs':>6} {'failed':>6} {'rows failed':>11}"
        print(f"{head}  last failure")
        for r in rows:
            print(
                f"{r['table_name']:<20} {r['expectation']:<38} {r['severity']:<10} {r['runs']:>6} {r['failures']:>6} "
                f"{r['rows_failed']:>11}  {r['last_failure'] or '-'}"
            )
        print(f"Data Docs: {docs}" + ("" if docs.is_file() else " (not rendered yet: run `lakehouse dq validate`)"))
        return 0
    from lakehouse.observability import exporter
    from lakehouse.quality import suites, validate
    from lakehouse.quality.gate import DataQualityBlocked

    tables = sorted(suites.load_all(cfg.quality.suites_dir)) if args.table in (None, ["all"]) else args.table
    for table in tables:
        suites.load_suite(cfg.quality.suites_dir, table)  # a missing or broken suite fails before Spark starts
    try:
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        raise LakehouseError(
            f"--date {args.date!r} is not a date", fix="give it as YYYY-MM-DD, e.g. 2026-11-26"
        ) from None
    # the services after the arguments: a wrong argument says so even where the stack is down
    manager.require(cfg, "hdfs-namenode", "hdfs-datanode", region=region.name)
    spark = build_spark(cfg, f"lakehouse-dq-validate-{region.name}", persistent_catalog=False)
    spark.sparkContext.setLogLevel("ERROR")
    outcomes, index = validate.validate_tables(
        spark, cfg, region, tables, day, progress=lambda m: print(m, flush=True), run_id=args.run_id
    )
    exporter.push(cfg, "data_quality", region.name)
    print(f"results appended to dq.results; Data Docs: {index}")
    blocked = validate.blocked(outcomes)
    if blocked:
        raise DataQualityBlocked(
            f"blocking expectations failed: {', '.join(blocked)}",
            fix="see the Data Docs and dq.results; fix the data or the suite (conf/quality), then re-run",
        )
    return 0


def _sql(args: argparse.Namespace) -> int:
    from lakehouse import sql
    from lakehouse.session import build_spark
    from lakehouse.stack import manager

    cfg = load_config()
    region = cfg.region(args.region)
    manager.require(cfg, "metastore", "hdfs-namenode", "hdfs-datanode", region=region.name)
    spark = build_spark(cfg, f"lakehouse-sql-{region.name}", catalog_region=region.name)
    spark.sparkContext.setLogLevel("ERROR")  # the output is the result; the metastore client warns a lot
    result = sql.run(spark, args.query, args.limit)
    print(sql.render(result, args.format))
    if result.truncated and args.format != "table":
        print(f"note: only the first {args.limit} rows are shown (--limit)", file=sys.stderr)
    return 0


def _notebook(args: argparse.Namespace) -> int:
    from pathlib import Path

    import nbformat

    from lakehouse import notebook

    paths = [Path(p) for p in args.paths] or notebook.notebooks()
    if args.action == "strip":
        for p in (p for p in paths if notebook.strip(p)):
            print(f"stripped outputs from {p}")
        return 0
    if args.action == "check":
        dirty = [p for p in paths if notebook.has_outputs(nbformat.read(p, as_version=4))]
        for p in dirty:
            print(f"{p} carries outputs; run `lakehouse notebook strip {p}`", file=sys.stderr)
        return 1 if dirty else 0
    load_config()  # a bad profile fails here, before a kernel starts
    params: dict[str, object] = {"REGION": args.region, "DATE_FROM": args.date_from, "DATE_TO": args.date_to}
    for item in args.param or []:
        name, _, text = item.partition("=")
        try:
            params[name] = ast.literal_eval(text)  # True, 5, 'x' ...
        except (ValueError, SyntaxError):
            params[name] = text  # a bare string

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        executed = notebook.execute(path, params, timeout_s=args.timeout)
        nbformat.write(executed, out_dir / path.name)
        print(
            f"{path.name}: {len(executed.cells)} cells ran, {notebook.images(executed)} chart(s) -> {out_dir / path.name}"
        )
    return 0


def _bench_suite(args: argparse.Namespace) -> int:
    from lakehouse import bench_suite

    out = Path(args.out)
    # the notes get the latest run when the report goes to its usual place, or when asked to
    notes = Path(args.notes) if args.notes else (out.parent / "benchmarks.md" if out.name == "benchmarks" else None)
    say = lambda m: print(m, file=sys.stderr, flush=True)
    if args.kind == "report":  # redraw from the figures of a run
        results = out / bench_suite.RESULTS
        if not results.exists():
            raise LakehouseError(f"no {results}", fix="lakehouse bench all --out " + str(out))
        print(f"report written: {bench_suite.write_report(json.loads(results.read_text()), out, notes)}")
        return 0
    load_config()  # the profile's errors before minutes of benchmarks
    options = bench_suite.SuiteOptions(
        kinds=[k.strip() for k in args.only.split(",")] if args.only else bench_suite.ORDER,
        messages=args.messages, devices=bench_suite.parse_devices(args.devices),
        scaling_messages=args.scaling_messages, latency_seconds=args.seconds, replication_versions=args.versions,
        psv_dir=args.psv_dir, fractions=args.fractions,
    )  # fmt: skip
    unknown = [k for k in options.kinds if k not in bench_suite.ORDER]
    if unknown:
        raise LakehouseError(f"unknown benchmark(s): {', '.join(unknown)}", fix="--only " + ",".join(bench_suite.ORDER))
    suite = bench_suite.run_all(options, progress=say)
    if args.only and (out / bench_suite.RESULTS).exists():  # the other benchmarks keep the last run's figures
        suite = bench_suite.merge(json.loads((out / bench_suite.RESULTS).read_text()), suite)
    report = bench_suite.write_report(suite, out, notes)
    failed = [k for k, r in suite["results"].items() if "error" in r]
    say(f"report written: {report}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if args.json:
        print(json.dumps(suite))
    return 1 if failed else 0


def _bench(args: argparse.Namespace) -> int:
    from lakehouse import bench

    if args.kind in ("all", "report"):
        return _bench_suite(args)
    cfg = load_config()
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    if args.kind == "scaling":
        from lakehouse.bench_suite import parse_devices

        result = bench.scaling(cfg, parse_devices(args.devices), messages=args.scaling_messages, progress=say)
    elif args.kind == "replication":
        from lakehouse.replication import benchmark

        secondary = next(r.name for r in cfg.regions.values() if r.role == "secondary")
        result = benchmark.run(
            cfg, cfg.primary.name, secondary, versions=args.versions, ingest_seconds=args.seconds, progress=say
        )
    elif args.kind == "ingest":
        result = bench.ingest(cfg, messages=args.messages, progress=say, dq=args.dq)
    elif args.kind == "encryption":
        from lakehouse.security import benchmark as enc_bench

        result = enc_bench.run(cfg, rows=args.messages, progress=say)
    elif args.kind == "training":
        from lakehouse.ml import benchmark as ml_bench
        from lakehouse.session import build_spark, ml_overrides

        if args.psv_dir is None:
            raise LakehouseError(
                "bench training needs --psv-dir", fix="--psv-dir ../shared/data/physionet2019/training_setA.tar.gz"
            )
        fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
        spark = build_spark(cfg, "lakehouse-bench-training", ml_overrides(cfg), persistent_catalog=False)
        result = ml_bench.run(spark, cfg, args.psv_dir, fractions, progress=say)
    else:
        result = bench.latency(
            cfg, seconds=args.seconds, rate=args.rate, progress=say, warm_up_s=args.warm_up,
            max_warm_up_s=args.max_warm_up,
        )  # fmt: skip
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from lakehouse.observability import exporter, logs, services

    cfg = load_config()
    if args.action == "scrape-config":
        print(services.render_prometheus_config(cfg, args.rules_dir or services.RULES_DIR), end="")
        return 0
    logs.configure(cfg, "lakehouse-exporter", None)
    exporter.run_exporter(cfg, Path(args.home) if args.home else cfg.state_dir / "services" / "lakehouse-exporter")
    return 0


def _security(args: argparse.Namespace) -> int:
    from lakehouse.security import secrets_scan

    cfg = load_config()
    report = secrets_scan.scan(cfg, args.source or secrets_scan.SOURCES)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        scanned = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in report.scanned.items())
        print(f"scanned {scanned} for {report.known_secrets} known secrets and {len(secrets_scan.PATTERNS)} patterns")
        for f in report.findings:
            print(f"SECRET {f.detector} in {f.source}: {f.where}")
        print("clean" if report.clean else f"{len(report.findings)} findings")
    return 0 if report.clean else 1


def _dashboards(args: argparse.Namespace) -> int:
    from lakehouse.observability import dashboards

    published = dashboards.publish(args.url, dashboards.load_all(), token=args.token)
    for uid, url in published:
        print(f"published {uid}: {url}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lakehouse.observability import report

    cfg = load_config()
    page = report.render(cfg, Path(args.out), minutes=args.minutes)
    print(f"report written: {page}")
    return 0


def _replication_direction(cfg: Config, source: str | None, target: str | None) -> tuple[str, str]:
    """--source and --target, the defaults from the primary in force (a scheduled DAG follows a failover)."""
    from lakehouse.replication import fencing

    primary = cfg.primary.name
    if not source:
        state, reached = fencing.current(cfg)
        primary = state.primary
        unreached = ", ".join(n for n, ok in reached.items() if not ok)
        print(
            f"primary in force: {primary} (epoch {state.epoch})" + (f"; not reached: {unreached}" if unreached else "")
        )
    for name in (source, target):
        if name:
            cfg.region(name)  # an unknown region: the config's one-line error
    return fencing.direction(cfg.regions, primary, source, target)


def _replicate(args: argparse.Namespace) -> int:
    from lakehouse.io.tables import check_table_names
    from lakehouse.replication import replicator

    cfg = load_config()
    check_table_names(args.table, cfg.replication.tables)  # before any region is touched
    say = lambda m: print(m, flush=True)
    if args.continuous:  # a long-running log: each line says when (UTC), so passes line up with other logs
        say = lambda m: print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + f"Z {m}", flush=True)
    if args.action == "restore-model":
        from lakehouse.replication import models

        if not args.target:
            raise LakehouseError(
                "restore-model needs --target", fix="lakehouse replicate restore-model --target europe"
            )
        _log_job(cfg, "replicate-restore-model", args.target)
        say(models.restore_champion(cfg, cfg.region(args.target)).line())
        return 0
    args.source, args.target = _replication_direction(cfg, args.source, args.target)
    if args.action == "verify":
        from lakehouse.replication.verify import verify_table
        from lakehouse.session import build_spark

        source, target = cfg.region(args.source), cfg.region(args.target)
        _log_job(cfg, "replicate-verify", target.name)
        spark = build_spark(cfg, "lakehouse-replicate-verify", persistent_catalog=False)
        failed = 0
        for table in args.table or list(cfg.replication.tables):
            say(f"verifying {table} ...")
            checked = verify_table(spark, source, target, table, None if args.all_versions else args.versions)
            say(f"  {checked.line()}")
            failed += not checked.ok
        say(f"verify {source.name} -> {target.name}: " + ("OK" if not failed else f"{failed} table(s) FAILED"))
        return 1 if failed else 0
    if args.once == (args.continuous is not None and args.continuous):
        raise LakehouseError("give exactly one of --once or --continuous", fix="lakehouse replicate --once")
    _log_job(cfg, "replicate", args.target)
    rep = replicator.replicator(cfg, args.source, args.target, progress=say)

    def model() -> None:  # the champion too, on a full pass (a pass of chosen tables is about those tables)
        from lakehouse.replication import models

        if not cfg.replication.models or args.table:
            return
        if not models.registry_answers(cfg):
            say(f"model {cfg.ml.model_name}: the MLflow registry does not answer; not replicated this pass")
            return
        say(f"{rep.source.name} -> {rep.target.name}  {models.replicate_champion(cfg, rep.target).line()}")

    if args.continuous:
        interval = args.interval or cfg.replication.interval_s
        say(f"replicating {rep.source.name} -> {rep.target.name} every {interval:g}s (Ctrl-C stops)")
        replicator.run_continuous(rep, interval, after=model)
        return 0
    result = rep.run_pass(args.table)
    model()
    say(result.line())
    return 0 if result.ok else 1


def _failover(args: argparse.Namespace) -> int:
    from lakehouse.replication import failover, fencing

    cfg = load_config()
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    if args.status:
        from lakehouse.replication import handover

        current, reached = fencing.current(cfg)
        pipelines: dict[str, dict[str, object] | None] = {}
        for name, ok in reached.items():  # each region's pipeline as its HDFS last heard of it (None: never ran)
            seen = handover.read_status(cfg.region(name), timeout_s=5.0) if ok else None
            pipelines[name] = None if seen is None else {
                "state": seen.shown(), "epoch": seen.epoch,
                "host": seen.host, "pid": seen.pid, "seconds_ago": round(seen.age_s(), 1),
            }  # fmt: skip
        print(json.dumps({"epoch": current.epoch, "primary": current.primary, "reachable": reached,
                          "pipelines": pipelines}))  # fmt: skip
        return 0
    if not args.target_region:
        raise LakehouseError(
            "--target-region is required", fix="lakehouse failover --target-region europe --mode planned"
        )
    _log_job(cfg, "failover", args.target_region)
    report = failover.failover(
        cfg, args.target_region, args.mode, start_pipeline=not args.no_pipeline,
        flowing_timeout_s=args.flowing_timeout, progress=say,
    )  # fmt: skip
    if args.json:
        print(json.dumps({**report.as_dict(), "rpo_versions": report.rpo_versions, "rpo_seconds": report.rpo_seconds,
                          "rpo_outage_seconds": report.rpo_outage_seconds}))  # fmt: skip
    else:
        outage = report.rpo_outage_seconds
        print(
            f"{report.mode} failover {report.source} -> {report.target}: epoch {report.epoch}, "
            f"RPO {report.rpo_versions} versions / {report.rpo_seconds:.1f}s"
            + ("" if outage is None else f" ({outage:.1f}s if it died when the replicator lost it)")
            + f", RTO {report.rto_s:.1f}s, "
            + ("flowing" if report.flowing or args.no_pipeline else "NOT flowing")
        )
    return 0 if report.flowing or args.no_pipeline else 1


def _failback(args: argparse.Namespace) -> int:
    from lakehouse.replication import failover

    cfg = load_config()
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    _log_job(cfg, "failback", cfg.primary.name)
    report = failover.failback(cfg, start_pipeline=not args.no_pipeline, progress=say)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        for a in report.archived:
            print(f"archived {a.table}: versions {a.archived_versions} ({a.rows_added} rows) in {a.archive}")
        if report.switch is not None:
            print(f"failback to {report.switch.target}: epoch {report.switch.epoch}, RTO {report.switch.rto_s:.1f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakehouse",
        description="Healthcare IoT lakehouse: device telemetry -> Kafka -> Delta tables on HDFS.",
        epilog=f"The profile comes from ${ENV_VAR} (default: local, the embedded stack); ${SANDBOX_VAR}, when set,"
        " selects a sandbox of it (<state_dir>/sandboxes/<name>.yaml, e.g. a DR drill's).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="start, stop or check the local stack (Kafka, HDFS, MLflow, Airflow, ...)")
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
    stack.add_argument("--spark-cluster", action="store_true", help="up: also start the Spark standalone master"
                       " and workers of spark_cluster (for `lakehouse submit --master cluster`); down, status: those")  # fmt: skip
    stack.add_argument("--json", action="store_true", help="status: print one JSON object")
    stack.set_defaults(func=_stack)

    submit = sub.add_parser(
        "submit",
        help="run a job of jobs/ through spark-submit on a Spark master (the standalone cluster, k8s, ...)",
        description="Compose and run `spark-submit --master M --deploy-mode client --conf ... jobs/JOB.py ARGS`"
        " with every setting the job's own session has (jars, catalog, encryption, driver options). The job's"
        " exit code is this command's.",
        epilog="examples: lakehouse stack up --spark-cluster; lakehouse submit --master cluster pipeline -- --once;"
        " lakehouse submit --master k8s://https://api:6443 --print pipeline -- --region asia (docs/scale-out.md)",
    )
    submit.add_argument("job", help="a job of jobs/ without .py: pipeline, train, build_features, replicate, ...")
    submit.add_argument("job_args", nargs=argparse.REMAINDER, help="the job's own arguments, after --")
    submit.add_argument("--master", default=None, help="cluster (the profile's spark_cluster), spark://host:port,"
                        " k8s://https://host:port, local[N] (default: the profile's spark.master)")  # fmt: skip
    submit.add_argument("--print", dest="print_only", action="store_true",
                        help="print the spark-submit command (one argument per line) instead of running it")  # fmt: skip
    submit.set_defaults(func=_submit)

    dags = sub.add_parser("dags", help="Airflow: list the DAGs, trigger one (and wait for it) through the REST API")
    dags.add_argument("action", choices=["list", "trigger"], help="list: DAGs with paused state and next run, and"
                      " import errors (exit 1 if any); trigger: start a run of DAG")  # fmt: skip
    dags.add_argument("dag", nargs="?", help="trigger: the DAG id, e.g. nightly_retraining")
    dags.add_argument(
        "--conf", default=None, help='trigger: run parameters as a JSON object, e.g. \'{"region": "asia"}\''
    )
    dags.add_argument("--logical-date", default=None, help="trigger: ISO date-time of the run's data interval"
                      " (default: none, a manual run)")  # fmt: skip
    dags.add_argument("--run-id", default=None, help="trigger: the run id (default: Airflow's manual__<time>)")
    dags.add_argument("--wait", action="store_true", help="trigger: follow the run's task states until it ends;"
                      " exit 0 only on success")  # fmt: skip
    dags.add_argument("--timeout", type=float, default=3600.0, help="trigger --wait: give up after this many seconds")
    dags.add_argument("--keep-paused", action="store_true", help="trigger: do not unpause the DAG (new DAGs start"
                      " paused, and the scheduler runs nothing of a paused DAG)")  # fmt: skip
    dags.add_argument("--json", action="store_true", help="JSON on stdout (progress on stderr)")
    dags.set_defaults(func=_dags)

    demo = sub.add_parser("demo", help="replay PhysioNet + simulated devices through the whole pipeline, summarise")
    demo.add_argument(
        "--patients", type=int, default=300, help="PhysioNet patients to replay (default 300, the sample)"
    )
    demo.add_argument("--devices", type=int, default=40, help="simulated devices (default 40)")
    demo.add_argument("--messages", type=int, default=4000, help="simulated messages (default 4000)")
    demo.add_argument("--bad-fraction", type=float, default=0.05, help="share of bad simulated messages (default 0.05)")
    demo.add_argument("--region", default=None, help="region to run in (default: the primary)")
    demo.set_defaults(func=_demo)

    sim = sub.add_parser("simulate", help="send synthetic device messages (two dialects, optional bad data) to Kafka")
    sim.add_argument("--devices", type=int, required=True, help="number of devices (monitors and wearables alternate)")
    sim.add_argument("--rate", type=float, required=True, help="messages per second, all devices together")
    sim.add_argument("--seconds", type=float, required=True, help="how long to simulate")
    sim.add_argument("--region", default=None, help="region whose Kafka receives them (default: the primary)")
    sim.add_argument("--bad-fraction", type=float, default=0.0, help="share of bad messages, 0..1 (default 0)")
    sim.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sim.add_argument("--prefix", default="sim", help="device and patient id prefix (default sim)")
    sim.add_argument("--fast", action="store_true", help="send as fast as possible, event times back-dated")
    sim.add_argument("--no-register", action="store_true", help="do not register the devices in the registry")
    sim.add_argument("--expected-json", metavar="FILE", help="write the exact expected outcome counts here")
    sim.set_defaults(func=_simulate)

    rep = sub.add_parser("replay", help="replay a recorded data set as device messages")
    rep.add_argument("dataset", choices=["physionet"], help="physionet: PhysioNet/CinC 2019 ICU data")
    from lakehouse.devices.physionet import SAMPLE_ARCHIVE

    rep.add_argument("--archive", default=str(SAMPLE_ARCHIVE), help="training_setA.tar.gz or a folder of .psv files"
                     " (default: the committed 300-patient sample)")  # fmt: skip
    rep.add_argument("--patients", type=int, default=None, help="replay only the first N patients")
    rep.add_argument("--speed", type=float, default=0.0, help="time compression: 3600 = one ICU hour per second;"
                     " 0 = as fast as possible (default)")  # fmt: skip
    rep.add_argument("--region", default=None, help="region whose Kafka receives them (default: the primary)")
    rep.add_argument("--no-register", action="store_true", help="do not register the devices in the registry")
    rep.set_defaults(func=_replay)

    pipe = sub.add_parser("pipeline", help="run the streaming pipeline (bronze, silver, gold) of a region")
    pipe.add_argument("action", choices=["start", "stop", "status", "run"], help="start/stop: in the background;"
                      " run: in the foreground (continuous, or --once)")  # fmt: skip
    pipe.add_argument("--once", action="store_true", help="run: one catch-up pass (availableNow), then exit")
    pipe.add_argument("--standby", action="store_true",
                      help="start/run as a warm standby (Spark up, replicas in its catalog) that starts its queries"
                      " when the region is the primary in force: at once in the primary, the moment a failover"
                      " promotes it elsewhere; a deployment runs it in every region (docs/dr.md)")  # fmt: skip
    pipe.add_argument("--region", default=None, help="region (default: the primary)")
    pipe.add_argument("--tier", choices=["background"], default=None,
                      help="internal: the child process `pipeline run` starts for the queries that do not read Kafka"
                      " (silver, window tables, gold.alerts), at pipeline.background_nice")  # fmt: skip
    pipe.add_argument("--metrics-port", type=int, default=None, help="internal: with --tier, its loopback metrics port")
    pipe.set_defaults(func=_pipeline)

    mnt = sub.add_parser("maintain", help="compact small files (OPTIMIZE) and VACUUM a region's tables")
    mnt.add_argument("--region", default=None, help="region (default: the primary)")
    mnt.add_argument("--table", action="append", help="only this table (repeatable), e.g. silver.vitals")
    mnt.add_argument("--retention-hours", type=float, default=None,
                     help="VACUUM retention; values below pipeline.vacuum_min_retention_hours are refused")  # fmt: skip
    mnt.add_argument("--no-vacuum", action="store_true", help="OPTIMIZE only")
    mnt.set_defaults(func=_maintain)

    exp = sub.add_parser("export", help="export a region's data in an interchange format (FHIR R4 bulk NDJSON)")
    exp_sub = exp.add_subparsers(dest="format", required=True, metavar="FORMAT")
    fhir = exp_sub.add_parser(
        "fhir", help="vital signs, NEWS2 scores, alerts and devices as FHIR R4 Bulk Data NDJSON (docs/interop.md)"
    )
    fhir.add_argument("--since", type=_timestamp, required=True, help="first event time exported (ISO 8601, UTC)")
    fhir.add_argument("--until", type=_timestamp, default=None, help="event times before this (default: now)")
    fhir.add_argument("--region", default=None, help="region (default: the primary)")
    fhir.add_argument(
        "--out", type=Path, required=True, help="output folder (Observation/Device/Flag.ndjson, manifest)"
    )
    fhir.add_argument("--key-file", type=Path, default=None,
                      help="pseudonymization key (default: $LAKEHOUSE_PSEUDONYM_KEY_FILE, else one kept in the state folder)")  # fmt: skip
    fhir.add_argument("--validate", action="store_true",
                      help="then check every resource against the FHIR R4 models (fhirclient); exit 1 if any is invalid")  # fmt: skip
    fhir.set_defaults(func=_export)

    imp = sub.add_parser(
        "import", help="import data in an interchange format (FHIR R4 Observation NDJSON) into the pipeline"
    )
    imp_sub = imp.add_subparsers(dest="format", required=True, metavar="FORMAT")
    fhir_in = imp_sub.add_parser(
        "fhir", help="vital-sign Observations of *.ndjson files -> the telemetry topic (dialect fhir-r4-observation)"
    )
    fhir_in.add_argument("folder", type=Path, help="folder of FHIR NDJSON files (e.g. a Bulk Data export)")
    fhir_in.add_argument("--region", default=None, help="region (default: the primary)")
    fhir_in.set_defaults(func=_import)

    dq = sub.add_parser("dq", help="data quality: validate table partitions with the suites, summarise dq.results")
    dq.add_argument("action", choices=["validate", "report"], help="validate: check partitions; report: summary")
    dq.add_argument("--region", default=None, help="region (default: the primary)")
    dq.add_argument(
        "--table", action="append", default=None, help="validate: table to check, repeatable, or 'all' (default all)"
    )
    dq.add_argument("--date", default=None, help="validate: the partition date YYYY-MM-DD (default: the whole table)")
    dq.add_argument(
        "--run-id", default=None, help="validate: run id of the results in dq.results (default validate:<region>:<id>)"
    )
    dq.add_argument("--days", type=int, default=7, help="report: days of dq.results to summarise (default 7)")
    dq.set_defaults(func=_dq)

    sql = sub.add_parser("sql", help="run one SQL query over a region's catalog (gold.news2, silver.vitals, ...)")
    sql.add_argument("query", help='e.g. "SELECT ward, count(*) FROM gold.alerts GROUP BY ward"')
    sql.add_argument("--region", default=None, help="region whose catalog and tables to query (default: the primary)")
    sql.add_argument("--format", choices=["table", "json", "csv"], default="table", help="output (default table)")
    sql.add_argument("--limit", type=int, default=1000, help="print at most this many rows (default 1000)")
    sql.set_defaults(func=_sql)

    nbk = sub.add_parser("notebook", help="run the analyst notebooks headlessly, or strip/check their outputs")
    nbk.add_argument("action", choices=["run", "strip", "check"], help="run: execute with parameters and save the"
                     " executed copies; strip: remove outputs in place; check: fail if any carries outputs")  # fmt: skip
    nbk.add_argument("paths", nargs="*", help="notebooks (default: every notebooks/*.ipynb)")
    nbk.add_argument("--region", default=None, help="run: REGION parameter (default: the primary)")
    nbk.add_argument("--from", dest="date_from", default=None, help="run: DATE_FROM, YYYY-MM-DD (default: DATE_TO - 6)")
    nbk.add_argument("--to", dest="date_to", default=None, help="run: DATE_TO, YYYY-MM-DD, inclusive (default: today)")
    nbk.add_argument("--param", action="append", metavar="NAME=VALUE",
                     help="run: another parameter, a Python literal or a bare string, e.g. REQUIRE_ROWS=True")  # fmt: skip
    nbk.add_argument("--output-dir", default=".state/notebooks", help="run: where executed copies go")
    nbk.add_argument("--timeout", type=int, default=600, help="run: seconds per cell (default 600)")
    nbk.set_defaults(func=_notebook)

    repl = sub.add_parser("replicate", help="DR: replicate the configured tables to another region, or verify a replica",
                          description="Copy each table of replication.tables from --source to --target on Delta's"
                          " log protocol (replica version N = source version N), or `verify` a replica version by"
                          " version, or `restore-model`: register the champion replicated into --target in this profile's MLflow"
                          " registry. Residency policies are enforced; state goes to ops.replication_state.")  # fmt: skip
    repl.add_argument("action", nargs="?", choices=["run", "verify", "restore-model"], default="run",
                      help="run (default): replicate; verify: compare the replica with the source; restore-model:"
                      " register the champion replicated into --target in this profile's MLflow registry (a"
                      " region's own server, after the primary's registry is lost) and set its champion alias")  # fmt: skip
    repl.add_argument("--source", default=None,
                      help="region replicated from (default: the primary in force, which a failover changes)")  # fmt: skip
    repl.add_argument("--target", default=None,
                      help="region holding the replica, e.g. europe (default: the other region; restore-model: required)")  # fmt: skip
    repl.add_argument("--once", action="store_true", help="one pass over every table, then exit")
    repl.add_argument(
        "--continuous",
        action="store_true",
        default=None,
        help="a pass every --interval until killed, or until a failover makes another region the primary",
    )
    repl.add_argument(
        "--interval", type=float, default=None, help="seconds between passes (default replication.interval_s)"
    )
    repl.add_argument("--table", action="append", help="only this table (repeatable)")
    repl.add_argument("--versions", type=int, default=5,
                      help="verify: check rows and checksum of the replica's latest N versions (default 5); "
                      "every commit is compared byte for byte regardless")  # fmt: skip
    repl.add_argument("--all-versions", action="store_true", help="verify: rows and checksum of every version")
    repl.set_defaults(func=_replicate)

    fo = sub.add_parser("failover", help="DR: promote the secondary region (planned or disaster), with RPO and RTO",
                        description="planned: stop the primary's pipeline, final replication pass (RPO 0), fence"
                        " (new epoch), start the pipeline in the target on its Kafka, wait until it flows."
                        " disaster: the primary is unreachable; promote with what was replicated and report"
                        " the RPO per table.")  # fmt: skip
    fo.add_argument("--target-region", default=None, help="region to promote, e.g. europe")
    fo.add_argument("--mode", choices=["planned", "disaster"], default="planned", help="default planned")
    fo.add_argument("--no-pipeline", action="store_true", help="fence and promote only; start no pipeline")
    fo.add_argument("--flowing-timeout", type=float, default=120.0, help="seconds to wait for data to flow")
    fo.add_argument("--status", action="store_true", help="print the region state in force (epoch, primary, regions"
                    " reached) and each region's pipeline as its HDFS last heard of it, as JSON")  # fmt: skip
    fo.add_argument("--json", action="store_true", help="one JSON object on stdout, progress on stderr")
    fo.set_defaults(func=_failover)

    fb = sub.add_parser("failback", help="DR: return to the configured primary (its unreplicated commits archived)")
    fb.add_argument("--no-pipeline", action="store_true", help="switch back without starting the pipeline")
    fb.add_argument("--json", action="store_true", help="one JSON object on stdout, progress on stderr")
    fb.set_defaults(func=_failback)

    ml = sub.add_parser("ml", help="the sepsis model: batch scoring, the live scorer, drift, external validation",
                        description="The sepsis model in service (training and promotion run in the nightly_retraining"
                        " DAG). score: the champion's risk of gold.features_hourly rows of a range -> gold.risk_scores;"
                        " scorer: the live scorer stream (silver.vitals -> features -> risk scores and sepsis_risk"
                        " alerts; a newly promoted champion is picked up at the next micro-batch); drift: PSI per"
                        " feature and for the score, live window vs the champion's training data -> gold.model_drift;"
                        " evaluate: metrics of a model on PhysioNet .psv files; cv: patient-level cross-validation of the"
                        " configured model on PhysioNet files (mean and sd over folds, logged to MLflow).")  # fmt: skip
    ml.add_argument("action", choices=["score", "scorer", "drift", "evaluate", "cv"], help="what to do (see above)")
    ml.add_argument("--region", default=None, help="region whose tables to use (default: the primary)")
    ml.add_argument("--start", type=_timestamp, default=None, help="score/drift: first hour (ISO-8601, UTC)")
    ml.add_argument("--end", type=_timestamp, default=None, help="score/drift: end (exclusive; drift default: now)")
    ml.add_argument("--psv", default=None, help="score/drift: instead of --start/--end, the hours a backfill of this"
                    " PhysioNet archive covers (empty: ignored; how the nightly DAG passes its psv param)")  # fmt: skip
    ml.add_argument("--hours", type=int, default=None, help="drift: live window length (default ml.drift_window_h)")
    ml.add_argument("--once", action="store_true", help="scorer: one catch-up pass (availableNow), then stop")
    ml.add_argument(
        "--psv-dir", type=Path, default=None, help="evaluate/cv: folder of PhysioNet .psv files (or .tar.gz)"
    )
    ml.add_argument("--folds", type=int, default=5, help="cv: folds by patient (default 5)")
    ml.add_argument("--model-uri", default="models:/sepsis_risk@champion",
                    help="evaluate: model to evaluate (default models:/sepsis_risk@champion)")  # fmt: skip
    ml.add_argument("--threshold", type=float, default=None, help="evaluate: alarm threshold (default: the model's)")
    ml.add_argument("--patients", type=int, default=None,
                    help="evaluate/cv, and score/drift with --psv: only the first N patients by id (0: all)")  # fmt: skip
    ml.add_argument("--json", action="store_true", help="one JSON line on stdout, progress on stderr")
    ml.set_defaults(func=_ml)

    bench = sub.add_parser("bench", help="benchmarks beside same-run baselines (JSON); see docs/benchmarks.md")
    bench.add_argument("kind", choices=["all", "report", "ingest", "latency", "scaling", "replication", "training", "encryption"],
                       help="all: every benchmark below, each in its own process, then report.md, PNG plots and"
                       " results.json in --out; report: redraw --out's report from its results.json;"
                       " ingest: Kafka->bronze, bronze->silver, Kafka->gold.news2 events/s vs Kafka's"
                       " consumer perf tool; latency: device event -> gold.news2 / alerts.news2; scaling: ingest at each"
                       " --devices fleet size, throughput and state size; replication: asia -> europe MB/s"
                       " vs a raw HDFS copy of the same bytes, replica lag p95 under steady ingest; training: feature and GBT"
                       " training time and peak memory at fractions of a PhysioNet archive vs a logistic regression on the same rows;"
                       " encryption: bronze rows appended and read with and without Parquet encryption of the payload")  # fmt: skip
    bench.add_argument("--out", default="docs/benchmarks", help="all, report: where report.md, the PNGs and results.json go"
                       " (default docs/benchmarks)")  # fmt: skip
    bench.add_argument("--notes", default=None, help="all, report: the notes file whose generated section gets the"
                       " latest run (default: benchmarks.md beside an --out folder named benchmarks)")  # fmt: skip
    bench.add_argument("--only", default=None, help="all: these benchmarks only, comma-separated (default: every"
                       " one); the others keep their figures from --out's results.json")  # fmt: skip
    bench.add_argument("--devices", default="1000,10000,100000",
                       help="scaling: fleet sizes, comma-separated (1k,10k,100k allowed; default 1000,10000,100000)")  # fmt: skip
    bench.add_argument("--scaling-messages", type=int, default=200_000,
                       help="scaling: messages at each fleet size (default 200000)")  # fmt: skip
    bench.add_argument(
        "--psv-dir",
        type=Path,
        default=None,
        help="training: PhysioNet archive (.tar.gz or folder of .psv); all: default the full archive beside the project,"
        " else the committed sample",
    )
    bench.add_argument(
        "--fractions", default="0.1,0.5,1.0", help="training: shares of the archive's patients (default 0.1,0.5,1.0)"
    )
    bench.add_argument(
        "--versions",
        type=int,
        default=12,
        help="replication: versions of the source table, 100000 rows each (default 12)",
    )
    bench.add_argument("--json", action="store_true", help="one JSON object on stdout, progress on stderr")
    bench.add_argument(
        "--messages",
        type=int,
        default=400_000,
        help="ingest: messages to push through; encryption: rows per table (default 400000)",
    )
    bench.add_argument(
        "--dq", choices=["on", "off", "both"], default="on",
        help="ingest: data-quality checks on, off, or both (two runs, silver rate ratio on/off; default on)",
    )  # fmt: skip
    bench.add_argument(
        "--seconds",
        type=float,
        default=90.0,
        help="latency: measured load duration (default 90); replication: steady-ingest duration",
    )
    bench.add_argument("--rate", type=float, default=40.0, help="latency: messages per second (default 40)")
    bench.add_argument(
        "--warm-up",
        type=float,
        default=60.0,
        help="latency: at least this many seconds of the same load before the measured one, then more (up to"
        " --max-warm-up) until the JIT compilers settle (default 60)",
    )
    bench.add_argument(
        "--max-warm-up",
        type=float,
        default=600.0,
        help="latency: the longest warm-up (default 600; --warm-up 10 --max-warm-up 10 measures a cold driver)",
    )
    bench.set_defaults(func=_bench)

    met = sub.add_parser("metrics", help="Prometheus: the generated scrape configuration, the lakehouse exporter")
    met.add_argument("action", choices=["scrape-config", "exporter"], help="scrape-config: print the Prometheus"
                     " configuration generated from the profile; exporter: serve table versions, replication lag and"
                     " Kafka offsets (run by `stack up`)")  # fmt: skip
    met.add_argument("--rules-dir", default=None, help="scrape-config: where Prometheus finds the rule files")
    met.add_argument("--home", default=None, help="exporter: the service's folder (set by `stack up`)")
    met.set_defaults(func=_metrics)

    sec = sub.add_parser("security", help="security checks: scan for secrets where they must never be")
    sec_sub = sec.add_subparsers(dest="action", required=True, metavar="ACTION")
    scan = sec_sub.add_parser(
        "scan",
        help="look for the deployment's secrets and secret-shaped strings in the repository, the DAG sources,"
        " Airflow's task logs and MLflow's params and tags; exit 1 on a finding (values are never printed)",
    )
    scan.add_argument("--source", action="append", choices=["repository", "dags", "airflow_logs", "mlflow"],
                      help="scan only this source (repeatable; default: all four)")  # fmt: skip
    scan.add_argument("--json", action="store_true", help="print one JSON object: scanned counts and findings")
    scan.set_defaults(func=_security)

    dash = sub.add_parser("dashboards", help="Grafana dashboards of conf/grafana/dashboards")
    dash.add_argument("action", choices=["publish"], help="publish: create or overwrite them in a running Grafana")
    dash.add_argument("--url", required=True, help="Grafana's URL, e.g. http://grafana:3000")
    dash.add_argument("--token", default=None, help="API token (default: $GRAFANA_TOKEN, else"
                      " $GRAFANA_USER/$GRAFANA_PASSWORD)")  # fmt: skip
    dash.set_defaults(func=_dashboards)

    rep_ = sub.add_parser("report", help="static snapshot for people without Grafana: PNG plots and an HTML page")
    rep_.add_argument("--out", required=True, help="folder to write index.html and the PNGs into")
    rep_.add_argument("--minutes", type=float, default=60.0, help="time range, ending now (default 60)")
    rep_.set_defaults(func=_report)
    return parser


def guarded(job: Callable[[], int], on_end: Callable[[int, str | None], object] | None = None) -> int:
    """Run an entry point: a :class:`LakehouseError` prints one clear message (no traceback) and exits non-zero.

    ``on_end`` (if given) hears the exit code and the error message (None on success) when the job ends, however
    it ends; an unexpected exception is re-raised after it."""
    code, error = 1, None
    try:
        code = int(job())
        return code
    except LakehouseError as exc:
        from lakehouse.observability import logs

        logs.failure(exc)
        print(f"error: {exc}", file=sys.stderr)
        code, error = exc.exit_code, str(exc)
        return code
    except Exception as exc:
        from lakehouse.observability import logs

        logs.failure(exc)
        error = f"{type(exc).__name__}: {exc}"
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code, error = 130, "interrupted"
        return code
    finally:
        if on_end is not None:
            on_end(code, error)


def run_job(
    job: str, argv: Sequence[str], body: Callable[[], int], into: Callable[[], RegionConfig] | None = None
) -> int:
    """Run the entry point ``jobs/<job>.py`` (as Airflow and spark-submit run it) through :func:`guarded`, and record
    the run in the ops.audit_log of ``into()``, by default the primary in force (``job.run``:
    :func:`lakehouse.audit.record_job_run`). Recording never changes the job's outcome; it writes to stderr only (a
    task's last stdout line is its XCom)."""
    from lakehouse import audit

    started = time.monotonic()
    return guarded(
        body, lambda code, error: audit.record_job_run(job, argv, code, time.monotonic() - started, error, into)
    )


def job_main(job: str, command: Sequence[str], argv: Sequence[str]) -> int:
    """Entry point of ``jobs/<job>.py`` that runs the CLI's ``command`` with the job's arguments ``argv``: as
    :func:`main`, and recorded as :func:`run_job` records."""
    args = build_parser().parse_args([*command, *argv])
    return run_job(job, argv, lambda: int(args.func(args)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lakehouse` console script; errors print one clear message, no traceback."""
    args = build_parser().parse_args(argv)
    return guarded(lambda: int(args.func(args)))


if __name__ == "__main__":
    sys.exit(main())
