"""The SDK against the real gateway: `$HELIO_BIN start` with the SDK
sideband on, in front of Helio's own demo shop server (`helio demo-server`,
over stdio), so no other server is needed."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import helio

TOKEN = secrets.token_hex(32)
ADAPTER_TOKEN = secrets.token_hex(32)
API_SECRET = secrets.token_hex(32)

# Rules whose evidence the tests report; filler keys make the allowlist
# preview in a refusal cut off.
POLICIES = {
    "rules": [
        {
            "name": "refunds-after-lookup",
            "match": {"tool": "process_refund"},
            "action": "allow",
            "evidence": {"requires": ["orders.lookup"]},
        },
        {"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny",
         "feedback": {"message": "Deleting is disabled.", "suggestion": "Archive the record instead."}},
        {"name": "ask-for-wires", "match": {"tool": "wire_money"}, "action": "require_approval"},
        {"name": "two-searches", "match": {"tool": "search_docs"}, "action": "rate_limit",
         "limits": {"max_calls": 2, "window": "1h", "key": "global"}},
        {
            "name": "filler",
            "match": {"tool": "never_called"},
            "action": "allow",
            "evidence": {"requires": [f"filler.{i:02d}" for i in range(24)]},
        },
    ]
}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class Gateway:
    def __init__(
        self, mcp_url: str, sdk_url: str, dashboard_url: str, proc: subprocess.Popen[bytes], log: Path
    ) -> None:
        self.mcp_url = mcp_url
        self.sdk_url = sdk_url
        self.dashboard_url = dashboard_url
        self.proc = proc
        self.log = log


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    binary = os.environ.get("HELIO_BIN")
    if not binary or not Path(binary).exists():
        pytest.fail("set HELIO_BIN to a built helio binary (scripts/test.sh does)")
    mcp, dashboard, sdk = free_ports(3)
    workdir = tmp_path_factory.mktemp("gateway")
    config = {
        "version": "1",
        "upstream": {"transport": "stdio", "command": binary, "args": ["demo-server"]},
        "listen": {"host": "127.0.0.1", "port": mcp},
        "dashboard": {"enabled": True, "host": "127.0.0.1", "port": dashboard, "api_secret": API_SECRET},
        "sdk": {"enabled": True, "host": "127.0.0.1", "port": sdk},
        "audit": {"path": str(workdir / "audit.db")},
        "budgets": [{"name": "purchases", "limit": 1000000, "currency": "USD", "window": "1d",
                     "contributors": [{"match": {"tool": "buy_item"}, "field": "$.price"}]}],
        "policies": {**POLICIES, "install": {"rules": [
            {"name": "no-pads", "match": {"name": "*-pad"}, "action": "deny_install"}]}},
    }
    (workdir / "helio.yaml").write_text(yaml.safe_dump(config))
    log = workdir / "helio.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "start", "-c", "helio.yaml"],
            cwd=workdir,
            env={**os.environ, "HELIO_SDK_TOKEN": TOKEN, "HELIO_ADAPTER_TOKEN": ADAPTER_TOKEN},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    sdk_url = f"http://127.0.0.1:{sdk}"

    def up() -> bool:
        try:
            return httpx.get(f"{sdk_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_until(up, 20):
        proc.kill()
        pytest.fail(f"helio did not start:\n{log.read_text()}")
    yield Gateway(f"http://127.0.0.1:{mcp}/mcp", sdk_url, f"http://127.0.0.1:{dashboard}", proc, log)
    proc.terminate()
    proc.wait(timeout=15)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The SDK reads HELIO_SDK_TOKEN when a client is built."""
    monkeypatch.setenv("HELIO_SDK_TOKEN", TOKEN)
    return TOKEN


def session() -> str:
    return f"sdk-{secrets.token_hex(6)}"


class Blocking:
    """An asyncio client behind the synchronous interface, on one event
    loop, so every test runs against both kinds of client."""

    kind: Any = helio.AsyncHelioClient

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._loop.run_until_complete(self._make(*args, **kwargs))

    async def _make(self, *args: Any, **kwargs: Any) -> Any:
        return self.kind(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not asyncio.iscoroutinefunction(attribute):
            return attribute
        return lambda *a, **k: self._loop.run_until_complete(attribute(*a, **k))

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`HelioClient`, then `AsyncHelioClient` (through `Blocking`)."""
    return helio.HelioClient if request.param == "sync" else Blocking


class Silent:
    """A TCP server that accepts and never answers (for timeouts)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


class Answering:
    """An HTTP server answering each request with the next of `bodies`."""

    def __init__(self, bodies: list[bytes]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        queue = list(bodies)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = queue.pop(0)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> Answering:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
