"""The sepsis model's champion, replicated beside the tables, so a region can score without the MLflow registry.

Layout in a region's lakehouse root (folder ``models``, the pipeline user's alone)::

    models/<model>/v<version>/        the MLflow model directory as logged (MLmodel, sparkml/, requirements, ...)
    models/<model>/v<version>.json    its manifest: model, version, run id, the run's metrics, tags, every file
                                      with its size and SHA-256
    models/<model>/champion.json      the champion alias: {"model", "alias", "version"}

A version's files land first (each published atomically), then its manifest, then the alias, so a reader that
finds the alias finds a whole model. Idempotent: a version whose manifest exists is not copied again; a kill at
any point leaves a version without manifest, which the next pass copies again.

The replica also rebuilds a registry: :func:`restore_champion` registers the replicated champion in the MLflow
registry of the selected profile (a region's own server after the primary's is lost): the files checked against
the manifest, logged as a run's artifacts with the manifest's metrics, a model version with its tags and
``replica.of``, and the champion alias, so the registry's clients (scorer, ``models:/<model>@champion``) work there.
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
REPLICA_TAG = "replica.of"  # on a restored run and version: "<model>/v<version>@<run id>" of the source registry


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


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`restore_champion` did: ``restored`` (a new version) or ``up_to_date`` (the version existed)."""

    model: str
    source_version: int
    version: int
    status: str
    registry: str
    seconds: float

    def line(self) -> str:
        return (
            f"model {self.model} v{self.source_version} (replica) -> {self.registry}: {self.status} as version"
            f" {self.version}, alias {ALIAS} set, in {self.seconds:.1f}s"
        )


def restore_champion(cfg: Config, region: RegionConfig) -> RestoreResult:
    """Register the champion replicated into ``region`` in ``cfg``'s MLflow registry and point its champion alias
    at it; a version that already carries the same ``replica.of`` is reused (idempotent)."""
    from lakehouse.ml import train

    started = time.monotonic()
    name = cfg.ml.model_name
    manifest = read_champion(region, name)
    origin = f"{name}/v{manifest['version']}@{manifest['run_id']}"
    mlflow = train._mlflow(cfg)
    client = mlflow.MlflowClient()
    try:
        found = [v for v in client.search_model_versions(f"name = '{name}'") if v.tags.get(REPLICA_TAG) == origin]
    except Exception as exc:  # noqa: BLE001 - MlflowException or a connection error: say which registry
        raise LakehouseError(
            f"the MLflow registry at {cfg.mlflow.tracking_uri} does not answer ({type(exc).__name__})",
            fix="point the profile's mlflow.tracking_uri at the region's own server and start it",
        ) from None
    status = "up_to_date"
    if found:
        version = int(found[0].version)
    else:
        hdfs, base = Hdfs(region), model_path(region, name)
        with tempfile.TemporaryDirectory(prefix="model-restore-") as tmp:
            local = Path(tmp) / "model"
            for entry in manifest["files"]:
                data = hdfs.read(f"{base}/v{manifest['version']}/{entry['path']}")
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise LakehouseError(
                        f"replica of model {name!r} v{manifest['version']} in region {region.name}: {entry['path']}"
                        " does not match its manifest's SHA-256",
                        fix="replicate it again from the primary (lakehouse replicate --once) before restoring",
                    )
                target = local / entry["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            tags = {REPLICA_TAG: origin, "replica.region": region.name}
            with mlflow.start_run(run_name=f"replica of {origin}", tags=tags) as run:
                mlflow.log_metrics({k: float(v) for k, v in manifest["metrics"].items()})
                mlflow.log_artifacts(str(local), artifact_path="model")
        version_tags = {**{k: str(v) for k, v in manifest["tags"].items()}, REPLICA_TAG: origin}
        created = mlflow.register_model(f"runs:/{run.info.run_id}/model", name, tags=version_tags)  # creates the model
        version, status = int(created.version), "restored"
    client.set_registered_model_alias(name, ALIAS, str(version))
    result = RestoreResult(
        name, int(manifest["version"]), version, status, cfg.mlflow.tracking_uri, time.monotonic() - started
    )
    from lakehouse import audit

    detail = {"registry": result.registry, "version": version, "replica_of": origin, "champion": True}
    audit.record(region, audit.entry("model.restore", f"{name}/{version}", region.name, status, detail))
    return result


def load_champion_model(region: RegionConfig, manifest: dict[str, Any]) -> Any:
    """The replicated champion's Spark pipeline (the MLflow spark flavour's ``sparkml`` folder), read from HDFS."""
    from pyspark.ml import PipelineModel

    base = model_path(region, manifest["model"])
    return PipelineModel.load(f"{region.hdfs.namenode_uri.rstrip('/')}{base}/v{manifest['version']}/sparkml")
