"""A legacy HTTP+SSE MCP server (2024-11-05: `GET /sse`, then POSTs to the
endpoint it names) behind Helio: the official Python SDK's server run with
`sse_app`, shared by concurrent official-SDK clients whose ids collide, and
reconnected with backoff when it goes away (the original never reconnects)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import anyio
import httpx
import pytest

from conftest import (
    FIXTURE_SERVER,
    LOOPBACK,
    HelioLauncher,
    RawMcp,
    call_tool_outcome,
    free_port,
    mcp_session,
    progress_recorder,
    wait_until,
)


class LegacyServer:
    """The fixture server over HTTP+SSE on a fixed port (so it can come back)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/sse"

    def start(self) -> None:
        log = open(self.log_dir / f"legacy-sse-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, str(FIXTURE_SERVER), "--host", LOOPBACK, "--port", str(self.port), "--legacy-sse"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()

        def ready() -> bool:
            try:
                return httpx.get(f"http://{LOOPBACK}:{self.port}/ready", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(ready, timeout=20), "the legacy SSE fixture did not start"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def legacy(tmp_path: Path) -> Iterator[LegacyServer]:
    server = LegacyServer(tmp_path)
    yield server
    server.stop()


def sse_config(server: LegacyServer) -> dict[str, Any]:
    return {
        "upstream": {"url": server.url, "transport": "sse"},
        "policies": {"rules": [{"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"}]},
    }


@pytest.mark.anyio
async def test_clients_share_a_legacy_sse_server_without_crossed_replies(
    helio: HelioLauncher, legacy: LegacyServer
) -> None:
    instance = helio(sse_config(legacy))
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, timeout=20), instance.stderr

    async def client(n: int) -> dict[str, Any]:
        async with mcp_session(instance.mcp_url) as (session, events):
            echoed = await call_tool_outcome(session, "echo", {"text": f"client-{n}"})
            progressed = await session.call_tool(
                "progress", {"steps": 2, "delay": 0.02}, progress_callback=progress_recorder(events)
            )
            denied = await call_tool_outcome(session, "delete_record", {"id": f"r{n}"})
            return {
                "echo": echoed["result"]["content"][0]["text"],
                "progress": [e.data["message"] for e in events.of("progress")],
                "done": progressed.content[0].text,
                "denied": denied["error"]["code"],
            }

    results: list[dict[str, Any]] = [{} for _ in range(10)]

    async def run(n: int) -> None:
        results[n] = await client(n)

    async with anyio.create_task_group() as group:
        for n in range(10):
            group.start_soon(run, n)
    for n, result in enumerate(results):
        assert result == {
            "echo": f"client-{n}", "progress": ["step 1/2", "step 2/2"], "done": "done 2 steps", "denied": -32001,
        }, result


def test_a_dropped_sse_stream_is_reconnected(helio: HelioLauncher, legacy: LegacyServer) -> None:
    config = sse_config(legacy)
    config["upstream"].update({"connect_timeout": "2s", "request_timeout": "3s"})
    instance = helio(config)
    assert wait_until(lambda: "SSE upstream connected" in instance.stderr, timeout=20), instance.stderr
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert raw.call_tool("echo", {"text": "before"}, id=1).final(1)["result"]["content"][0]["text"] == "before"
        legacy.stop()
        assert wait_until(lambda: "reconnecting in" in instance.stderr, timeout=15), instance.stderr
        # While it is away, calls fail clearly rather than hang.
        down = raw.call_tool("echo", {"text": "during"}, id=2).final(2)
        assert down["error"]["code"] == -32603, down
        legacy.start()
        assert wait_until(lambda: instance.stderr.count("SSE upstream connected") >= 2, timeout=40), instance.stderr
        after = raw.call_tool("echo", {"text": "after"}, id=3).final(3)
        assert after["result"]["content"][0]["text"] == "after", after


@pytest.mark.anyio
async def test_sessionless_2026_clients_work_with_a_legacy_sse_server(helio: HelioLauncher, legacy: LegacyServer) -> None:
    # The era bridge: clients that speak only 2026-07-28 (server/discover, no
    # session, the _meta envelope), several at once, against a 2024-11-05 server.
    from mcp import Client

    instance = helio(sse_config(legacy))
    results: dict[int, Any] = {}

    async def run(n: int) -> None:
        async with Client(instance.mcp_url, mode="2026-07-28") as client:
            tools = await client.list_tools()
            echo = await client.call_tool("echo", {"text": f"modern-{n}"})
            denied = await call_tool_outcome(client, "delete_record", {"id": f"r{n}"})
            results[n] = (client.protocol_version, len(tools.tools), echo.structured_content, denied["error"]["code"])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(run, n)
    assert results == {n: ("2026-07-28", 13, {"result": f"modern-{n}"}, -32001) for n in range(5)}
