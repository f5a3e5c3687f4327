"""Airflow's api-server records every request it refuses: an ASGI middleware, installed in the local stack's
api-server by the lakehouse plugin (``lakehouse/orchestration/airflow_plugins``), that appends one line per 401
or 403 response to the denials file ``$LAKEHOUSE_AIRFLOW_DENIALS`` names (:mod:`.denials`). The lakehouse
exporter forwards the lines to ``ops.audit_log`` as ``airflow.access`` / ``denied`` (:mod:`.airflow_audit`).

The user is the name the client gave: the ``sub`` claim of its bearer token (read, not verified: a forged
token's claim is recorded as claimed) or, for a refused log-in (``POST /auth/token``), the ``username`` of the
request body (its first 4 KiB; the password is never read out of it). Requests are passed on unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from lakehouse.security.denials import append, denial

log = logging.getLogger(__name__)

DENIALS_ENV = "LAKEHOUSE_AIRFLOW_DENIALS"
LOGIN_PATH = "/auth/token"
MAX_BODY = 4096

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def token_subject(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The ``sub`` claim of a ``Authorization: Bearer <JWT>`` header (unverified), or None."""
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return None
        payload = token.split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, binascii.Error):
            return None
        sub = claims.get("sub") if isinstance(claims, dict) else None
        return str(sub)[:200] if sub is not None else None
    return None


def login_name(body: bytes) -> str | None:
    """The ``username`` of a log-in request's JSON body, or None."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    name = parsed.get("username") if isinstance(parsed, dict) else None
    return str(name)[:200] if name is not None else None


class DenialLog:
    """ASGI middleware: each 401/403 response becomes one line of the denials file (none without one)."""

    def __init__(self, app: App, file: str | None = None) -> None:
        self.app = app
        target = file or os.environ.get(DENIALS_ENV)
        self.file = Path(target) if target else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.file is None:
            await self.app(scope, receive, send)
            return
        login = scope.get("method") == "POST" and str(scope.get("path", "")).endswith(LOGIN_PATH)
        body = bytearray()

        async def tap() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < MAX_BODY:
                body.extend(message.get("body", b"")[: MAX_BODY - len(body)])
            return message

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                self.record(scope, int(message["status"]), login_name(bytes(body)) if login else None)
            await send(message)

        await self.app(scope, tap if login else receive, watch)

    def record(self, scope: Scope, status: int, login: str | None) -> None:
        assert self.file is not None
        client = scope.get("client")
        user = login or token_subject(list(scope.get("headers", [])))
        try:
            append(self.file, denial(status, user, str(scope.get("method", "")), str(scope.get("path", "")),
                                     str(client[0]) if client else None))  # fmt: skip
        except OSError as exc:  # a full disk must not turn a refusal into a server error: say it in the server log
            log.error(f"refused request not recorded in {self.file}: {exc}")
