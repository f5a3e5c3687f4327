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


def write_private(path: Path, data: bytes, exclusive: bool = False) -> bool:
    """Write ``data`` to ``path`` readable by its owner only (file 0600, folder 0700). ``exclusive``: only if the
    file does not exist yet (False when another process created it first); the file is then written whole under
    another name and linked into place, so a process or thread starting at the same moment never reads it empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    target = path.with_name(f".{path.name}.{os.getpid()}.{_random.token_hex(4)}") if exclusive else path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC), 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_TRUNC
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    if not exclusive:
        return True
    try:
        os.link(target, path)
    except FileExistsError:
        return False
    finally:
        target.unlink()
    return True


def read_secret(
    path: Path, what: str = "the secret file", fix: str = "mount the secret there (see the profile)"
) -> str:
    """The stripped text of the secret file ``path``; a clear error naming ``what`` when it is missing or empty."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError:
        raise LakehouseError(f"{what} ({path}) cannot be read", fix=fix) from None
    if not value:
        raise LakehouseError(f"{what} ({path}) is empty", fix="write the secret into it")
    return value


def _read_or_generate(path: Path, nbytes: int = 24) -> str:
    """The secret in ``path``: created once (URL-safe random text, file mode 0600, folder 0700), then read."""
    if not path.is_file():
        write_private(path, _random.token_urlsafe(nbytes).encode(), exclusive=True)  # else another process won
    return read_secret(path)


def secret(cfg: Config, name: str, nbytes: int = 24) -> str:
    """The generated secret ``name`` of this state folder (created at the first use)."""
    return _read_or_generate(secret_file(cfg, name), nbytes)


def mlflow_password(cfg: Config) -> str:
    """The password of the profile's MLflow user, from ``mlflow.password_file``. On the embedded profile that is
    the local tracking server's admin password, generated at the first use (MLflow has no safe default)."""
    path = cfg.mlflow.password_file
    if cfg.mlflow.embedded:
        return _read_or_generate(path)
    fix = f"mount the secret there (mlflow.password_file) or set {MLFLOW_PASSWORD_ENV}"
    return read_secret(path, f"the MLflow password of user {cfg.mlflow.username!r}", fix)


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
