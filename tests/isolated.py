"""A second, isolated stack beside the shared one: conf/local.yaml with every port shifted and a state folder of
its own (test_stack_lifecycle.py brings services of it up and down; test_secure_pipeline.py runs a secure Kafka
broker of it)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from lakehouse.config import CONF_DIR

# below the kernel's ephemeral range (32768-60999 here): a +20000 shift put mlflow on 35000, where a client
# socket of another process (here a Spark JVM) may sit by chance; 3000-17999 is clear of it and of the
# default stack's own ports (15000-15002, 18080, 19xxx, 29xxx)
PORT_SHIFT = -12000


def _shift(node: Any, by: int, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _shift(v, by, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_shift(v, by, key) for v in node]
    if isinstance(node, int) and key.endswith("_port"):
        return node + by
    if isinstance(node, str):
        return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{int(m.group(1)) + by}", node)
    return node


def write_isolated_config(state: Path, shift: int = PORT_SHIFT, **stack: Any) -> Path:
    """A copy of conf/local.yaml with every port shifted by ``shift`` and its own state folder."""
    data = _shift(yaml.safe_load((CONF_DIR / "local.yaml").read_text()), shift)
    data["state_dir"] = str(state)
    # `make test` runs this module beside the integration tests (scripts/test.sh): both cores are busy, so a
    # service may need longer than the default 120 s to answer (a test of the timeout itself sets its own)
    data["stack"].update({"ready_timeout_s": 360, **stack})
    path = state.parent / f"{state.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def env_for(config: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "LAKEHOUSE_ENV": str(config), **extra}
