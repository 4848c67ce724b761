"""Helio relays everything except governance transparently.

Every test runs for target in {direct, helio} x upstream mode in {sse, json}:
- direct: the client talks straight to the fixture upstream; the concrete
  expectations below must hold (so a broken fixture fails here, not silently).
- helio:  the same observation is made both directly and through Helio in the
  same test, and must be *equal*, and must meet the same concrete expectations.

Policy is the minimal config (no rules, default allow), so tools/call is
forwarded too. Helio instances are shared per upstream within this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from conftest import (
    ELICITATION_ANSWER,
    SAMPLING_MODEL,
    SAMPLING_REPLY_TEXT,
    EventLog,
    RawMcp,
    Upstream,
    dump_model,
    call_tool_outcome,
    mcp_session,
    rpc_result,
)
from fixtures.upstream_server import ECHO_TOOL_META, INSTRUCTIONS, README_TEXT, README_URI, SERVER_NAME, SERVER_VERSION

pytestmark = pytest.mark.anyio

EXPECTED_TOOLS = {
    "echo",
    "add",
    "slow",
    "progress",
    "log_messages",
    "sample",
    "elicit",
    "fail",
    "charge",
    "delete_record",
    "whoami_headers",
    "regional",
    "trace_context",
}
# Events that are part of an observation (transport-level noise is not compared).
OBSERVED_KINDS = {"progress", "log", "sampling", "elicitation", "result", "error"}


@pytest.fixture(params=["direct", "helio"])
def target(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def endpoints(target: str, upstream: Upstream, request: pytest.FixtureRequest) -> dict[str, str]:
    """{"direct": url} or {"direct": url, "helio": url} for the current upstream."""
    urls = {"direct": upstream.url}
    if target == "helio":
        launcher = request.getfixturevalue("module_helio")
        urls["helio"] = launcher.shared(upstream).mcp_url
    return urls


def same_everywhere(observations: dict[str, Any]) -> Any:
    """Assert Helio's observation equals the direct one; return the direct one."""
    if "helio" in observations:
        assert observations["helio"] == observations["direct"], "Helio changed what the client observes"
    return observations["direct"]


def observe_raw(endpoints: dict[str, str], fn: Callable[[RawMcp], Any], *, initialize: bool = True) -> Any:
    observations = {}
    for label, url in endpoints.items():
        with RawMcp(url) as raw:
            if initialize:
                raw.initialize()
            observations[label] = fn(raw)
    return same_everywhere(observations)


async def observe_sdk(endpoints: dict[str, str], fn: Callable[[Any, EventLog], Awaitable[Any]]) -> Any:
    observations = {}
    for label, url in endpoints.items():
        failure: BaseException | None = None
        async with mcp_session(url) as (session, events):
            try:
                with anyio.fail_after(15):
                    observations[label] = await fn(session, events)
            except Exception as exc:  # re-raised below, outside the SDK's task groups
                failure = exc
        if failure is not None:
            failure.add_note(f"observed {label} ({url}); events: {[(e.kind, e.data) for e in events.events]}")
            raise failure
    return same_everywhere(observations)


def observed(events: EventLog) -> list[tuple[str, Any]]:
    return [(e.kind, e.data) for e in events.events if e.kind in OBSERVED_KINDS]


# ------------------------------------------------------------------ handshake


