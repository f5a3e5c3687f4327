"""`lakehouse dashboards publish` against Grafana's HTTP API.

Grafana cannot be installed on these machines (not in Debian, not on Maven Central or PyPI), so this
test serves the four endpoints grafana-client calls, answering as Grafana's HTTP API documents them
(``GET /api/frontend/settings``, ``GET|POST /api/folders``, ``POST /api/dashboards/db``), and checks
what the publisher sends: every dashboard, in one folder, overwritten on a re-publish, with the
caller's credentials. The panels' PromQL is checked against the real Prometheus elsewhere
(tests/integration/test_observability.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lakehouse.errors import LakehouseError
from lakehouse.observability import dashboards

TOKEN = "glsa_test-token"  # made up for the stand-in; secrets-scan: allow


@dataclass
class GrafanaAPI:
    """The state behind the stand-in: folders, dashboards by uid (with versions), and every request."""

    url: str = ""
    folders: list[dict[str, Any]] = field(default_factory=list)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Authorization
    reject_uid: str | None = None  # answer 400 for this dashboard uid, as Grafana does for a bad model


def _handler(api: GrafanaAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization")
            api.requests.append((self.command, self.path, auth))
            if auth != f"Bearer {TOKEN}":
                self._reply(401, {"message": "Unauthorized"})
                return False
            return True

        def do_GET(self) -> None:
            if not self._authorized():
                return
            if self.path == "/api/frontend/settings":
                self._reply(200, {"buildInfo": {"version": "12.2.0", "edition": "Open Source"}})
            elif self.path.startswith("/api/folders"):
                self._reply(200, api.folders)
            else:
                self._reply(404, {"message": "Not found"})

        def do_POST(self) -> None:
            if not self._authorized():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/api/folders":
                folder = {"id": len(api.folders) + 1, "uid": body.get("uid") or "generated", "title": body["title"]}
                api.folders.append(folder)
                self._reply(200, folder)
            elif self.path == "/api/dashboards/db":
                board = body["dashboard"]
                if board["uid"] == api.reject_uid:
                    self._reply(400, {"message": "Dashboard title cannot be empty", "status": "invalid-dashboard"})
                    return
                known = api.dashboards.get(board["uid"])
                if known is not None and not body.get("overwrite"):
                    self._reply(412, {"message": "The dashboard has been changed by someone else",
                                      "status": "version-mismatch"})  # fmt: skip
                    return
                version = 1 if known is None else known["version"] + 1
                api.dashboards[board["uid"]] = {"version": version, "body": body}
                self._reply(200, {"id": 1, "uid": board["uid"], "url": f"/d/{board['uid']}/x", "status": "success",
                                  "version": version, "slug": "x"})  # fmt: skip
            else:
                self._reply(404, {"message": "Not found"})

    return Handler


@pytest.fixture()
def grafana() -> Iterator[GrafanaAPI]:
    api = GrafanaAPI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def test_publish_sends_every_dashboard_into_one_folder_and_overwrites_on_republish(grafana: GrafanaAPI) -> None:
    boards = dashboards.load_all()
    first = dashboards.publish(grafana.url, boards, token=TOKEN)
    assert sorted(uid for uid, _ in first) == sorted(d["uid"] for d in boards.values())
    assert all(link == f"{grafana.url}/d/{uid}/x" for uid, link in first)
    assert grafana.folders == [{"id": 1, "uid": "lakehouse", "title": dashboards.FOLDER}]
    for board in boards.values():
        sent = grafana.dashboards[board["uid"]]["body"]
        assert sent["folderUid"] == "lakehouse" and sent["overwrite"] is True
        assert sent["dashboard"]["id"] is None  # Grafana assigns ids; a file's id must not collide
        assert sent["dashboard"]["panels"] == board["panels"]

    dashboards.publish(grafana.url, boards, token=TOKEN)  # again: the folder is found, every board replaced
    assert len(grafana.folders) == 1
    assert {b["version"] for b in grafana.dashboards.values()} == {2}
    assert {auth for _, _, auth in grafana.requests} == {f"Bearer {TOKEN}"}


def test_publish_with_wrong_credentials_says_so(grafana: GrafanaAPI) -> None:
    with pytest.raises(LakehouseError, match="refused the credentials") as err:
        dashboards.publish(grafana.url, dashboards.load_all(), token="wrong")
    assert not grafana.dashboards
    assert err.value.fix  # tells the operator what to pass


def test_a_dashboard_grafana_rejects_fails_the_publish_with_grafanas_reason(grafana: GrafanaAPI) -> None:
    boards = dashboards.load_all()
    grafana.reject_uid = max(d["uid"] for d in boards.values())
    with pytest.raises(LakehouseError, match="rejected a dashboard") as err:
        dashboards.publish(grafana.url, boards, token=TOKEN)
    assert "cannot be empty" in str(err.value)


def test_publish_refuses_a_malformed_dashboard_before_calling_grafana(grafana: GrafanaAPI) -> None:
    boards = dashboards.load_all()
    name = min(boards)
    boards[name] = {**boards[name], "uid": "bad uid!"}
    with pytest.raises(LakehouseError, match="structure check"):
        dashboards.publish(grafana.url, boards, token=TOKEN)
    assert grafana.requests == []
