"""OpenTelemetry traces over OTLP/HTTP (`telemetry` in helio.yaml): a governed
call is a span tree — the call, its stages in chain order with the state
operations each made, the state commit and settlement, the approval wait, the
upstream call — continuing the client's W3C trace context (from `_meta`, as the
official MCP SDK sends it, or from headers) and propagating Helio's own to the
upstream (headers and `_meta`, so stdio servers get it too). The real binary
exports to a small OTLP/HTTP receiver that decodes the protobuf it gets with
the OpenTelemetry project's own bindings."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import yaml

from conftest import HelioLauncher, RawMcp, Upstream, rpc_result, wait_until
from fixtures.otlp_receiver import OtlpReceiver, ReceivedSpan

# Spans leave in batches; a short delay keeps the tests quick.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}

POLICIES = {"rules": [
    {"name": "charge-rate", "match": {"tool": "charge"}, "action": "rate_limit",
     "limits": {"max_calls": 100, "window": "1m"}},
    {"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"},
    {"name": "approve-slow", "match": {"tool": "slow"}, "action": "require_approval"},
]}
BUDGETS = [{"name": "daily-spend", "limit": 1000, "currency": "USD", "window": "1d",
            "contributors": [{"match": {"tool": "charge"}, "field": "$.amount"}]}]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def traced(receiver: OtlpReceiver, **telemetry: Any) -> dict[str, Any]:
    return {
        "policies": POLICIES,
        "budgets": BUDGETS,
        "telemetry": {"otlp_endpoint": receiver.endpoint, "service_name": "helio-under-test", **telemetry},
    }


def ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def root_of(receiver: OtlpReceiver, tool: str, timeout: float = 10) -> ReceivedSpan:
    """The root span of the one traced call of `tool`, once its tree arrived."""
    found: list[ReceivedSpan] = []

    def arrived() -> bool:
        found[:] = [s for s in receiver.snapshot() if s.name == f"tools/call {tool}"]
        return len(found) == 1
    assert wait_until(arrived, timeout=timeout), [s.name for s in receiver.snapshot()]
    return found[0]


def children(receiver: OtlpReceiver, parent: ReceivedSpan) -> list[ReceivedSpan]:
    spans = [s for s in receiver.trace(parent.trace_id) if s.parent_span_id == parent.span_id]
    return sorted(spans, key=lambda s: s.start_ns)


def upstream_calls(upstream: Upstream, marker: str) -> list[dict[str, Any]]:
    return upstream.find(lambda r: isinstance(r.get("body"), dict)
                         and r["body"].get("method") == "tools/call"
                         and marker in str(r["body"]["params"].get("arguments")))


def test_a_governed_call_is_a_span_tree_continuing_the_sdk_clients_context(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    """The official MCP SDK client sends its span's context in `_meta` (SEP-414);
    Helio's call span continues it, the stages follow in chain order with their
    state operations, and the upstream gets the context of Helio's upstream span
    in its headers and in `_meta`, with the arguments as the client sent them."""
    from mcp import Client
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    collector_key = secrets.token_hex(16)
    config = traced(receiver, headers={"x-collector-key": collector_key})
    instance = helio(config, upstream=upstream_sse, env=FAST_EXPORT)
    trace_id, client_span = ids()
    marker = secrets.token_hex(4)

    async def call() -> Any:
        context = SpanContext(int(trace_id, 16), int(client_span, 16), is_remote=False,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED))
        async with Client(instance.mcp_url) as client:
            with trace.use_span(NonRecordingSpan(context)), anyio.fail_after(15):
                return await client.call_tool("charge", {"amount": 7, "currency": marker})
    result = anyio.run(call)
    assert not result.is_error

    root = root_of(receiver, "charge")
    assert (root.trace_id, root.parent_span_id, root.kind) == (trace_id, client_span, "server")
    assert root.resource["service.name"] == "helio-under-test"
    assert root.scope == "helio"
    # The exporter's own headers (a vendor key, a secret: never logged).
    assert receiver.exports[0]["x-collector-key"] == collector_key
    attributes = root.attributes
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["gen_ai.tool.name"] == "charge"
    assert attributes["helio.origin"] == "mcp"
    assert attributes["mcp.protocol.version"] == "2026-07-28"
    assert attributes["helio.decision"] == "rate_limit"
    assert attributes["helio.rule"] == "charge-rate"
    assert root.status == "unset"

    # The audit record and the trace name each other.
    operator = {"authorization": f"Bearer {instance.api_secret}"}
    url = f"{instance.dashboard_url}/api/audit/{attributes['helio.audit.id']}"
    assert wait_until(lambda: httpx.get(url, headers=operator, timeout=5).status_code == 200, timeout=5)
    record = httpx.get(url, headers=operator, timeout=5).json()["data"]
    assert record["tool_name"] == "charge" and record["tool_input"]["currency"] == marker

    spans = children(receiver, root)
    assert [s.name for s in spans] == [
        "stage rules", "stage budgets", "state commit", "upstream tools/call charge", "state settle"]
    rules, budgets, commit, upstream_span, settle = spans
    assert rules.attributes["helio.stage.verdict"] == "allow"
    assert rules.attributes["helio.stage.rule"] == "charge-rate"
    assert budgets.attributes["helio.stage.name"] == "budgets"
    # Each stage's state operations, inside it.
    (take,) = children(receiver, rules)
    assert take.name == "state rate_take" and take.attributes["helio.state.key"].startswith("rules/")
    (reserve,) = children(receiver, budgets)
    assert reserve.name == "state spend_reserve"
    assert rules.start_ns <= take.start_ns <= take.end_ns <= rules.end_ns
    assert rules.end_ns <= budgets.start_ns and budgets.end_ns <= commit.start_ns
    assert upstream_span.kind == "client"
    assert upstream_span.attributes["http.response.status_code"] == 200
    for span in spans:
        assert root.start_ns <= span.start_ns <= span.end_ns <= root.end_ns, span.name

    # Propagated: the upstream's parent is Helio's upstream span.
    (sent,) = upstream_calls(upstream_sse, marker)
    expected = traceparent(trace_id, upstream_span.span_id)
    assert sent["headers"]["traceparent"] == expected
    assert sent["body"]["params"]["_meta"]["traceparent"] == expected
    assert sent["body"]["params"]["arguments"] == {"amount": 7, "currency": marker}
    assert sent["body"]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"


def test_a_blocked_call_without_a_context_starts_its_own_trace(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    instance = helio(traced(receiver), upstream=upstream_sse, env=FAST_EXPORT)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        reply = raw.call_tool("delete_record", {"id": "r1"}).final()
    assert reply["error"]["code"] == -32001
    root = root_of(receiver, "delete_record")
    assert root.parent_span_id == ""
    assert root.attributes["helio.decision"] == "deny"
    assert root.attributes["helio.block_reason"] == "policy_denied"
    assert root.attributes["mcp.protocol.version"] == "2025-06-18"
    (rules,) = children(receiver, root)
    assert rules.name == "stage rules"
    assert (rules.attributes["helio.stage.verdict"], rules.attributes["helio.stage.reason"]) == (
        "deny", "policy_denied")


def test_http_headers_continue_a_trace_and_tracestate_is_carried_upstream(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    instance = helio(traced(receiver), upstream=upstream_sse, env=FAST_EXPORT)
    trace_id, client_span = ids()
    marker = secrets.token_hex(4)
    headers = {"traceparent": traceparent(trace_id, client_span), "tracestate": "vendor=abc,other=1"}
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        rpc_result(raw.call_tool("echo", {"text": marker}, headers=headers))
    root = root_of(receiver, "echo")
    assert (root.trace_id, root.parent_span_id) == (trace_id, client_span)
    upstream_span = next(s for s in children(receiver, root) if s.kind == "client")
    (sent,) = upstream_calls(upstream_sse, marker)
    assert sent["headers"]["traceparent"] == traceparent(trace_id, upstream_span.span_id)
    assert sent["headers"]["tracestate"] == "vendor=abc,other=1"
    assert sent["body"]["params"]["_meta"]["tracestate"] == "vendor=abc,other=1"


def test_a_call_held_for_approval_has_its_wait_in_the_trace(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    instance = helio(traced(receiver), upstream=upstream_sse, env=FAST_EXPORT)
    operator = {"authorization": f"Bearer {instance.api_secret}"}
    outcome: dict[str, Any] = {}

    def call() -> None:
        with RawMcp(instance.mcp_url) as raw:
            raw.initialize()
            outcome["reply"] = raw.call_tool("slow", {"seconds": 0}).final()
    caller = __import__("threading").Thread(target=call)
    caller.start()
    tickets: list[dict[str, Any]] = []

    def pending() -> bool:
        tickets[:] = httpx.get(f"{instance.dashboard_url}/api/approvals", params={"status": "pending"},
                               headers=operator, timeout=5).json()["data"]
        return len(tickets) == 1
    assert wait_until(pending, timeout=10)
    approved = httpx.post(f"{instance.dashboard_url}/api/approvals/{tickets[0]['id']}/approve",
                          json={"approved_by": "alice"}, headers=operator, timeout=5)
    assert approved.status_code == 200, approved.text
    caller.join(15)
    assert "result" in outcome["reply"], outcome
    root = root_of(receiver, "slow")
    assert root.attributes["helio.approval.status"] == "approved"
    names = [s.name for s in children(receiver, root)]
    assert names == ["stage rules", "stage budgets", "approval", "upstream tools/call slow", "state settle"], names
    approval = children(receiver, root)[2]
    assert approval.attributes["helio.approval.ticket"] == tickets[0]["id"]
    assert approval.attributes["helio.approval.status"] == "approved"
    assert approval.end_ns - approval.start_ns > 0


def test_a_stdio_upstream_gets_the_context_in_meta(
        helio: HelioLauncher, receiver: OtlpReceiver, tmp_path: Any) -> None:
    """A stdio server has no headers: `_meta` is how it learns the trace."""
    import sys
    from pathlib import Path
    server = Path(__file__).parent / "fixtures" / "upstream_server.py"
    config = traced(receiver)
    config["upstream"] = {"transport": "stdio", "command": sys.executable, "args": [str(server), "--stdio"]}
    instance = helio(config, env=FAST_EXPORT)
    trace_id, client_span = ids()
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        got = rpc_result(raw.call_tool("trace_context", {}, headers={
            "traceparent": traceparent(trace_id, client_span)}))["structuredContent"]
    root = root_of(receiver, "trace_context")
    upstream_span = next(s for s in children(receiver, root) if s.kind == "client")
    assert got == {"traceparent": traceparent(trace_id, upstream_span.span_id)}


def test_an_adapter_evaluation_is_traced_from_evaluate_to_report(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    config = traced(receiver)
    config["sdk"] = {"enabled": True}
    token = secrets.token_hex(16)
    instance = helio(config, upstream=upstream_sse, env={**FAST_EXPORT, "HELIO_ADAPTER_TOKEN": token})
    trace_id, client_span = ids()
    headers = {"authorization": f"Bearer {token}", "traceparent": traceparent(trace_id, client_span)}
    evaluated = httpx.post(f"{instance.sdk_url}/evaluate", headers=headers, timeout=5, json={
        "origin": "langchain", "session_id": "s1", "tool": {"name": "charge"},
        "arguments": {"amount": 3}}).json()
    assert evaluated["decision"] == "allow", evaluated
    time.sleep(0.1)  # the run the report describes
    reported = httpx.post(f"{instance.sdk_url}/audit", headers=headers, timeout=5, json={
        "evaluation_id": evaluated["evaluation_id"], "status": "success", "duration_ms": 40,
        "result": {"ok": True}})
    assert reported.status_code == 201, reported.text
    root = root_of(receiver, "charge")
    assert (root.trace_id, root.parent_span_id) == (trace_id, client_span)
    assert root.attributes["helio.origin"] == "langchain"
    names = [s.name for s in children(receiver, root)]
    assert names == ["stage rules", "stage budgets", "run charge", "state commit", "state settle"], names
    run = next(s for s in children(receiver, root) if s.name == "run charge")
    assert abs((run.end_ns - run.start_ns) - 40_000_000) < 1_000_000


def test_a_reported_run_longer_than_the_evaluation_starts_when_it_was_allowed(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    """A caller's `duration_ms` is its word: the run span never starts before
    the call was allowed."""
    config = traced(receiver)
    config["sdk"] = {"enabled": True}
    token = secrets.token_hex(16)
    instance = helio(config, upstream=upstream_sse, env={**FAST_EXPORT, "HELIO_ADAPTER_TOKEN": token})
    headers = {"authorization": f"Bearer {token}"}
    evaluated = httpx.post(f"{instance.sdk_url}/evaluate", headers=headers, timeout=5, json={
        "origin": "langchain", "tool": {"name": "echo"}, "arguments": {"text": "x"}}).json()
    httpx.post(f"{instance.sdk_url}/audit", headers=headers, timeout=5, json={
        "evaluation_id": evaluated["evaluation_id"], "status": "success", "duration_ms": 3_600_000})
    root = root_of(receiver, "echo")
    stages = [s for s in children(receiver, root) if s.name.startswith("stage ")]
    run = next(s for s in children(receiver, root) if s.name == "run echo")
    assert run.start_ns >= stages[-1].end_ns and run.end_ns <= root.end_ns


def test_sampling_follows_the_clients_decision_and_the_ratio(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    """`sample_ratio: 0` traces no call of its own, but a client's sampled
    context is honoured, and an unsampled one still reaches the upstream."""
    instance = helio(traced(receiver, sample_ratio=0), upstream=upstream_sse, env=FAST_EXPORT)
    sampled, unsampled = ids(), ids()
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        rpc_result(raw.call_tool("echo", {"text": f"{marker}-first"}))
        rpc_result(raw.call_tool("echo", {"text": f"{marker}-second"},
                                 headers={"traceparent": traceparent(*unsampled, sampled=False)}))
        rpc_result(raw.call_tool("echo", {"text": f"{marker}-third"},
                                 headers={"traceparent": traceparent(*sampled)}))
    root = root_of(receiver, "echo")
    assert root.trace_id == sampled[0]
    (sent,) = upstream_calls(upstream_sse, f"{marker}-second")
    parent = sent["headers"]["traceparent"].split("-")
    assert parent[1] == unsampled[0] and parent[3] == "00" and parent[2] != unsampled[1]
    assert len([s for s in receiver.snapshot() if s.name.startswith("tools/call")]) == 1


def test_without_telemetry_nothing_is_exported_and_the_context_passes_through(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    instance = helio({"policies": POLICIES}, upstream=upstream_sse, env=FAST_EXPORT)
    marker = secrets.token_hex(4)
    context = traceparent(*ids())
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        rpc_result(raw.call_tool("echo", {"text": marker}, headers={"traceparent": context}))
    (sent,) = upstream_calls(upstream_sse, marker)
    assert sent["headers"]["traceparent"] == context
    assert "_meta" not in sent["body"]["params"]
    assert receiver.snapshot() == []


def test_spans_still_queued_at_shutdown_are_exported(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver) -> None:
    instance = helio(traced(receiver), upstream=upstream_sse, env={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        rpc_result(raw.call_tool("echo", {"text": "last words"}))
    assert receiver.snapshot() == []
    assert instance.terminate() == 0
    root = root_of(receiver, "echo", timeout=1)
    assert root.attributes["helio.decision"] == "allow"


def test_a_collector_that_is_down_costs_the_calls_nothing(
        helio: HelioLauncher, upstream_sse: Upstream) -> None:
    from conftest import free_port
    config = {"policies": POLICIES, "telemetry": {"otlp_endpoint": f"http://127.0.0.1:{free_port()}",
                                                  "export_timeout": "1s"}}
    instance = helio(config, upstream=upstream_sse, env=FAST_EXPORT)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        for n in range(20):
            rpc_result(raw.call_tool("echo", {"text": f"n{n}"}))
    assert instance.terminate() == 0


@pytest.mark.parametrize("telemetry, path, message", [
    ({"otlp_endpoint": "grpc://collector:4317"}, "telemetry.otlp_endpoint", "not an http(s) URL"),
    ({"otlp_endpoint": "http://collector:4318?x=1"}, "telemetry.otlp_endpoint", "query or fragment"),
    ({"otlp_endpoint": "http://c:4318", "sample_ratio": 1.5}, "telemetry.sample_ratio", "from 0 to 1"),
    ({"otlp_endpoint": "http://c:4318", "headers": {"content-type": "x"}}, "telemetry.headers.content-type",
     "reserved header"),
    ({"otlp_endpoint": "http://c:4318", "export_timeout": "0s"}, "telemetry.export_timeout", "greater than zero"),
    ({"otlp_endpoint": "http://c:4318", "exporter": "x"}, "telemetry", "unknown key \"exporter\""),
])
def test_validate_names_what_is_wrong_in_telemetry(
        helio_bin: Any, tmp_path: Any, telemetry: dict[str, Any], path: str, message: str) -> None:
    config = {"version": "1", "upstream": {"url": "http://127.0.0.1:9/mcp"}, "telemetry": telemetry}
    file = tmp_path / "helio.yaml"
    file.write_text(yaml.safe_dump(config))
    checked = subprocess.run([str(helio_bin), "validate", "-c", str(file)], capture_output=True, text=True)
    said = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert path in said and message in said, said


@pytest.mark.parametrize("meta, headers", [
    ({"traceparent": "00-" + "z" * 32 + "-" + "1" * 16 + "-01"}, {}),                  # not hex
    ({"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"}, {}),                  # all-zero ids
    ({"traceparent": "x" * 10_000, "tracestate": "k=" + "v" * 10_000}, {}),            # oversized
    ({"traceparent": 7, "tracestate": ["a"]}, {}),                                     # not strings
    ({}, {"traceparent": "00-" + "a" * 31 + "-" + "b" * 16 + "-01", "tracestate": "\x01"}),  # short id, bad state
])
def test_a_spoofed_or_malformed_context_starts_a_new_trace_and_never_reaches_the_upstream(
        helio: HelioLauncher, upstream_sse: Upstream, receiver: OtlpReceiver,
        meta: dict[str, Any], headers: dict[str, str]) -> None:
    """Hostile trace context is not continued, not echoed upstream, and costs the call
    nothing: it is governed, forwarded with Helio's own context, and recorded."""
    instance = helio(traced(receiver), upstream=upstream_sse, env=FAST_EXPORT)
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        sent_headers = {k: v for k, v in headers.items() if v.isprintable()}
        reply = raw.request("tools/call", {"name": "echo", "arguments": {"text": marker}, "_meta": meta},
                            headers=sent_headers)
        assert "result" in reply.final(), reply.response.text
    root = root_of(receiver, "echo")
    assert root.parent_span_id == "", "nothing invalid is continued"
    upstream_span = next(s for s in children(receiver, root) if s.kind == "client")
    (sent,) = upstream_calls(upstream_sse, marker)
    ours = traceparent(root.trace_id, upstream_span.span_id)
    assert sent["headers"]["traceparent"] == ours
    assert sent["body"]["params"]["_meta"]["traceparent"] == ours
    assert "tracestate" not in sent["headers"] and "tracestate" not in sent["body"]["params"]["_meta"]
    operator = {"authorization": f"Bearer {instance.api_secret}"}
    url = f"{instance.dashboard_url}/api/audit/{root.attributes['helio.audit.id']}"
    assert wait_until(lambda: httpx.get(url, headers=operator, timeout=5).status_code == 200, timeout=5)