def test_initialize_result_is_relayed_unchanged(endpoints: dict[str, str]) -> None:
    def init(raw: RawMcp) -> dict[str, Any]:
        reply = raw.initialize()
        return {
            "result": rpc_result(reply, 1),
            "has_session_id": raw.session_id is not None,
        }

    obs = observe_raw(endpoints, init, initialize=False)
    result = obs["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["serverInfo"] == {"name": SERVER_NAME, "title": "Helio E2E Upstream", "version": SERVER_VERSION}
    assert result["instructions"] == INSTRUCTIONS
    assert set(result["capabilities"]) >= {"tools", "resources", "prompts"}


async def test_sdk_handshake_is_relayed_unchanged(endpoints: dict[str, str]) -> None:
    async def init(session: Any, events: EventLog) -> dict[str, Any]:
        return dump_model(session.initialize_result)

    result = await observe_sdk(endpoints, init)
    assert result["protocolVersion"] == "2025-11-25"
    assert result["serverInfo"]["name"] == SERVER_NAME


# ---------------------------------------------------------------------- tools


def test_tools_list_is_relayed_unchanged(endpoints: dict[str, str]) -> None:
    tools_result = observe_raw(endpoints, lambda raw: rpc_result(raw.request("tools/list")))
    tools = {t["name"]: t for t in tools_result["tools"]}
    assert set(tools) == EXPECTED_TOOLS
    echo = tools["echo"]
    assert echo["title"] == "Echo"
    assert echo["annotations"] == {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    assert echo["_meta"] == ECHO_TOOL_META
    assert echo["inputSchema"]["required"] == ["text"]
    assert echo["inputSchema"]["properties"]["text"]["x-helio-test"] == {"kept": True}
    assert tools["delete_record"]["annotations"]["destructiveHint"] is True
    assert tools["delete_record"]["annotations"]["readOnlyHint"] is False
    assert set(tools["add"]["outputSchema"]["properties"]) == {"sum", "operands"}


TOOL_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("echo", {"text": "héllo ✓ \"quoted\" \\ back"}),
    ("add", {"a": 2, "b": 3.5}),
    ("slow", {"seconds": 0.05}),
    ("fail", {}),
    ("delete_record", {"id": "rec-17"}),
    ("no_such_tool", {}),
]


def test_tools_call_results_are_relayed_unchanged(endpoints: dict[str, str]) -> None:
    def calls(raw: RawMcp) -> dict[str, Any]:
        out = {}
        for name, args in TOOL_CALLS:
            final = raw.call_tool(name, args, id=f"call-{name}").final(f"call-{name}")
            assert final is not None, name
            out[name] = {k: v for k, v in final.items() if k != "jsonrpc"}
        return out

    results = observe_raw(endpoints, calls)
    echo = results["echo"]["result"]
    assert echo["content"] == [{"type": "text", "text": TOOL_CALLS[0][1]["text"]}]
    assert echo["structuredContent"] == {"result": TOOL_CALLS[0][1]["text"]}
    assert echo.get("isError", False) is False
    assert results["add"]["result"]["structuredContent"] == {"sum": 5.5, "operands": [2, 3.5]}
    assert results["slow"]["result"]["structuredContent"] == {"result": "slept 0.05"}
    fail = results["fail"]["result"]
    assert fail["isError"] is True
    assert "deliberate failure" in fail["content"][0]["text"]
    assert results["delete_record"]["result"]["structuredContent"] == {"result": "deleted record rec-17"}
    # An unknown tool is the upstream's answer (an isError result or a JSON-RPC error), relayed.
    unknown = results["no_such_tool"]
    assert unknown.get("error") or unknown["result"].get("isError") is True
    for name, _ in TOOL_CALLS:
        assert results[name]["id"] == f"call-{name}"


async def test_sdk_tool_calls_match(endpoints: dict[str, str]) -> None:
    async def calls(session: Any, events: EventLog) -> dict[str, Any]:
        return {name: await call_tool_outcome(session, name, args) for name, args in TOOL_CALLS[:5]}

    results = await observe_sdk(endpoints, calls)
    assert results["echo"]["result"]["content"][0]["text"] == TOOL_CALLS[0][1]["text"]
    assert results["add"]["result"]["structuredContent"]["sum"] == 5.5
    assert results["fail"]["result"]["isError"] is True


async def test_concurrent_calls_on_one_session_get_their_own_results(endpoints: dict[str, str]) -> None:
    async def calls(session: Any, events: EventLog) -> list[Any]:
        results: list[Any] = [None] * 8

        async def one(i: int) -> None:
            outcome = await call_tool_outcome(session, "echo", {"text": f"concurrent-{i}"})
            results[i] = outcome["result"]["structuredContent"]["result"]

        async with anyio.create_task_group() as tg:
            for i in range(len(results)):
                tg.start_soon(one, i)
        return results

    assert await observe_sdk(endpoints, calls) == [f"concurrent-{i}" for i in range(8)]


# ------------------------------------------------------- resources and prompts


def test_resources_are_relayed_unchanged(endpoints: dict[str, str]) -> None:
    def resources(raw: RawMcp) -> dict[str, Any]:
        return {
            "list": rpc_result(raw.request("resources/list")),
            "templates": rpc_result(raw.request("resources/templates/list")),
            "read": rpc_result(raw.request("resources/read", {"uri": README_URI})),
            "read_template": rpc_result(raw.request("resources/read", {"uri": "greeting://Ann"})),
        }

    obs = observe_raw(endpoints, resources)
    (readme,) = obs["list"]["resources"]
    assert readme["uri"] == README_URI
    assert readme["mimeType"] == "text/plain"
    assert [t["uriTemplate"] for t in obs["templates"]["resourceTemplates"]] == ["greeting://{name}"]
    assert obs["read"]["contents"] == [{"uri": README_URI, "mimeType": "text/plain", "text": README_TEXT}]
    assert obs["read_template"]["contents"][0]["text"] == "Hello, Ann!"


def test_prompts_are_relayed_unchanged(endpoints: dict[str, str]) -> None:
    def prompts(raw: RawMcp) -> dict[str, Any]:
        return {
            "list": rpc_result(raw.request("prompts/list")),
            "get": rpc_result(raw.request("prompts/get", {"name": "greet", "arguments": {"name": "Bo", "style": "formal"}})),
        }

    obs = observe_raw(endpoints, prompts)
    (greet,) = obs["list"]["prompts"]
    assert greet["name"] == "greet"
    assert [a["name"] for a in greet["arguments"]] == ["name", "style"]
    assert obs["get"]["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "Please write a formal greeting for Bo."}}
    ]


async def test_sdk_resources_and_prompts_match(endpoints: dict[str, str]) -> None:
    async def both(session: Any, events: EventLog) -> dict[str, Any]:
        return {
            "resources": dump_model(await session.list_resources()),
            "read": dump_model(await session.read_resource(README_URI)),
            "prompts": dump_model(await session.list_prompts()),
            "prompt": dump_model(await session.get_prompt("greet", {"name": "Cy"})),
        }

    obs = await observe_sdk(endpoints, both)
    assert obs["read"]["contents"][0]["text"] == README_TEXT
    assert obs["prompt"]["messages"][0]["content"]["text"] == "Please write a friendly greeting for Cy."


def test_ping_is_relayed(endpoints: dict[str, str]) -> None:
    obs = observe_raw(endpoints, lambda raw: raw.request("ping", id="ping-1").final("ping-1"))
    assert obs == {"jsonrpc": "2.0", "id": "ping-1", "result": {}}


async def test_sdk_ping(endpoints: dict[str, str]) -> None:
    async def ping(session: Any, events: EventLog) -> dict[str, Any]:
        return dump_model(await session.send_ping())

    await observe_sdk(endpoints, ping)


# ------------------------------------------- notifications during the call


STEPS = 3
STEP_DELAY = 0.15  # the fixture's default delay between notifications


def assert_streamed_before_result(events: EventLog, kind: str, count: int) -> None:
    """`count` events of `kind` arrived, all before the result, and the first one
    well before it (so they were streamed during the call, not flushed with it)."""
    kinds = [e.kind for e in events.events if e.kind in OBSERVED_KINDS]
    assert kinds == [kind] * count + ["result"], kinds
    first = events.of(kind)[0]
    (result,) = events.of("result")
    assert result.t - first.t >= STEP_DELAY * (count - 1) * 0.8, (
        f"first {kind} arrived only {result.t - first.t:.3f}s before the result: buffered, not streamed"
    )


async def test_progress_notifications_arrive_during_the_call(endpoints: dict[str, str], upstream: Upstream) -> None:
    async def run(session: Any, events: EventLog) -> list[Any]:
        await call_tool_outcome(session, "progress", {"steps": STEPS}, events)
        if upstream.mode == "sse":
            assert_streamed_before_result(events, "progress", STEPS)
        return observed(events)

    obs = await observe_sdk(endpoints, run)
    progress = [data for kind, data in obs if kind == "progress"]
    if upstream.mode == "sse":
        assert progress == [
            {"progress": float(i), "total": float(STEPS), "message": f"step {i}/{STEPS}"} for i in range(1, STEPS + 1)
        ]
    else:  # a JSON reply carries only the response: the SDK drops the notifications
        assert progress == []
    assert obs[-1] == ("result", {"result": {
        "content": [{"type": "text", "text": f"done {STEPS} steps"}],
        "structuredContent": {"result": f"done {STEPS} steps"},
        "isError": False,
        "resultType": "complete",
    }})


async def test_log_messages_arrive_during_the_call(endpoints: dict[str, str], upstream: Upstream) -> None:
    async def run(session: Any, events: EventLog) -> list[Any]:
        await call_tool_outcome(session, "log_messages", {"count": STEPS}, events)
        if upstream.mode == "sse":
            assert_streamed_before_result(events, "log", STEPS)
        return observed(events)

    obs = await observe_sdk(endpoints, run)
    logs = [data for kind, data in obs if kind == "log"]
    if upstream.mode == "sse":
        assert logs == [
            {"level": "info", "logger": "upstream.tool", "data": f"log message {i}/{STEPS}"} for i in range(1, STEPS + 1)
        ]
    else:
        assert logs == []
    assert obs[-1][0] == "result"
    assert obs[-1][1]["result"]["structuredContent"] == {"result": f"logged {STEPS} messages"}


# ------------------------------------------- server -> client requests


async def test_sampling_round_trip(endpoints: dict[str, str], upstream: Upstream) -> None:
    prompt = "What is six times seven?"

    async def run(session: Any, events: EventLog) -> list[Any]:
        await call_tool_outcome(session, "sample", {"prompt": prompt}, events)
        return observed(events)

    obs = await observe_sdk(endpoints, run)
    if upstream.mode == "sse":
        (kind, request), (last_kind, outcome) = obs
        assert kind == "sampling"
        assert request["messages"] == [{"role": "user", "content": {"type": "text", "text": prompt}}]
        assert request["maxTokens"] == 64
        assert request["systemPrompt"] == "You are a test double."
        assert last_kind == "result"
        assert outcome["result"]["structuredContent"] == {
            "result": f"model {SAMPLING_MODEL} said: {SAMPLING_REPLY_TEXT}"
        }
    else:  # no back-channel in JSON mode: the upstream answers with an error
        assert [k for k, _ in obs] == ["error"]
        assert "back-channel" in obs[0][1]["error"]["message"]


async def test_elicitation_round_trip(endpoints: dict[str, str], upstream: Upstream) -> None:
    question = "Favourite colour?"

    async def run(session: Any, events: EventLog) -> list[Any]:
        await call_tool_outcome(session, "elicit", {"question": question}, events)
        return observed(events)

    obs = await observe_sdk(endpoints, run)
    if upstream.mode == "sse":
        (kind, request), (last_kind, outcome) = obs
        assert kind == "elicitation"
        assert request["message"] == question
        assert request["requestedSchema"]["required"] == ["answer"]
        assert last_kind == "result"
        assert outcome["result"]["structuredContent"] == {"result": f"user answered: {ELICITATION_ANSWER}"}
    else:
        assert [k for k, _ in obs] == ["error"]
        assert "back-channel" in obs[0][1]["error"]["message"]


# ------------------------------------------------------ 2026-07-28 clients


async def test_default_sdk_client_negotiation(endpoints: dict[str, str]) -> None:
    """The SDK's default Client (mode="auto": server/discover, falling back to
    initialize) ends up with the same protocol and the same answers through Helio."""
    from mcp import Client

    observations = {}
    for label, url in endpoints.items():
        async with Client(url) as client:
            with anyio.fail_after(15):
                tools = await client.list_tools()
                echo = await client.call_tool("echo", {"text": "modern"})
                # The SDK mirrors `region` as Mcp-Param-Region (x-mcp-header);
                # Helio checks it agrees with the body, as the server does.
                regional = await client.call_tool("regional", {"region": "eu-1", "text": "routed"})
            observations[label] = {
                "regional": regional.structured_content,
                "protocol": client.protocol_version,
                "server": client.server_info.name if client.server_info else None,
                "tools": sorted(t.name for t in tools.tools),
                "echo": echo.structured_content,
            }
    obs = same_everywhere(observations)
    assert obs["protocol"] == "2026-07-28"
    assert obs["server"] == SERVER_NAME
    assert set(obs["tools"]) == EXPECTED_TOOLS
    assert obs["echo"] == {"result": "modern"}
    assert obs["regional"] == {"result": "eu-1: routed"}


# ---------------------------------------------------------- stateless upstream


@pytest.fixture(scope="module")
def upstream_stateless(upstream_launcher: Any) -> Upstream:
    return upstream_launcher.start("sse", stateless=True)


@pytest.fixture
def stateless_endpoints(target: str, upstream_stateless: Upstream, request: pytest.FixtureRequest) -> dict[str, str]:
    urls = {"direct": upstream_stateless.url}
    if target == "helio":
        urls["helio"] = request.getfixturevalue("module_helio").shared(upstream_stateless).mcp_url
    return urls


def test_stateless_upstream_is_relayed_without_a_session(stateless_endpoints: dict[str, str]) -> None:
    def run(raw: RawMcp) -> dict[str, Any]:
        init = rpc_result(raw.initialize(), 1)
        return {
            "session_id": raw.session_id,
            "server": init["serverInfo"],
            "echo": rpc_result(raw.call_tool("echo", {"text": "stateless"})),
            "add": rpc_result(raw.call_tool("add", {"a": 1, "b": 1})),
        }

    obs = observe_raw(stateless_endpoints, run, initialize=False)
    assert obs["session_id"] is None
    assert obs["server"]["name"] == SERVER_NAME
    assert obs["echo"]["structuredContent"] == {"result": "stateless"}
    assert obs["add"]["structuredContent"] == {"sum": 2, "operands": [1, 1]}
