"""Airflow's api-server records what it refuses: the ASGI middleware writes one line per 401/403 (the user the
client claimed, never a password; other responses write nothing), the lines become ``airflow.access`` rows, and
the local stack's password file gives every user a password without dropping the ones it has."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path
from typing import Any

from lakehouse.config import Config
from lakehouse.orchestration import services
from lakehouse.security import airflow_audit
from lakehouse.security.airflow_denials import DenialLog, token_subject


def _jwt(claims: dict[str, Any]) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzUxMiJ9.{part}.c2lnbmF0dXJl"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """The app under the middleware: reads the whole body, answers by path (401 log-in, 403 trigger, else 200)
    and echoes the body it read."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status = 401 if scope["path"] == "/auth/token" else 403 if scope["path"].endswith("/dagRuns") else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _call(log: DenialLog, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """One request through the middleware, its body in two chunks; the body of the response."""
    chunks, answer = [body[:10], body[10:]], bytearray()

    async def receive() -> dict[str, Any]:
        part = chunks.pop(0)
        return {"type": "http.request", "body": part, "more_body": bool(chunks)}

    async def send(message: Any) -> None:
        answer.extend(message.get("body", b""))

    scope = {"type": "http", "method": method, "path": path, "headers": headers, "client": ("10.0.0.9", 5123)}
    asyncio.run(log(scope, receive, send))
    return bytes(answer)


def test_refusals_are_written_with_the_claimed_user_and_nothing_else_is(tmp_path: Path) -> None:
    file = tmp_path / "denials.jsonl"
    log = DenialLog(_app, str(file))
    login = json.dumps({"username": "mallory", "password": "s3cret-Pa55"}).encode()  # secrets-scan: allow
    assert _call(log, "POST", "/auth/token", [], login) == login, "the app reads the body the middleware tapped"
    bearer = [(b"authorization", f"Bearer {_jwt({'sub': 'viewer', 'role': 'viewer'})}".encode())]
    _call(log, "POST", "/api/v2/dags/nightly_retraining/dagRuns", bearer, b"{}")
    _call(log, "GET", "/api/v2/dags", bearer)  # 200: not recorded
    _call(log, "POST", "/api/v2/dags/x/dagRuns", [(b"authorization", b"Bearer forged")])
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert [(d["status"], d["user"], d["method"], d["path"], d["ip"]) for d in lines] == [
        (401, "mallory", "POST", "/auth/token", "10.0.0.9"),
        (403, "viewer", "POST", "/api/v2/dags/nightly_retraining/dagRuns", "10.0.0.9"),
        (403, None, "POST", "/api/v2/dags/x/dagRuns", "10.0.0.9"),
    ]
    assert "s3cret" not in file.read_text()

    rows = airflow_audit.rows([*file.read_text().splitlines(), "garbage"], "asia")
    assert [(r["action"], r["actor"], r["target"], r["outcome"]) for r in rows] == [
        ("airflow.access", "airflow:mallory", "POST /auth/token", "denied"),
        ("airflow.access", "airflow:viewer", "POST /api/v2/dags/nightly_retraining/dagRuns", "denied"),
        ("airflow.access", "airflow:anonymous", "POST /api/v2/dags/x/dagRuns", "denied"),
    ]
    assert [json.loads(r["detail"])["status"] for r in rows] == [401, 403, 403]


def test_without_a_denials_file_the_middleware_only_passes_requests_on(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("LAKEHOUSE_AIRFLOW_DENIALS", raising=False)
    monkeypatch.chdir(tmp_path)
    log = DenialLog(_app)
    assert log.file is None
    assert _call(log, "POST", "/api/v2/dags/x/dagRuns", [], b"{}") == b"{}"  # a 403, passed on
    assert not list(tmp_path.iterdir())


def test_token_subject_reads_the_claim_of_a_bearer_token_only() -> None:
    assert token_subject([(b"Authorization", f"Bearer {_jwt({'sub': 'admin'})}".encode())]) == "admin"
    assert token_subject([(b"authorization", f"Basic {_jwt({'sub': 'admin'})}".encode())]) is None
    assert token_subject([(b"authorization", b"Bearer a.%%%.c")]) is None
    assert token_subject([(b"authorization", f"Bearer {_jwt({'role': 'x'})}".encode())]) is None
    assert token_subject([]) is None


def test_every_user_gets_a_password_and_existing_ones_are_kept(cfg: Config, tmp_path: Path) -> None:
    from dataclasses import replace

    file = tmp_path / "passwords.json"
    local = replace(cfg, state_dir=tmp_path, airflow=replace(cfg.airflow, password_file=file))
    file.write_text(json.dumps({cfg.airflow.username: "kept"}))
    services.ensure_password(local)
    written = json.loads(file.read_text())
    assert written[cfg.airflow.username] == "kept"
    assert set(written) == set(services.users(local)) == {cfg.airflow.username, services.VIEWER}
    assert len(written[services.VIEWER]) >= 16 and stat.S_IMODE(file.stat().st_mode) == 0o600
    services.ensure_password(local)
    assert json.loads(file.read_text()) == written, "a complete file is left as it is"
    env = services.airflow_env(local)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{cfg.airflow.username}:admin,viewer:viewer"
    assert Path(env["AIRFLOW__CORE__PLUGINS_FOLDER"], "lakehouse_denials.py").is_file()
    assert Path(env["LAKEHOUSE_AIRFLOW_DENIALS"]).is_relative_to(tmp_path)  # the state folder of the profile
