"""Approval routers are WebAssembly components: the example finance router
(examples/finance-router) loaded into the real binary sends payments over
1,000 to a finance Slack channel (a real HTTP server stands in for Slack's
Web API) with a 10-minute timeout and everything else to the dashboard; a
router that traps, loops or answers a channel that does not exist fails
closed to the dashboard with the default timeout, and the ticket says so."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from conftest import HelioLauncher, Upstream, minimal_config, wait_until
from test_approvals import FakeSlack, api, audit_record, tool_in_background
from test_plugins import _validate, fixture

ROOT = Path(__file__).resolve().parents[2]
FINANCE_ROUTER = ROOT / "examples" / "finance-router" / "target" / "wasm32-wasip2" / "release" / "finance_router.wasm"

HOLD_CHARGES = {
    "rules": [{"name": "approve-charges", "match": {"tool": "charge"}, "action": "require_approval"}]
}


def finance_router() -> Path:
    if not FINANCE_ROUTER.exists():
        pytest.skip(f"{FINANCE_ROUTER} is not built; run scripts/test.sh")
    return FINANCE_ROUTER


def pending_charge(client: Any, amount: float) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def appeared() -> bool:
        page = client.get("/api/approvals", params={"status": "pending"}).json()
        found[:] = [t for t in page["data"] if t["tool_name"] == "charge" and t["tool_input"].get("amount") == amount]
        return bool(found)

    assert wait_until(appeared, timeout=15), "no pending ticket"
    return found[0]


def test_the_finance_router_sends_big_payments_to_finance_on_slack(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    slack = FakeSlack()
    try:
        config = {
            "policies": HOLD_CHARGES,
            "approval": {
                "timeout": "2m",
                "channels": [
                    {"type": "slack", "name": "finance", "bot_token": "xoxb-test-token",
                     "signing_secret": secrets.token_hex(16), "channel": "#finance",
                     "approvers": ["U0CFO"], "api_url": slack.api_url},
                ],
                "router": {"path": str(finance_router()), "config": {"tools": ["charge"], "threshold": "1000"}},
            },
        }
        instance = helio(config, upstream=upstream_sse)
        with api(instance) as client:
            # Over 1,000 (exactly: 1000.01 is over): finance, 10 minutes.
            thread, outcome = tool_in_background(instance, "charge", {"amount": 1000.01})
            ticket = pending_charge(client, 1000.01)
            assert ticket["channel_name"] == "finance" and ticket["timeout_ms"] == 600_000
            assert "routing_error" not in ticket
            assert wait_until(lambda: len(slack.of("chat.postMessage")) == 1, timeout=15), slack.calls
            assert slack.of("chat.postMessage")[0]["json"]["channel"] == "#finance"
            # Decided the moment the message arrives (before Helio has Slack's
            # answer): the resolution still updates that message, no second post.
            client.post(f"/api/approvals/{ticket['id']}/approve", json={"approved_by": "cfo"})
            thread.join(timeout=15)
            assert "result" in outcome["final"], outcome
            assert wait_until(lambda: len(slack.of("chat.update")) == 1, timeout=10), slack.calls
            assert "Approved by cfo" in slack.of("chat.update")[0]["json"]["text"]

            # 1,000 is not over: the dashboard, with approval.timeout.
            thread, outcome = tool_in_background(instance, "charge", {"amount": 1000})
            ticket = pending_charge(client, 1000)
            assert ticket["channel_name"] == "dashboard" and ticket["timeout_ms"] == 120_000
            client.post(f"/api/approvals/{ticket['id']}/deny", json={"denied_by": "ops"})
            thread.join(timeout=15)
            assert outcome["final"]["error"]["data"]["reason"] == "approval_denied"
        assert len(slack.of("chat.postMessage")) == 1, "only the big payment went to Slack"
    finally:
        slack.close()


@pytest.mark.parametrize(
    ("router_config", "said"),
    [
        ({"mode": "trap"}, "trapped"),
        ({"mode": "loop"}, "exceeded its time limit"),
        ({"channel": "nowhere"}, 'answered channel "nowhere", which is not configured'),
        ({"channel": "dashboard", "timeout_ms": 0}, "answered a timeout of 0 ms"),
    ],
)
def test_a_router_that_fails_routes_to_the_dashboard_and_says_so(
    helio: HelioLauncher, upstream_sse: Upstream, router_config: dict[str, Any], said: str
) -> None:
    config = {
        "policies": HOLD_CHARGES,
        "approval": {
            "timeout": "90s",
            "router": {"path": str(fixture("fault-router")), "config": router_config, "limits": {"timeout_ms": 100}},
        },
    }
    instance = helio(config, upstream=upstream_sse)
    with api(instance) as client:
        thread, outcome = tool_in_background(instance, "charge", {"amount": 5})
        ticket = pending_charge(client, 5)
        assert ticket["channel_name"] == "dashboard" and ticket["timeout_ms"] == 90_000
        assert said in ticket["routing_error"], ticket["routing_error"]
        assert 'approval router "fault_router"' in ticket["routing_error"]
        # Still a ticket an operator can resolve: the call is not lost.
        client.post(f"/api/approvals/{ticket['id']}/approve", json={"approved_by": "ops"})
        thread.join(timeout=15)
        assert "result" in outcome["final"], outcome
        record = audit_record(client, ticket["id"])
        assert said in record["evidence_chain"]["approval"]["routing_error"]


def test_validate_checks_the_router(helio_bin: Path, tmp_path: Path) -> None:
    config = minimal_config("http://127.0.0.1:9/mcp")
    config["policies"] = HOLD_CHARGES
    config["dashboard"] = {"api_secret": secrets.token_hex(32)}
    config["approval"] = {"router": {"path": str(finance_router()), "config": {"threshold": "lots", "chanel": "x"}}}
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 1, result.stderr
    assert "approval.router.config.threshold: expected a non-negative decimal" in result.stderr
    assert "approval.router.config.chanel: unknown key" in result.stderr
    # A policy stage is not a router.
    config["approval"] = {"router": {"path": str(fixture("allow-all"))}}
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 1
    assert "approval.router.path" in result.stderr and "approval-router-plugin world" in result.stderr
    config["approval"] = {"router": {"path": str(finance_router()), "sha256": "0" * 64}}
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 1 and "approval.router.sha256: sha256 mismatch" in result.stderr
    config["approval"] = {"router": {"path": str(finance_router()), "config": {"tools": ["charge"]}}}
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert f"approval router {finance_router()}" in result.stderr


def test_the_router_reloads_with_the_rules(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    import copy

    import yaml

    config = {
        "policies": HOLD_CHARGES,
        "approval": {
            "timeout": "2m",
            "channels": [{"type": "dashboard", "name": "finance"}],
            "router": {"path": str(finance_router()), "config": {"tools": ["charge"], "threshold": "1000"}},
        },
    }
    instance = helio(config, upstream=upstream_sse)
    lowered = copy.deepcopy(instance.config)
    lowered["approval"]["router"]["config"]["threshold"] = "10"
    tmp = instance.config_path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(lowered, sort_keys=False))
    tmp.replace(instance.config_path)
    assert wait_until(lambda: "policy reloaded" in instance.stderr, timeout=10), instance.stderr
    # The router is policy: no restart needed, none asked for.
    assert "restart required" not in instance.stderr
    with api(instance) as client:
        thread, outcome = tool_in_background(instance, "charge", {"amount": 12.5})
        ticket = pending_charge(client, 12.5)
        assert ticket["channel_name"] == "finance", ticket
        client.post(f"/api/approvals/{ticket['id']}/deny", json={"denied_by": "ops"})
        thread.join(timeout=15)
