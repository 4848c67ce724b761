"""The built-in rules stage through the real binary: deny, allow, default deny,
dry run (per rule and global), annotations (relayed and primed), environment,
input conditions, not-yet-enforced actions, and hot reload.

Each test starts Helio with a policy in front of the SSE fixture upstream and
checks both what the client got and whether the call reached the upstream.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Any

import pytest
import yaml

from conftest import (
    HelioInstance,
    HelioLauncher,
    RawMcp,
    Upstream,
    jsonrpc_body_matches,
    mcp_session,
    rpc_result,
    wait_until,
)


def rule(match: dict[str, Any], action: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"match": match, "action": action, **extra}
    if name:
        out["name"] = name
    return out


def call(raw: RawMcp, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    request_id = f"call-{secrets.token_hex(4)}"
    reply = raw.call_tool(tool, arguments or {}, id=request_id)
    final = reply.final(request_id)
    assert final is not None, reply.response.text
    return final


def reached_upstream(upstream: Upstream, tool: str, marker: str) -> bool:
    return bool(
        upstream.find(lambda r: jsonrpc_body_matches(r, "tools/call", name=tool) and marker in json.dumps(r.get("body")))
    )


def blocked(final: dict[str, Any]) -> dict[str, Any]:
    assert "error" in final, f"expected a blocked call, got {final}"
    error = final["error"]
    assert error["code"] == -32001, error
    assert error["data"]["blocked"] is True
    return error


@pytest.fixture
def start(helio: HelioLauncher, upstream_sse: Upstream):
    def start_with(policies: dict[str, Any], **top: Any) -> HelioInstance:
        return helio({"policies": policies, **top}, upstream=upstream_sse)

    return start_with


def test_deny_rule_blocks_with_feedback_and_never_reaches_upstream(start, upstream_sse: Upstream) -> None:
    instance = start(
        {
            "rules": [
                rule(
                    {"tool": "delete_*"},
                    "deny",
                    name="no-deletes",
                    feedback={"message": "Deletes are disabled.", "suggestion": "Ask an operator."},
                )
            ]
        }
    )
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        error = blocked(call(raw, "delete_record", {"id": marker}))
        assert error["message"] == "Deletes are disabled."
        data = error["data"]
        assert data["reason"] == "policy_denied"
        assert data["rule"] == "no-deletes"
        assert data["rule_index"] == 0
        assert data["action"] == "deny"
        assert data["suggestion"] == "Ask an operator."
        assert data["retry_allowed"] is False
        ok = call(raw, "echo", {"text": marker})
        assert ok["result"]["content"][0]["text"] == marker
    assert not reached_upstream(upstream_sse, "delete_record", marker)
    assert reached_upstream(upstream_sse, "echo", marker)


@pytest.mark.anyio
async def test_default_deny_with_an_allow_rule_through_the_sdk_client(start) -> None:
    instance = start({"default": "deny", "rules": [rule({"tool": "echo"}, "allow", name="echo-ok")]})
    async with mcp_session(instance.mcp_url) as (session, _events):
        result = await session.call_tool("echo", {"text": "hello"})
        assert result.content[0].text == "hello"
        from mcp.shared.exceptions import MCPError

        with pytest.raises(MCPError) as denied:
            await session.call_tool("add", {"a": 1, "b": 2})
        assert denied.value.code == -32001
        assert "No matching rule; applied default policy: deny" in denied.value.message


def test_dry_run_rule_simulates_without_forwarding(start, upstream_sse: Upstream) -> None:
    instance = start({"rules": [rule({"tool": "add"}, "dry_run", name="try-add")]})
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        final = call(raw, "add", {"a": 1, "b": int(marker, 16)})
        report = json.loads(final["result"]["content"][0]["text"])
        assert report == {
            "dry_run": True,
            "would_forward": False,
            "policy_decision": "dry_run",
            "matched_rule": "try-add",
            "evidence_satisfied": True,
            "limits_ok": True,
        }
    assert not upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", name="add") and str(int(marker, 16)) in json.dumps(r.get("body")))


def test_global_dry_run_reports_each_decision(start, upstream_sse: Upstream) -> None:
    instance = start({"dry_run": True, "rules": [rule({"tool": "delete_record"}, "deny", name="no-deletes")]})
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        allowed = json.loads(call(raw, "echo", {"text": marker})["result"]["content"][0]["text"])
        assert allowed["would_forward"] is True and allowed["policy_decision"] == "allow"
        denied = json.loads(call(raw, "delete_record", {"id": marker})["result"]["content"][0]["text"])
        assert denied["would_forward"] is False and denied["policy_decision"] == "deny"
        assert denied["matched_rule"] == "no-deletes"
    assert not reached_upstream(upstream_sse, "echo", marker)


def test_annotations_are_primed_at_start_and_unknown_tools_fail_closed(start) -> None:
    instance = start({"rules": [rule({"annotations": {"destructiveHint": True}}, "deny", name="no-destructive")]})
    # No client has listed the tools: Helio's own tools/list at start taught it.
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, 10), instance.stderr
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert blocked(call(raw, "delete_record", {"id": "1"}))["data"]["rule"] == "no-destructive"
        assert "result" in call(raw, "echo", {"text": "read-only tool passes"})
        # A tool the upstream never listed has no annotations: MCP defaults apply
        # (destructive), so the guard holds instead of letting it through.
        assert blocked(call(raw, "not_listed_anywhere"))["data"]["rule"] == "no-destructive"


def test_annotations_before_priming_fail_closed(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    # An upstream that is down at start cannot be primed: every tool counts as
    # destructive, so a non-destructive-only rule cannot let anything through.
    instance = helio(
        {
            "upstream": {"url": "http://127.0.0.1:9/mcp"},
            "policies": {"default": "deny", "rules": [rule({"annotations": {"destructiveHint": False}}, "allow")]},
        }
    )
    with RawMcp(instance.mcp_url) as raw:
        error = blocked(call(raw, "echo", {"text": "x"}))
        assert error["data"]["reason"] == "policy_denied"


def test_environment_scoped_rules(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    deny_in_prod = {"rules": [rule({"tool": "echo", "environment": "production"}, "deny", name="prod-freeze")]}
    prod = helio({"environment": "production", "policies": deny_in_prod}, upstream=upstream_sse)
    staging = helio({"environment": "staging", "policies": deny_in_prod}, upstream=upstream_sse)
    with RawMcp(prod.mcp_url) as raw:
        raw.initialize()
        assert blocked(call(raw, "echo", {"text": "x"}))["data"]["rule"] == "prod-freeze"
    with RawMcp(staging.mcp_url) as raw:
        raw.initialize()
        assert "result" in call(raw, "echo", {"text": "x"})


def test_input_conditions(start) -> None:
    instance = start(
        {
            "rules": [
                rule({"tool": "echo", "input": {"$.text": {"contains": "password"}}}, "deny", name="no-secrets"),
                rule({"tool": "add", "input": {"a": {"gt": 100}, "b": {"lte": 0}}}, "deny", name="odd-sums"),
            ]
        }
    )
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert blocked(call(raw, "echo", {"text": "my password is hunter2"}))["data"]["rule"] == "no-secrets"
        assert "result" in call(raw, "echo", {"text": "nothing to see"})
        assert blocked(call(raw, "add", {"a": 101, "b": 0}))["data"]["rule"] == "odd-sums"
        assert "result" in call(raw, "add", {"a": 101, "b": 1})
        assert "result" in call(raw, "add", {"a": 100, "b": 0})


def test_nameless_call_is_an_invalid_params_error(start) -> None:
    instance = start({})
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        reply = raw.request("tools/call", {"arguments": {}}, id="nameless")
        final = reply.final("nameless")
        assert final is not None and final["error"]["code"] == -32602
        assert final["error"]["data"] == {"blocked": True, "reason": "missing_tool_name"}


def _rewrite(instance: HelioInstance, policies: dict[str, Any] | str) -> None:
    if isinstance(policies, str):
        text = policies
    else:
        config = copy.deepcopy(instance.config)
        config["policies"] = policies
        text = yaml.safe_dump(config, sort_keys=False)
    tmp = instance.config_path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(instance.config_path)


def _echo_outcome(instance: HelioInstance) -> str:
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        final = call(raw, "echo", {"text": "reload"})
    return "blocked" if "error" in final else "allowed"


def test_hot_reload_applies_edits_and_keeps_the_last_good_policy(start) -> None:
    instance = start({"rules": []})
    assert "Watching" in instance.stderr
    assert _echo_outcome(instance) == "allowed"

    _rewrite(instance, {"rules": [rule({"tool": "echo"}, "deny", name="reloaded")]})
    assert wait_until(lambda: _echo_outcome(instance) == "blocked", 10), instance.stderr
    assert "policy reloaded" in instance.stderr

    # An invalid edit is rejected with its errors; the last good policy stays.
    _rewrite(instance, instance.config_path.read_text() + "\npolicies_typo: {}\n")
    assert wait_until(lambda: "config reload failed" in instance.stderr, 10), instance.stderr
    assert 'unknown key "policies_typo"' in instance.stderr
    assert _echo_outcome(instance) == "blocked"

    _rewrite(instance, {"rules": []})
    assert wait_until(lambda: _echo_outcome(instance) == "allowed", 10), instance.stderr


def test_hot_reload_can_be_pinned(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio({"policies": {"rules": []}}, upstream=upstream_sse, extra_args=("--no-hot-reload",))
    assert "Hot reload: off" in instance.stderr
    _rewrite(instance, {"rules": [rule({"tool": "echo"}, "deny")]})
    time.sleep(2)
    assert _echo_outcome(instance) == "allowed"

    pinned = helio({"policies": {"hot_reload": False, "rules": []}}, upstream=upstream_sse)
    assert "Hot reload: off" in pinned.stderr


def test_priming_speaks_the_upstreams_era(helio: HelioLauncher, upstream_launcher: Any) -> None:
    # A stateless 2026-07-28 server is discovered (server/discover) and listed
    # without a session; a handshake-era server gets initialize first.
    modern = upstream_launcher.start("sse", stateless=True)
    instance = helio({"policies": {"rules": [rule({"annotations": {"destructiveHint": True}}, "deny", name="no-destructive")]}},
                     upstream=modern)
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, 10), instance.stderr
    helios = [r for r in modern.requests() if "helio-prime" in json.dumps(r.get("body"))]
    methods = [r["body"]["method"] for r in helios]
    assert methods[0] == "server/discover", methods
    assert "initialize" not in methods, methods
    (listing,) = [r for r in helios if r["body"]["method"] == "tools/list"]
    assert listing["headers"].get("mcp-protocol-version") == "2026-07-28"
    assert listing["body"]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
    assert "mcp-session-id" not in listing["headers"]
    # Primed: the annotations are known without any client listing them.
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert "result" in call(raw, "echo", {"text": "read-only tool passes"})


@pytest.mark.parametrize("pinned", ["2025-06-18", "2026-07-28"])
def test_a_pinned_protocol_version_skips_the_probe(helio: HelioLauncher, upstream_launcher: Any, pinned: str) -> None:
    upstream = upstream_launcher.start("json", stateless=True)
    instance = helio({"upstream": {"protocol_version": pinned}}, upstream=upstream)
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, 10), instance.stderr
    assert "protocol_version: accepted but not yet enforced" not in instance.stderr
    methods = [r["body"]["method"] for r in upstream.requests() if "helio-prime" in json.dumps(r.get("body"))]
    assert "server/discover" not in methods, methods
    if pinned == "2025-06-18":
        assert methods[0] == "initialize", methods
    else:
        assert methods == ["tools/list"], methods
    upstream.stop()


@pytest.mark.anyio
async def test_a_dry_run_of_a_tool_with_an_output_schema_is_a_result_the_sdk_accepts(start) -> None:
    """The official SDK client checks a successful result against the tool's
    outputSchema; a dry run's report is not the tool's output, so it comes back
    isError with the report as structuredContent (nothing made up to fit)."""
    instance = start({"rules": [rule({"tool": "add"}, "dry_run", name="try-add")]})
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, 10), instance.stderr
    async with mcp_session(instance.mcp_url) as (session, _):
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert listed["add"].output_schema is not None
        result = await session.call_tool("add", {"a": 1, "b": 2})
        assert result.is_error is True
        assert result.structured_content["dry_run"] is True
        assert result.structured_content["matched_rule"] == "try-add"
        assert json.loads(result.content[0].text) == result.structured_content
