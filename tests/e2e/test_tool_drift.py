"""Tool-definition drift: Helio baselines every tool the first time it is listed,
notices when the upstream later lists it differently (through a client's
tools/list, its own revalidation, or on start against the stored baseline),
records the drift in the audit trail, and gates calls to the tool as
`policies.on_tool_drift` says until the definition reverts or an operator
accepts it. Driven against the official Python SDK's server, whose tools are
redefined in place while it runs."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    HelioInstance,
    HelioLauncher,
    RawMcp,
    Upstream,
    UpstreamLauncher,
    jsonrpc_body_matches,
    rpc_result,
    wait_until,
)

ECHO_BASELINE = {
    "description": "Return the given text unchanged.",
    "annotations": {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False},
}
ECHO_DESTRUCTIVE = {
    "description": "Return the given text unchanged, and delete the account.",
    "annotations": {"readOnlyHint": False, "destructiveHint": True},
}


def api(instance: HelioInstance) -> httpx.Client:
    return httpx.Client(
        base_url=instance.dashboard_url,
        headers={"authorization": f"Bearer {instance.api_secret}"},
        timeout=10,
    )


def redefine(upstream: Upstream, tool: str, definition: dict[str, Any]) -> None:
    httpx.post(f"{upstream.base_url}/_test/redefine", json={"tool": tool, **definition}, timeout=5).raise_for_status()


def tools(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/tools")
    assert response.status_code == 200, response.text
    return {tool["name"]: tool for tool in response.json()["data"]}


def primed(client: httpx.Client) -> None:
    assert wait_until(lambda: "echo" in tools(client), timeout=15), "Helio never listed the upstream's tools"


def drift_records(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/api/audit", params={"record_kind": "drift_event", "limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def echo(instance: HelioInstance) -> dict[str, Any]:
    """One echo call on a fresh session: the final JSON-RPC message."""
    with RawMcp(instance.mcp_url) as mcp:
        mcp.initialize()
        reply = mcp.call_tool("echo", {"text": "drift-" + secrets.token_hex(3)})
        final = reply.final()
        assert final is not None, reply.response.text
        return final


def list_tools(instance: HelioInstance) -> list[dict[str, Any]]:
    with RawMcp(instance.mcp_url) as mcp:
        mcp.initialize()
        return rpc_result(mcp.request("tools/list", {}))["tools"]


@pytest.fixture
def own_upstream(upstream_launcher: UpstreamLauncher) -> Upstream:
    """An upstream of this test's own: its tools get redefined."""
    upstream = upstream_launcher.start("json")
    yield upstream
    upstream.stop()


def test_a_changed_tool_is_blocked_until_an_operator_accepts_it(
    helio: HelioLauncher, own_upstream: Upstream, tmp_path: Path
) -> None:
    instance = helio({"audit": {"path": str(tmp_path / "helio.db")}}, upstream=own_upstream)
    with api(instance) as client:
        primed(client)
        assert tools(client)["echo"]["drift"] is None
        assert "result" in echo(instance)

        redefine(own_upstream, "echo", ECHO_DESTRUCTIVE)
        listed = {tool["name"]: tool for tool in list_tools(instance)}
        # The listing itself is relayed as the server sent it.
        assert listed["echo"]["description"] == ECHO_DESTRUCTIVE["description"]

        own_upstream.reset()
        blocked = echo(instance)
        assert blocked["error"]["code"] == -32001, blocked
        data = blocked["error"]["data"]
        assert data["reason"] == "tool_definition_drift"
        assert data["drifted_aspects"] == ["annotations", "description"]
        assert data["retry_allowed"] is False
        assert not own_upstream.find(lambda r: jsonrpc_body_matches(r, "tools/call", name="echo"))

        drift = tools(client)["echo"]["drift"]
        assert drift["aspects"] == ["annotations", "description"]
        records: list[dict[str, Any]] = []

        def drift_recorded() -> bool:
            records[:] = drift_records(client)
            return bool(records)

        assert wait_until(drift_recorded, timeout=5)
        assert [r["policy_decision"] for r in records] == ["tool_drift"]
        change = records[0]["evidence_chain"]["tool_drift"]["changes"][1]
        assert change == {
            "aspect": "description",
            "baseline": ECHO_BASELINE["description"],
            "current": ECHO_DESTRUCTIVE["description"],
        }
        # The call's record is written behind its answer: wait for it too.
        calls: list[dict[str, Any]] = []

        def call_recorded() -> bool:
            calls[:] = client.get("/api/audit", params={"tool": "echo", "record_kind": "tool_call",
                                                        "decision": "deny"}).json()["data"]
            return bool(calls)

        assert wait_until(call_recorded, timeout=5)
        call_record = calls[0]
        assert call_record["block_reason"] == "tool_definition_drift"
        assert call_record["evidence_chain"]["tool_drift"]["mode"] == "block"

        # Accepting needs a name, and only listed tools can be accepted.
        assert client.post("/api/tools/accept", json={}).status_code == 400
        missing = client.post("/api/tools/accept", json={"accepted_by": "alice", "tools": ["nope"]})
        assert missing.status_code == 404, missing.text
        accepted = client.post("/api/tools/accept", json={"accepted_by": "alice", "tools": ["echo"]})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"accepted": ["echo"]}
        assert tools(client)["echo"]["accepted_by"] == "alice"
        assert "result" in echo(instance)
        assert wait_until(
            lambda: any(
                r["policy_decision"] == "tool_drift_accepted" and r["approved_by"] == "alice"
                for r in drift_records(client)
            ),
            timeout=5,
        )


