"""Service credentials come from generated or mounted secret files, reach MLflow's clients through the
environment, and never from committed config."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from lakehouse.config import CONF_DIR, Config, load_config
from lakehouse.errors import LakehouseError
from lakehouse.security import credentials

USER, PASSWORD = credentials.MLFLOW_USER_ENV, credentials.MLFLOW_PASSWORD_ENV


def _profile(tmp_path: Path, name: str, **mlflow: object) -> Path:
    data = yaml.safe_load((CONF_DIR / f"{name}.yaml").read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["mlflow"].update(mlflow)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLflow credentials in the environment during the test; the session's own are restored after it."""
    for name in (USER, PASSWORD):
        monkeypatch.setenv(name, "")  # records the session's value (or its absence) for the restore
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
def test_the_embedded_admin_password_is_generated_once_private_and_exported(tmp_path: Path) -> None:
    cfg = load_config(str(_profile(tmp_path, "local")))
    path = cfg.mlflow.password_file
    assert path == cfg.state_dir / "secrets" / "mlflow-admin-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first = path.read_text()
    assert len(first) >= 24 and first not in (CONF_DIR / "local.yaml").read_text()
    assert os.environ[USER] == "admin" and os.environ[PASSWORD] == first
    again = load_config(str(_profile(tmp_path, "local")))
    assert credentials.mlflow_password(again) == first  # read, not regenerated


@pytest.mark.usefixtures("clean_env")
def test_each_embedded_profile_loaded_brings_its_own_servers_password(tmp_path: Path) -> None:
    one = load_config(str(_profile(tmp_path / "one", "local")))
    two = load_config(str(_profile(tmp_path / "two", "local")))
    assert credentials.mlflow_password(one) != credentials.mlflow_password(two)
    assert os.environ[PASSWORD] == credentials.mlflow_password(two)
    credentials.export_mlflow_client_env(one)  # what every MLflow use of a job does before it talks
    assert os.environ[PASSWORD] == credentials.mlflow_password(one)


@pytest.mark.usefixtures("clean_env")
def test_a_cluster_profile_reads_the_mounted_password_and_keeps_an_operators_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "mlflow_lakehouse_password"
    cfg: Config = load_config(str(_profile(tmp_path, "cluster", password_file=str(mounted))))
    assert USER not in os.environ and PASSWORD not in os.environ  # nothing mounted: nothing exported
    with pytest.raises(
        LakehouseError, match=r"MLflow password of user .lakehouse. \(.*mlflow_lakehouse_password\) cannot be read"
    ):
        credentials.mlflow_password(cfg)
    mounted.write_text("from-the-secret\n")
    credentials.export_mlflow_client_env(cfg)
    assert (os.environ[USER], os.environ[PASSWORD]) == ("lakehouse", "from-the-secret")
    monkeypatch.setenv(PASSWORD, "the-operators")
    credentials.export_mlflow_client_env(cfg)
    assert os.environ[PASSWORD] == "the-operators"
    mounted.write_text("\n")
    with pytest.raises(LakehouseError, match="is empty"):
        credentials.mlflow_password(cfg)


def test_an_mlflow_username_with_a_colon_is_refused(tmp_path: Path) -> None:
    from lakehouse.errors import ConfigError

    with pytest.raises(ConfigError, match="mlflow.username"):
        load_config(str(_profile(tmp_path, "local", username="ad:min")))


def test_private_files_are_owner_only_even_when_they_existed_with_a_wider_mode(tmp_path: Path) -> None:
    path = tmp_path / "svc" / "server.properties"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)
    assert credentials.write_private(path, b'sasl.jaas.config=... password="s3cret";')
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert not credentials.write_private(path, b"other", exclusive=True)  # exclusive: the first writer wins
    assert "s3cret" in path.read_text()
    with pytest.raises(LakehouseError, match=r"the Kafka password of user 'device' \(.*\) cannot be read"):
        credentials.read_secret(tmp_path / "missing", "the Kafka password of user 'device'")
