"""spark-submit entry point of the sepsis model's lifecycle steps (each prints one JSON line for the next task):

python jobs/train.py train [--region R] [--max-iter N]   # GBT on gold.features_hourly + labels, logged to MLflow
python jobs/train.py evaluate --run-id ID            # the run's validation metrics -> Prometheus (Pushgateway)
python jobs/train.py register --model-uri runs:/ID/model --run-id ID   # new version of sepsis_risk, alias challenger
python jobs/train.py promote [--region R]            # gate: challenger vs champion on the same validation set
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from lakehouse.cli import run_job
from lakehouse.config import load_config
from lakehouse.errors import LakehouseError


def _field(text: str | None, key: str) -> str | None:
    """A value given directly, or read from the JSON line a previous task printed (its XCom)."""
    if text and text.lstrip().startswith("{"):
        return str(json.loads(text)[key])
    return text or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["train", "evaluate", "register", "promote"])
    parser.add_argument("--region", default=None, help="region whose tables to read (default: the primary)")
    parser.add_argument("--run-id", default=None, help="evaluate/register: the MLflow run of the training")
    parser.add_argument("--model-uri", default=None, help="register: the model to register, e.g. runs:/ID/model")
    parser.add_argument(
        "--interval",
        default=None,
        help="evaluate/register: instead of --run-id, the latest finished"
        " training run tagged with this data interval (how the DAG passes its run on)",
    )
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="train: MLflow run tag")
    parser.add_argument("--max-iter", type=int, default=0, metavar="N",
                        help="train: GBT trees of this run (default 0: the profile's ml.max_iter)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.max_iter < 0:
        parser.error(f"--max-iter must be >= 0, got {args.max_iter}")
    args.run_id = _field(args.run_id, "run_id")
    args.model_uri = _field(args.model_uri, "model_uri")

    def job() -> int:
        from lakehouse.ml import train
        from lakehouse.observability import exporter, metrics
        from lakehouse.stack import manager

        cfg = load_config()
        if args.max_iter:  # logged with the run (params max_iter), so the model says how it was trained
            cfg = dataclasses.replace(cfg, ml=dataclasses.replace(cfg.ml, max_iter=args.max_iter))
        region = cfg.region(args.region or None)
        say = lambda m: print(m, file=sys.stderr, flush=True)
        manager.require(cfg, "mlflow")
        if args.step in ("evaluate", "register") and not args.run_id and args.interval:
            args.run_id = train.finished_run(cfg, args.interval)
            args.model_uri = f"runs:/{args.run_id}/model"
        if args.step in ("evaluate", "register") and not args.run_id:
            raise LakehouseError(f"{args.step} needs --run-id", fix="pass the run id the train step printed")
        if args.step == "evaluate":
            run = train._mlflow(cfg).MlflowClient().get_run(args.run_id)
            m = run.data.metrics
            metrics.record_model_evaluation(cfg.ml.model_name, f"run:{args.run_id[:8]}", m["auroc"], m["utility"],
                                            cfg.ml.auroc_floor)  # fmt: skip
            exporter.push(cfg, "model-evaluation", region.name)
            print(json.dumps({"run_id": args.run_id, **{k: m[k] for k in ("auroc", "auprc", "utility", "brier")}}))
            return 0
        if args.step == "register":
            version = train.register(cfg, args.model_uri or f"runs:/{args.run_id}/model", args.run_id)
            print(json.dumps({"model": cfg.ml.model_name, "version": version, "alias": train.CHALLENGER}))
            return 0
        from lakehouse.session import build_spark, ml_overrides

        manager.require(cfg, "hdfs-namenode", "hdfs-datanode", region=region.name)
        spark = build_spark(cfg, f"sepsis-{args.step}-{region.name}", ml_overrides(cfg), catalog_region=region.name)
        if args.step == "train":
            tags = dict(t.split("=", 1) for t in args.tag if "=" in t)
            result = train.train(spark, cfg, region, progress=say, tags=tags)
            print(json.dumps(result.as_dict()))
            return 0
        decision = train.gate(spark, cfg, region, progress=say)
        champion = decision.challenger if decision.promoted else decision.champion
        if champion is not None:
            metrics.record_champion(cfg.ml.model_name, champion)
            metrics.record_model_evaluation(cfg.ml.model_name, str(decision.challenger), decision.challenger_value
                                            if decision.metric == "auroc" else float("nan"), float("nan"),
                                            cfg.ml.auroc_floor)  # fmt: skip
            exporter.push(cfg, "model-promotion", region.name)
        print(json.dumps(decision.as_dict()))
        return 0

    return run_job("train", sys.argv[1:] if argv is None else argv, job)


if __name__ == "__main__":
    sys.exit(main())
