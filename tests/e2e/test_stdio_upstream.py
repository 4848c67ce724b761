"""A stdio MCP server behind Helio: the official Python SDK's server run over
stdio (`run_stdio_async`), spawned by Helio, shared by many official-SDK
clients at once whose JSON-RPC ids collide (every client counts from 0) —
every reply and every progress notification reaches its own client, policy
applies as for any upstream, the server's stderr lands in Helio's log, a
crashed server is restarted (calls in flight get an error), and shutdown
terminates it."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from typing import Any

import anyio
import pytest

from conftest import (
    FIXTURE_SERVER,
    HelioLauncher,
    RawMcp,
    call_tool_outcome,
    mcp_session,
    progress_recorder,
    wait_until,
)


def stdio_config(**upstream: Any) -> dict[str, Any]:
    return {
        "upstream": {
            "transport": "stdio",
            "command": sys.executable,
            "args": [str(FIXTURE_SERVER), "--stdio"],
            **upstream,
        },
        "policies": {"rules": [{"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"}]},
    }


def child_pids(stderr: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"stdio upstream started: .* pid=(\d+)", stderr)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes only once reaped; check its state.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.anyio
async def test_twenty_clients_share_one_stdio_server_without_crossed_replies(helio: HelioLauncher) -> None:
    # The original's placeholder url loads unchanged.
    instance = helio(stdio_config(url="stdio://"))
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, timeout=20), instance.stderr
    # Its stderr is drained into Helio's log.
    assert "upstream_server: serving over stdio" in instance.stderr
    assert len(child_pids(instance.stderr)) == 1

    async def client(n: int) -> dict[str, Any]:
        async with mcp_session(instance.mcp_url) as (session, events):
            tools = await session.list_tools()
            echoed = await call_tool_outcome(session, "echo", {"text": f"client-{n}"})
            progressed = await session.call_tool(
                "progress", {"steps": 3, "delay": 0.02}, progress_callback=progress_recorder(events)
            )
            denied = await call_tool_outcome(session, "delete_record", {"id": f"r{n}"})
            return {
                "tools": len(tools.tools),
                "echo": echoed["result"]["content"][0]["text"],
                "progress_text": progressed.content[0].text,
                "progress": [e.data["message"] for e in events.of("progress")],
                "denied": denied,
            }

    results: list[dict[str, Any]] = [{} for _ in range(20)]

    async def run(n: int) -> None:
        results[n] = await client(n)

    async with anyio.create_task_group() as group:
        for n in range(20):
            group.start_soon(run, n)
    for n, result in enumerate(results):
        assert result["tools"] == 13
        assert result["echo"] == f"client-{n}", result
        assert result["progress_text"] == "done 3 steps"
        # Its own three steps, in order, and nobody else's.
        assert result["progress"] == ["step 1/3", "step 2/3", "step 3/3"], result
        assert result["denied"]["error"]["code"] == -32001, result["denied"]
    # One server for everyone: never restarted.
    assert len(child_pids(instance.stderr)) == 1


@pytest.mark.anyio
async def test_the_servers_requests_reach_the_client_whose_call_it_is(helio: HelioLauncher) -> None:
    instance = helio(stdio_config())
    async with mcp_session(instance.mcp_url) as (session, events):
        sampled = await call_tool_outcome(session, "sample", {"prompt": "what is six times seven?"})
        assert "forty-two" in sampled["result"]["content"][0]["text"], sampled
        elicited = await call_tool_outcome(session, "elicit", {"question": "favourite colour?"})
        assert elicited["result"]["content"][0]["text"] == "user answered: blue", elicited
        assert events.of("sampling") and events.of("elicitation")


@pytest.mark.anyio
async def test_a_server_request_helio_cannot_attribute_is_refused_not_misrouted(helio: HelioLauncher) -> None:
    instance = helio(stdio_config())
    async with mcp_session(instance.mcp_url) as (busy, busy_events), mcp_session(instance.mcp_url) as (asker, asker_events):
        async with anyio.create_task_group() as group:
            group.start_soon(busy.call_tool, "slow", {"seconds": 2})
            await anyio.sleep(0.5)
            # Two clients have calls in flight: stdio carries no hint of
            # whose call the server's sampling request belongs to.
            sampled = await call_tool_outcome(asker, "sample", {"prompt": "anyone?"})
        assert not busy_events.of("sampling") and not asker_events.of("sampling")
        text = json.dumps(sampled)
        assert "cannot tell which client" in text, sampled


def test_a_crashed_server_is_restarted_and_its_calls_in_flight_fail_clearly(helio: HelioLauncher) -> None:
    instance = helio(stdio_config())
    assert wait_until(lambda: "stdio upstream initialized" in instance.stderr, timeout=20)
    (first,) = child_pids(instance.stderr)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        outcome: dict[str, Any] = {}

        def slow_call() -> None:
            outcome["final"] = raw.call_tool("slow", {"seconds": 10}, id="slow").final("slow")

        import threading

        thread = threading.Thread(target=slow_call, daemon=True)
        thread.start()
        time.sleep(1.0)
        os.kill(first, signal.SIGKILL)
        thread.join(timeout=15)
        error = outcome["final"]["error"]
        assert error["code"] == -32603 and "stopped before answering" in error["message"], error
        # Restarted with backoff; the same client session goes on.
        assert wait_until(lambda: len(child_pids(instance.stderr)) == 2, timeout=15), instance.stderr
        assert "restarting in 1s" in instance.stderr
        final = raw.call_tool("echo", {"text": "again"}, id="after").final("after")
        assert final["result"]["content"][0]["text"] == "again", final


def test_shutdown_terminates_the_server(helio: HelioLauncher) -> None:
    instance = helio(stdio_config())
    assert wait_until(lambda: "stdio upstream initialized" in instance.stderr, timeout=20)
    (pid,) = child_pids(instance.stderr)
    assert alive(pid)
    assert instance.terminate() == 0
    assert wait_until(lambda: not alive(pid), timeout=10), "the stdio server outlived Helio"


def test_stdio_keys_are_checked(helio_bin: Any, tmp_path: Any) -> None:
    from conftest import minimal_config
    from test_plugins import _validate

    config = minimal_config("http://127.0.0.1:9/mcp")
    config["upstream"].update({"transport": "stdio"})
    del config["upstream"]["url"]
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 1 and 'upstream.command: "command" is required' in result.stderr, result.stderr
    config["upstream"].update({"command": "mcp-server", "args": ["--flag"], "env": {"TOKEN": "x"}, "cwd": "."})
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 0, result.stderr
    # Valid, but nothing by that name can run here: said, not refused.
    assert 'upstream.command: "mcp-server" is not an executable file here, nor found on PATH' in result.stderr
    config["upstream"]["command"] = sys.executable
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 0 and "upstream.command" not in result.stderr, result.stderr
    config["upstream"] = {"url": "http://127.0.0.1:9/mcp", "command": "mcp-server", "env": {"A=B": "x"}}
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 1
    assert 'upstream.command: only applies with transport "stdio"' in result.stderr, result.stderr
    assert 'upstream.env: only applies with transport "stdio"' in result.stderr, result.stderr


def test_nothing_on_the_host_reaches_the_server_around_helio(helio: HelioLauncher) -> None:
    import httpx

    instance = helio(stdio_config())
    assert wait_until(lambda: "stdio upstream initialized" in instance.stderr, timeout=20)
    found = re.search(r"endpoint=(http://127\.0\.0\.1:\d+/mcp)", instance.stderr)
    assert found, instance.stderr
    endpoint = found.group(1)
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}
    headers = {"accept": "application/json, text/event-stream"}
    # The loopback endpoint Helio talks to the child through wants this
    # start's token: a local process without it is refused.
    assert httpx.post(endpoint, json=initialize, headers=headers).status_code == 401
    forged = {**headers, "x-helio-bridge-token": "0" * 64}
    assert httpx.post(endpoint, json=initialize, headers=forged).status_code == 401
    # A client of Helio cannot smuggle one in either (static headers win).
    with RawMcp(instance.mcp_url, headers={"x-helio-bridge-token": "0" * 64}) as raw:
        raw.initialize()
        final = raw.call_tool("echo", {"text": "governed"}, id=1).final(1)
        assert final["result"]["content"][0]["text"] == "governed"


@pytest.mark.anyio
async def test_a_2026_client_works_with_a_stdio_server(helio: HelioLauncher) -> None:
    # The SDK's default Client asks server/discover first: Helio answers it for
    # the stdio server (the era bridge), so the client speaks 2026-07-28.
    from mcp import Client

    instance = helio(stdio_config())
    async with Client(instance.mcp_url) as client:
        with anyio.fail_after(20):
            tools = await client.list_tools()
            echo = await client.call_tool("echo", {"text": "modern"})
        assert client.protocol_version == "2026-07-28"
    assert len(tools.tools) == 13
    assert echo.structured_content == {"result": "modern"}


def test_a_large_message_reaches_a_stdio_server_whole(helio: HelioLauncher) -> None:
    # Anything Helio accepts from a client (up to 4 MiB) fits through to the child.
    instance = helio(stdio_config())
    text = "x" * (3 << 20)
    with RawMcp(instance.mcp_url, timeout=60) as raw:
        raw.initialize()
        final = raw.call_tool("echo", {"text": text}, id="big").final("big")
    assert final["result"]["content"][0]["text"] == text


@pytest.mark.anyio
async def test_a_sessionless_2026_client_works_with_a_stdio_server(helio: HelioLauncher) -> None:
    # A client that speaks only 2026-07-28 (no initialize, no session): Helio
    # answers server/discover for the stdio server and carries each request
    # to it on its own handshake, adding the resultType the client expects.
    from mcp import Client

    instance = helio(stdio_config())
    async with Client(instance.mcp_url, mode="2026-07-28") as client:
        with anyio.fail_after(20):
            tools = await client.list_tools()
            echo = await client.call_tool("echo", {"text": "sessionless"})
            denied = await call_tool_outcome(client, "delete_record", {"id": "1"})
        assert client.protocol_version == "2026-07-28"
    assert len(tools.tools) == 13
    assert echo.structured_content == {"result": "sessionless"}
    assert denied["error"]["code"] == -32001, denied
