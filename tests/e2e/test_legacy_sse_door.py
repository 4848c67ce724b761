"""The legacy HTTP+SSE door (`GET /sse`, `POST /sse?sessionId=…`) for clients
that predate streamable HTTP, driven by the official Python SDK's SSE client:
governed exactly like `/mcp` (policy, audit), with the stream's id as the
governance session of last resort, the Origin guard, and clear errors for a
missing or unknown session."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
import pytest

from conftest import EventLog, HelioLauncher, Upstream, call_tool_outcome, progress_recorder


@asynccontextmanager
async def sse_session(url: str) -> AsyncIterator[tuple[Any, EventLog]]:
    from mcp.client.session import ClientSession
    from mcp.client.sse import sse_client

    events = EventLog()
    async with sse_client(url, timeout=10) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session, events


POLICY = {
    "rules": [
        {"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"},
        {"name": "one-echo-per-session", "match": {"tool": "echo"}, "action": "rate_limit",
         "limits": {"max_calls": 1, "window": "1h", "key": "session"}},
    ]
}


@pytest.mark.anyio
async def test_a_legacy_sse_client_is_governed_like_any_other(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    # Only the stream can say whose session a call is.
    instance = helio({"policies": POLICY, "session": {"identity": [{"source": "header", "name": "x-helio-session-id"}]}},
                     upstream=upstream_sse)
    legacy_url = instance.base_url + "/sse"
    async with sse_session(legacy_url) as (session, events):
        tools = {tool.name for tool in (await session.list_tools()).tools}
        assert {"echo", "progress", "delete_record"} <= tools
        echoed = await session.call_tool("echo", {"text": "from an old client"})
        assert echoed.content[0].text == "from an old client"
        progressed = await session.call_tool("progress", {"steps": 2, "delay": 0.02}, progress_callback=progress_recorder(events))
        assert progressed.content[0].text == "done 2 steps"
        assert [e.data["message"] for e in events.of("progress")] == ["step 1/2", "step 2/2"]
        denied = await call_tool_outcome(session, "delete_record", {"id": "x"})
        assert denied["error"]["code"] == -32001 and "no-deletes" in denied["error"]["message"], denied
        limited = await call_tool_outcome(session, "echo", {"text": "second"})
        assert limited["error"]["code"] == -32001, limited
    # A second stream is another session: its own rate slot.
    async with sse_session(legacy_url) as (session, _events):
        assert (await session.call_tool("echo", {"text": "other stream"})).content[0].text == "other stream"

    auth = {"authorization": f"Bearer {instance.api_secret}"}
    records = httpx.get(f"{instance.dashboard_url}/api/audit", params={"limit": 50}, headers=auth).json()["data"]
    calls = [r for r in records if r["tool_name"] in ("echo", "delete_record")]
    assert {r["session_source"] for r in calls} == {"transport"}, calls
    assert len({r["session_id"] for r in calls}) == 2
    assert any(r["block_reason"] == "policy_denied" and r["tool_name"] == "delete_record" for r in calls)
    assert any(r["block_reason"] == "rate_limited" for r in calls)


def test_the_legacy_door_refuses_what_it_cannot_place(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(upstream=upstream_sse)
    url = instance.base_url + "/sse"
    message = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert httpx.post(url, json=message).status_code == 400
    unknown = httpx.post(url + "?sessionId=nope", json=message)
    assert unknown.status_code == 404 and unknown.json() == {"error": "unknown sessionId"}
    # The Origin guard runs first, as on /mcp.
    assert httpx.get(url, headers={"origin": "http://evil.example"}).status_code == 403
    # A stream opens with the endpoint to post to; posts answer 202, replies come on the stream.
    with httpx.Client(timeout=10) as client, client.stream("GET", url) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: endpoint"
        endpoint = next(lines).removeprefix("data: ")
        assert endpoint.startswith("/sse?sessionId=")
        posted = httpx.post(instance.base_url + endpoint, json={
            "jsonrpc": "2.0", "id": 7, "method": "initialize",
            "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}})
        assert posted.status_code == 202
        seen = []
        for line in lines:
            if line.startswith("data: "):
                seen.append(line)
                break
        assert '"id":7' in seen[0].replace(" ", "") and "serverInfo" in seen[0]
