"""Service credentials of this deployment: generated once into ``<state_dir>/secrets`` (git-ignored, mode 0600)
on the embedded profile, mounted as files (Docker secrets) on a cluster; never in code or committed config.

MLflow's clients (``mlflow`` and its ``MlflowClient``) authenticate from the environment variables
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``; :func:`export_mlflow_client_env` sets them from the
loaded profile, so every job, Airflow task and notebook of this process talks to the tracking server as the
profile's user without a credential on any command line.
"""

from __future__ import annotations

import os
import secrets as _random
from pathlib import Path

from lakehouse.config import Config
from lakehouse.errors import LakehouseError

SECRETS_DIR = "secrets"
MLFLOW_USER_ENV = "MLFLOW_TRACKING_USERNAME"
MLFLOW_PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"


def secret_file(cfg: Config, name: str) -> Path:
    """Where the generated secret ``name`` of this state folder lives."""
    return cfg.state_dir / SECRETS_DIR / name


def _read_or_generate(path: Path, nbytes: int = 24) -> str:
    """The secret in ``path``: created once (URL-safe random text, file mode 0600, folder 0700), then read."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(_random.token_urlsafe(nbytes))
    return _read(path)


def _read(path: Path) -> str:
    if not path.is_file():
        raise LakehouseError(
            f"the secret file {path} does not exist",
            fix=f"mount the secret there (see the profile) or set {MLFLOW_PASSWORD_ENV} for MLflow's password",
        )
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise LakehouseError(f"the secret file {path} is empty", fix="write the secret into it")
    return value


def secret(cfg: Config, name: str, nbytes: int = 24) -> str:
    """The generated secret ``name`` of this state folder (created at the first use)."""
    return _read_or_generate(secret_file(cfg, name), nbytes)


def mlflow_password(cfg: Config) -> str:
    """The password of the profile's MLflow user, from ``mlflow.password_file``. On the embedded profile that is
    the local tracking server's admin password, generated at the first use (MLflow has no safe default)."""
    path = cfg.mlflow.password_file
    return _read_or_generate(path) if cfg.mlflow.embedded else _read(path)


def export_mlflow_client_env(cfg: Config) -> None:
    """Let this process's MLflow clients authenticate as the profile's user.

    On the embedded profile the local server's admin credentials always win (a profile loaded later in the same
    process, such as a test's isolated stack, brings its own server and password). Elsewhere an operator's
    ``MLFLOW_TRACKING_PASSWORD`` is kept, and the password file is read only when the variable is absent and
    the file exists, so a host without MLflow access can still load the profile.
    """
    if cfg.mlflow.embedded:
        os.environ[MLFLOW_USER_ENV] = cfg.mlflow.username
        os.environ[MLFLOW_PASSWORD_ENV] = mlflow_password(cfg)
        return
    if MLFLOW_PASSWORD_ENV not in os.environ:
        if not cfg.mlflow.password_file.is_file():
            return  # this host does not talk to MLflow (or gives the credentials later)
        os.environ[MLFLOW_PASSWORD_ENV] = mlflow_password(cfg)
    os.environ.setdefault(MLFLOW_USER_ENV, cfg.mlflow.username)
