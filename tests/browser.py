"""Open a page in headless Chromium (Debian's chromium package) over the DevTools protocol: collect console
errors, uncaught exceptions and failed loads, and take a screenshot."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CHROMIUM = ("chromium", "chromium-browser")


@dataclass(frozen=True)
class PageVisit:
    """What loading a page showed: every console error / exception / failed load, and the title."""

    errors: list[str]
    title: str


def chromium_binary() -> str:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("headless Chromium is missing: run `make setup` (Debian package chromium)")


def visit(url: str, screenshot: Path, width: int = 1000, height: int = 2600, timeout_s: float = 60.0) -> PageVisit:
    """Load ``url``, wait for its load event and a quiet moment, save a PNG screenshot, return what went wrong."""
    profile = Path(tempfile.mkdtemp(prefix="lakehouse-chromium-"))
    proc = subprocess.Popen(
        [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        port_file = profile / "DevToolsActivePort"
        while not port_file.exists() or not port_file.read_text().strip():
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.loads(resp.read()) if t["type"] == "page")
        return _drive(page["webSocketDebuggerUrl"], url, screenshot, deadline)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _drive(ws_url: str, url: str, screenshot: Path, deadline: float) -> PageVisit:
    errors: list[str] = []
    ids = iter(range(1, 10_000))
    with connect(ws_url, max_size=64 * 1024 * 1024) as ws:

        def call(method: str, **params: Any) -> dict[str, Any]:
            msg_id = next(ids)
            ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv(timeout=max(1.0, deadline - time.monotonic())))
                if msg.get("id") == msg_id:
                    assert "error" not in msg, msg
                    return dict(msg.get("result", {}))
                note(msg)

        def note(msg: dict[str, Any]) -> None:
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                errors.append("exception: " + params["exceptionDetails"].get("text", "?"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}".strip())

        for domain in ("Runtime", "Log", "Page"):
            call(f"{domain}.enable")
        call("Page.navigate", url=url)
        loaded = False
        while not loaded:
            msg = json.loads(ws.recv(timeout=max(1.0, deadline - time.monotonic())))
            loaded = msg.get("method") == "Page.loadEventFired"
            note(msg)
        quiet_until = time.monotonic() + 1.0  # late console messages and failed loads
        while time.monotonic() < quiet_until:
            try:
                note(json.loads(ws.recv(timeout=max(0.05, quiet_until - time.monotonic()))))
            except TimeoutError:
                break
        title = str(call("Runtime.evaluate", expression="document.title")["result"].get("value", ""))
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return PageVisit(errors=errors, title=title)
