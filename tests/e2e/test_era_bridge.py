"""The era bridge on the relay: clients that speak only MCP 2026-07-28 (no
initialize, no session: the official Python SDK 2.x `Client(mode="2026-07-28")`)
in front of a streamable-HTTP server that speaks only the handshake era (the
conformance fixture, built on the official TypeScript SDK 1.x). Directly, such a
client is refused; through Helio it works, governed as any other."""

from __future__ import annotations

from typing import Any, Iterator

import anyio
import pytest

from conftest import HelioLauncher, call_tool_outcome, conformance_fixture_server, mcp_session, wait_until


@pytest.fixture(scope="module")
def handshake_only_server() -> Iterator[str]:
    with conformance_fixture_server() as url:
        yield url


@pytest.mark.anyio
async def test_a_2026_client_is_refused_by_a_handshake_only_server_directly(handshake_only_server: str) -> None:
    from mcp import Client

    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for the server's refusal
        with anyio.fail_after(15):
            async with Client(handshake_only_server, mode="2026-07-28") as client:
                await client.list_tools()


@pytest.mark.anyio
async def test_2026_clients_reach_a_handshake_only_server_through_helio(
    helio: HelioLauncher, handshake_only_server: str
) -> None:
    from mcp import Client

    instance = helio(
        {
            "upstream": {"url": handshake_only_server},
            "policies": {"rules": [{"name": "no-errors", "match": {"tool": "test_error_handling"}, "action": "deny"}]},
        }
    )
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, 15), instance.stderr
    results: dict[int, Any] = {}

    async def run(n: int) -> None:
        # Pinned to 2026-07-28, or the SDK's default (server/discover first,
        # which Helio answers for the server).
        mode = "2026-07-28" if n % 2 else "auto"
        async with Client(instance.mcp_url, mode=mode) as client:
            tools = await client.list_tools()
            text = await client.call_tool("test_simple_text", {})
            prompts = await client.list_prompts()
            resource = await client.read_resource("test://static-text")
            denied = await call_tool_outcome(client, "test_error_handling", {})
            results[n] = {
                "protocol": client.protocol_version,
                # A pinned client learns the server's identity only from discover.
                "server": client.server_info.name if mode == "auto" and client.server_info else None,
                "tools": "test_simple_text" in {t.name for t in tools.tools},
                "text": text.content[0].text,
                "prompts": len(prompts.prompts) > 0,
                "resource": resource.contents[0].text,
                "denied": denied["error"]["code"],
            }

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for n in range(4):
                group.start_soon(run, n)
    assert len(results) == 4
    for n, result in results.items():
        assert result["protocol"] == "2026-07-28"
        assert result["server"] == (None if n % 2 else "helio-conformance-everything-server")
        assert result["tools"] and result["prompts"]
        assert result["text"] == "This is a simple text response for testing."
        assert result["resource"] == "This is the content of the static text resource."
        assert result["denied"] == -32001


@pytest.fixture(scope="module")
def modern_only_server(upstream_launcher: Any) -> Any:
    """The official Python SDK's server, speaking only 2026-07-28 (it refuses initialize)."""
    upstream = upstream_launcher.start("json", stateless=True, modern_only=True)
    yield upstream
    upstream.stop()


@pytest.mark.anyio
async def test_a_handshake_client_is_refused_by_a_2026_only_server_directly(modern_only_server: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for the refused initialize
        with anyio.fail_after(15):
            async with mcp_session(modern_only_server.url):
                pass


@pytest.mark.anyio
@pytest.mark.parametrize("pinned", ["auto", "2026-07-28"])
async def test_handshake_clients_reach_a_2026_only_server_through_helio(
    helio: HelioLauncher, modern_only_server: Any, pinned: str
) -> None:
    # Detected at start (server/discover), or pinned (no probe: Helio asks when it needs to).
    instance = helio(
        {
            "upstream": {"url": modern_only_server.url, "protocol_version": pinned},
            "policies": {"rules": [{"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"}]},
        }
    )
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, 15), instance.stderr
    results: dict[int, Any] = {}

    async def run(n: int) -> None:
        async with mcp_session(instance.mcp_url, headers={"x-helio-session-id": f"legacy-{n}"}) as (session, _events):
            tools = await session.list_tools()
            echo = await session.call_tool("echo", {"text": f"old-{n}"})
            # The server checks Mcp-Param-Region, which a handshake-era client never sends: Helio does.
            regional = await session.call_tool("regional", {"region": "eu-1", "text": f"r{n}"})
            denied = await call_tool_outcome(session, "delete_record", {"id": str(n)})
            results[n] = {
                "tools": len(tools.tools),
                "echo": echo.content[0].text,
                "regional": regional.content[0].text,
                "denied": denied["error"]["code"],
            }

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for n in range(4):
                group.start_soon(run, n)
    for n, result in results.items():
        assert result["tools"] == 13, result
        assert result["echo"] == f"old-{n}"
        assert result["regional"] == f"eu-1: r{n}"
        assert result["denied"] == -32001
    assert len(results) == 4
    # What the server saw: sessionless 2026-07-28 requests carrying each client's envelope.
    calls = [r for r in modern_only_server.requests() if (r.get("body") or {}).get("method") == "tools/call"]
    assert calls and all(r["headers"].get("mcp-protocol-version") == "2026-07-28" for r in calls)
    assert all("mcp-session-id" not in r["headers"] for r in calls)
    envelope = calls[0]["body"]["params"]["_meta"]
    assert envelope["io.modelcontextprotocol/clientInfo"]["name"]
