"""The sepsis model's champion, replicated beside the tables, so a region can score without the MLflow registry.

Layout in a region's lakehouse root (folder ``models``, the pipeline user's alone)::

    models/<model>/v<version>/        the MLflow model directory as logged (MLmodel, sparkml/, requirements, ...)
    models/<model>/v<version>.json    its manifest: model, version, run id, the run's metrics, tags, every file
                                      with its size and SHA-256
    models/<model>/champion.json      the champion alias: {"model", "alias", "version"}

A version's files land first (each published atomically), then its manifest, then the alias, so a reader that
finds the alias finds a whole model. Idempotent: a version whose manifest exists is not copied again; a kill at
any point leaves a version without manifest, which the next pass copies again.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io.hdfs import Hdfs

FOLDER = "models"
ALIAS = "champion"


@dataclass(frozen=True)
class ModelResult:
    """What one pass did to the champion: replicated | up_to_date (only the alias may have moved) | absent."""

    model: str
    version: int
    status: str
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        if self.status == "absent":
            return f"model {self.model}: no champion in the registry, nothing to replicate"
        copied = f", {self.files} files, {self.bytes / 1e6:.1f} MB" if self.status == "replicated" else ""
        return f"model {self.model} v{self.version} ({ALIAS}): {self.status}{copied} in {self.seconds:.1f}s"


def model_path(region: RegionConfig, model: str) -> str:
    """Absolute HDFS path of ``model``'s replicas in ``region``."""
    return f"{Hdfs(region).root}/{FOLDER}/{model}"


def registry_answers(cfg: Config, timeout_s: float = 3.0) -> bool:
    """Whether the MLflow tracking server answers its health check (the registry's clients retry for minutes)."""
    try:
        with urllib.request.urlopen(f"{cfg.mlflow.tracking_uri.rstrip('/')}/health", timeout=timeout_s) as reply:
            return int(reply.status) == 200
    except OSError:
        return False


def replicate_champion(cfg: Config, target: RegionConfig) -> ModelResult:
    """Copy the registry's champion of ``ml.model_name`` (files, then manifest, then alias) into ``target``."""
    from lakehouse.ml import train

    started = time.monotonic()
    client = train._mlflow(cfg).MlflowClient()
    name = cfg.ml.model_name
    try:
        found = client.get_model_version_by_alias(name, train.CHAMPION)
    except Exception:  # noqa: BLE001 - MlflowException: no such model or alias yet
        return ModelResult(name, -1, "absent")
    version, hdfs, base = int(found.version), Hdfs(target), model_path(target, name)
    manifest_path = f"{base}/v{version}.json"
    files, size, status = 0, 0, "up_to_date"
    if hdfs.status(manifest_path) is None:
        import mlflow

        hdfs.secure_folders()  # models/ is the pipeline user's alone, like the tables it serves

        listed: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="model-replica-") as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp))
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                data = path.read_bytes()
                rel = path.relative_to(local).as_posix()
                hdfs.publish(f"{base}/v{version}/{rel}", data)
                listed.append({"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        run = client.get_run(found.run_id)
        manifest = {
            "model": name, "version": version, "run_id": found.run_id, "metrics": dict(run.data.metrics),
            "tags": dict(found.tags), "replicated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": listed,
        }  # fmt: skip
        hdfs.publish(manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
        files, size, status = len(listed), sum(f["bytes"] for f in listed), "replicated"
    alias = json.dumps({"model": name, "alias": ALIAS, "version": version}, sort_keys=True).encode()
    alias_path = f"{base}/{ALIAS}.json"
    if hdfs.status(alias_path) is None or hdfs.read(alias_path) != alias:
        hdfs.publish(alias_path, alias)
    return ModelResult(name, version, status, files, size, time.monotonic() - started)


def read_champion(region: RegionConfig, model: str) -> dict[str, Any]:
    """The manifest of the champion replicated into ``region``, checked whole (every file there, its size)."""
    hdfs, base = Hdfs(region), model_path(region, model)
    alias_path = f"{base}/{ALIAS}.json"
    if hdfs.status(alias_path) is None:
        raise LakehouseError(
            f"no replica of model {model!r} in region {region.name} ({alias_path} is missing)",
            fix="replicate it from the primary while its registry answers: lakehouse replicate --once",
        )
    version = int(json.loads(hdfs.read(alias_path))["version"])
    manifest: dict[str, Any] = json.loads(hdfs.read(f"{base}/v{version}.json"))
    for entry in manifest["files"]:
        found = hdfs.status(f"{base}/v{version}/{entry['path']}")
        if found is None or found.length != entry["bytes"]:
            raise LakehouseError(
                f"replica of model {model!r} v{version} in region {region.name} is incomplete: {entry['path']}",
                fix="replicate it again from the primary: lakehouse replicate --once",
            )
    return manifest


def load_champion_model(region: RegionConfig, manifest: dict[str, Any]) -> Any:
    """The replicated champion's Spark pipeline (the MLflow spark flavour's ``sparkml`` folder), read from HDFS."""
    from pyspark.ml import PipelineModel

    base = model_path(region, manifest["model"])
    return PipelineModel.load(f"{region.hdfs.namenode_uri.rstrip('/')}{base}/v{manifest['version']}/sparkml")