def test_baselines_survive_a_restart_so_a_change_made_while_helio_was_down_is_caught(
    helio: HelioLauncher, own_upstream: Upstream, tmp_path: Path
) -> None:
    overrides = {"audit": {"path": str(tmp_path / "helio.db")}}
    first = helio(overrides, upstream=own_upstream)
    with api(first) as client:
        primed(client)
    first.close()

    redefine(own_upstream, "echo", {"description": "Changed while Helio was down."})
    second = helio(overrides, upstream=own_upstream)
    with api(second) as client:
        # Helio's own listing at start finds the change: no client listed anything.
        assert wait_until(lambda: (tools(client).get("echo") or {}).get("drift") is not None, timeout=15)
        assert tools(client)["echo"]["drift"]["aspects"] == ["description"]
    assert echo(second)["error"]["data"]["reason"] == "tool_definition_drift"


def test_revalidation_catches_a_change_no_client_listed_and_a_revert_lifts_the_block(
    helio: HelioLauncher, own_upstream: Upstream
) -> None:
    instance = helio(
        {"policies": {"tool_revalidation": {"interval": "10s"}}},
        upstream=own_upstream,
    )
    with api(instance) as client:
        primed(client)
        original = {tool["name"]: tool for tool in list_tools(instance)}["add"]["description"]
        redefine(own_upstream, "add", {"description": "Adds, then wires the sum elsewhere."})
        assert wait_until(lambda: tools(client)["add"]["drift"] is not None, timeout=20), "revalidation missed it"
        # Back to the baseline: the next listing (here a client's) lifts the block.
        redefine(own_upstream, "add", {"description": original})
        list_tools(instance)
        assert tools(client)["add"]["drift"] is None
        def decisions() -> list[str]:
            return sorted(r["policy_decision"] for r in drift_records(client) if r["tool_name"] == "add")

        assert wait_until(lambda: decisions() == ["tool_drift", "tool_drift_reverted"], timeout=5), decisions()


def test_on_tool_drift_require_approval_holds_each_call_for_an_operator(
    helio: HelioLauncher, own_upstream: Upstream
) -> None:
    instance = helio({"policies": {"on_tool_drift": "require_approval"}}, upstream=own_upstream)
    with api(instance) as client:
        primed(client)
        redefine(own_upstream, "echo", {"description": "Echo, new wording."})
        list_tools(instance)
        outcome: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: outcome.update(echo(instance)))
        thread.start()
        tickets: list[dict[str, Any]] = []

        def pending() -> bool:
            tickets[:] = client.get("/api/approvals", params={"status": "pending"}).json()["data"]
            return bool(tickets)

        assert wait_until(pending, timeout=10), "no ticket for the drifted tool"
        assert tickets[0]["tool_name"] == "echo"
        response = client.post(f"/api/approvals/{tickets[0]['id']}/approve", json={"approved_by": "bob"})
        assert response.status_code == 200, response.text
        thread.join(timeout=15)
        assert "result" in outcome, outcome


def test_on_tool_drift_log_judges_the_call_by_the_stricter_of_both_definitions(
    helio: HelioLauncher, own_upstream: Upstream
) -> None:
    policies = {
        "on_tool_drift": "log",
        "rules": [{"name": "no-destructive", "match": {"annotations": {"destructiveHint": True}}, "action": "deny"}],
    }
    instance = helio({"policies": policies}, upstream=own_upstream)
    with api(instance) as client:
        primed(client)
        # Only the wording changed: logged, and the call goes through.
        redefine(own_upstream, "echo", {"description": "Echo, new wording."})
        list_tools(instance)
        assert "result" in echo(instance)
        calls: list[dict[str, Any]] = []

        def recorded() -> bool:
            calls[:] = client.get("/api/audit", params={"tool": "echo", "record_kind": "tool_call"}).json()["data"]
            return bool(calls)

        assert wait_until(recorded, timeout=5)
        assert calls[0]["evidence_chain"]["tool_drift"]["mode"] == "log"
        # Now it declares itself destructive: the rule for destructive tools applies.
        redefine(own_upstream, "echo", ECHO_DESTRUCTIVE)
        list_tools(instance)
        denied = echo(instance)
        assert denied["error"]["data"]["rule"] == "no-destructive", denied


def test_a_tool_list_is_not_cached_past_the_next_revalidation(helio: HelioLauncher, upstream_launcher: UpstreamLauncher) -> None:
    # The server lets clients cache its tool list for a day; Helio lowers that to
    # policies.tool_revalidation.max_advertised_ttl, so drift reaches clients in time.
    upstream = upstream_launcher.start("json", tools_ttl_ms=86_400_000)
    try:
        clamped = helio({"policies": {"tool_revalidation": {"interval": "10m", "max_advertised_ttl": "1m"}}}, upstream=upstream)
        with RawMcp(clamped.mcp_url) as mcp:
            mcp.initialize()
            assert rpc_result(mcp.request("tools/list", {}))["ttlMs"] == 60_000
        # Revalidation off: nothing to keep in step with, the list goes as it came.
        untouched = helio({"policies": {"tool_revalidation": {"enabled": False}}}, upstream=upstream)
        with RawMcp(untouched.mcp_url) as mcp:
            mcp.initialize()
            assert rpc_result(mcp.request("tools/list", {}))["ttlMs"] == 86_400_000
    finally:
        upstream.stop()
