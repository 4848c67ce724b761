"""Stateful governance through the real binary: dependency chains, rate limits,
spend limits, budgets, evidence, session identity and `on_unresolved`, dry runs
that change nothing, and state that survives a restart.

Each test starts Helio with a policy in front of the SSE fixture upstream, calls
tools with a raw MCP client (so the session header is explicit), and checks both
the answer and whether the call reached the upstream.
"""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import HelioInstance, HelioLauncher, RawMcp, Upstream, jsonrpc_body_matches, wait_until

SDK_TOKEN = secrets.token_hex(32)
HEADER_ONLY = {"identity": [{"source": "header"}]}


def client(instance: HelioInstance, session: str | None) -> RawMcp:
    headers = {"x-helio-session-id": session} if session else {}
    raw = RawMcp(instance.mcp_url, headers=headers)
    raw.initialize()
    return raw


def call(raw: RawMcp, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    request_id = f"call-{secrets.token_hex(4)}"
    final = raw.call_tool(tool, arguments or {}, id=request_id).final(request_id)
    assert final is not None
    return final


def ok(final: dict[str, Any]) -> dict[str, Any]:
    assert "result" in final, f"expected the call to go through, got {final}"
    return final["result"]


def blocked(final: dict[str, Any], reason: str) -> dict[str, Any]:
    assert "error" in final, f"expected a block ({reason}), got {final}"
    error = final["error"]
    assert error["code"] == -32001, error
    assert error["data"]["blocked"] is True
    assert error["data"]["reason"] == reason, error
    return error["data"]


def upstream_calls(upstream: Upstream, tool: str, marker: str) -> int:
    return len(
        [
            r
            for r in upstream.requests()
            if jsonrpc_body_matches(r, "tools/call", name=tool) and marker in json.dumps(r.get("body"))
        ]
    )


@pytest.fixture
def start(helio: HelioLauncher, upstream_sse: Upstream):
    def start_with(config: dict[str, Any], **kwargs: Any) -> HelioInstance:
        return helio(config, upstream=upstream_sse, **kwargs)

    return start_with


def test_dependency_chain_needs_a_successful_call_in_the_same_session(start, upstream_sse: Upstream) -> None:
    instance = start(
        {
            "policies": {
                "rules": [
                    {"name": "delete-after-lookup", "match": {"tool": "delete_record"}, "action": "allow", "requires": ["echo"]},
                    {"name": "charge-after-any-attempt", "match": {"tool": "charge"}, "action": "allow",
                     "requires": ["fail"], "requires_success": False},
                    {"name": "add-after-a-success", "match": {"tool": "add"}, "action": "allow", "requires": ["fail"]},
                ]
            }
        }
    )
    marker = secrets.token_hex(4)
    with client(instance, "run-a") as a, client(instance, "run-b") as b:
        data = blocked(call(a, "delete_record", {"id": marker}), "dependency_missing")
        assert data["missing_dependencies"] == ["echo"]
        assert data["missing_evidence"] == [] and data["expired_evidence"] == []
        assert data["retry_allowed"] is True and data["action"] == "deny"
        assert "echo" in data["suggestion"]
        assert upstream_calls(upstream_sse, "delete_record", marker) == 0

        ok(call(a, "echo", {"text": "looked up"}))
        ok(call(a, "delete_record", {"id": marker}))
        assert upstream_calls(upstream_sse, "delete_record", marker) == 1
        # Session B never called echo: A's history is not B's.
        blocked(call(b, "delete_record", {"id": marker}), "dependency_missing")

        # An isError result is not a success...
        assert ok(call(a, "fail"))["isError"] is True
        blocked(call(a, "add", {"a": 1, "b": 2}), "dependency_missing")
        # ...but requires_success: false accepts any attempt.
        ok(call(a, "charge", {"amount": 1}))


def test_rate_limit_admits_exactly_max_calls_and_blocked_calls_do_not_count(start, upstream_sse: Upstream) -> None:
    instance = start(
        {
            "policies": {
                "rules": [
                    {"name": "echo-rate", "match": {"tool": "echo"}, "action": "rate_limit",
                     "limits": {"max_calls": 3, "window": "1m"},
                     "feedback": {"message": "Slow down.", "suggestion": "Batch your lookups."}},
                    {"name": "per-session", "match": {"tool": "add"}, "action": "rate_limit",
                     "limits": {"max_calls": 2, "window": "1m", "key": "session"}},
                ]
            }
        }
    )
    marker = secrets.token_hex(4)
    with client(instance, "s1") as s1, client(instance, "s2") as s2:
        for _ in range(3):
            ok(call(s1, "echo", {"text": marker}))
        data = blocked(call(s2, "echo", {"text": marker}), "rate_limited")
        assert (data["current_calls"], data["max_calls"], data["window_seconds"]) == (3, 3, 60)
        assert data["reset_at"].endswith("Z") and data["retry_allowed"] is True
        assert data["rule"] == "echo-rate" and data["action"] == "rate_limit"
        assert data["suggestion"] == "Batch your lookups."
        assert upstream_calls(upstream_sse, "echo", marker) == 3

        # key: session — each session has its own two calls.
        for raw in (s1, s2):
            ok(call(raw, "add", {"a": 1, "b": 1}))
            ok(call(raw, "add", {"a": 1, "b": 1}))
            blocked(call(raw, "add", {"a": 1, "b": 1}), "rate_limited")


def test_concurrent_calls_never_over_admit(start) -> None:
    instance = start(
        {
            "policies": {
                "rules": [
                    {"name": "five", "match": {"tool": "echo"}, "action": "rate_limit",
                     "limits": {"max_calls": 5, "window": "1h", "key": "global"}},
                ]
            }
        }
    )
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        with client(instance, f"w-{secrets.token_hex(3)}") as raw:
            final = call(raw, "echo", {"text": "race"})
            with lock:
                results.append("ok" if "result" in final else final["error"]["data"]["reason"])

    threads = [threading.Thread(target=worker) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count("ok") == 5, results
    assert results.count("rate_limited") == 19


def test_spend_limit_is_exact_and_failed_payments_are_not_charged(start, upstream_sse: Upstream) -> None:
    instance = start(
        {
            "policies": {
                "rules": [
                    {"name": "card-cap", "match": {"tool": "charge"}, "action": "spend_limit",
                     "limits": {"max_spend": {"field": "$.amount", "limit": 1, "currency": "USD", "window": "1h"}}},
                ]
            }
        }
    )
    with client(instance, "payer") as raw:
        # 0.1 + 0.2 + 0.7 is exactly 1: no binary floating point drift.
        for amount in (0.1, 0.2):
            ok(call(raw, "charge", {"amount": amount}))
        # Declined upstream (isError): refunded, so it does not eat the limit.
        assert ok(call(raw, "charge", {"amount": 0.5, "decline": True}))["isError"] is True
        ok(call(raw, "charge", {"amount": 0.7}))
        data = blocked(call(raw, "charge", {"amount": 0.01}), "spend_limited")
        assert data["current_spend"] == 1 and data["max_spend"] == 1 and data["currency"] == "USD"
        assert data["window_seconds"] == 3600 and data["action"] == "spend_limit"

        for bad in ({"amount": "0.5"}, {}, {"amount": -1}):
            data = blocked(call(raw, "charge", bad), "spend_limited")
            assert data["invalid_amount"] is True and data["field"] == "$.amount", data


def test_budget_spans_tools_and_names_what_is_left(start) -> None:
    instance = start(
        {
            "policies": {"rules": []},
            "budgets": [
                {
                    "name": "daily-spend",
                    "limit": 50,
                    "currency": "USD",
                    "window": "1d",
                    "contributors": [
                        {"match": {"tool": "charge"}, "field": "$.amount"},
                        {"match": {"tool": "add"}, "field": "$.a"},
                    ],
                }
            ],
        }
    )
    with client(instance, "b") as raw:
        ok(call(raw, "charge", {"amount": 30}))
        data = blocked(call(raw, "add", {"a": 25, "b": 0}), "budget_exceeded")
        (budget,) = data["budgets"]
        assert budget["name"] == "daily-spend"
        assert budget["spent"] == 30 and budget["remaining"] == 20 and budget["attempted_amount"] == 25
        assert data["retry_allowed"] is True
        ok(call(raw, "add", {"a": 20, "b": 0}))
        blocked(call(raw, "charge", {"amount": 0.01}), "budget_exceeded")
        # Tools no contributor names are not charged.
        ok(call(raw, "echo", {"text": "free"}))


def test_on_unresolved_deny_and_anonymous(start) -> None:
    policy = {
        "rules": [
            {"name": "per-session", "match": {"tool": "echo"}, "action": "rate_limit",
             "limits": {"max_calls": 1, "window": "1h", "key": "session"}},
            {"name": "grounded", "match": {"tool": "delete_record"}, "action": "allow", "requires": ["echo"]},
        ]
    }
    strict = start({"session": HEADER_ONLY, "policies": policy})
    with client(strict, None) as raw:
        data = blocked(call(raw, "echo", {"text": "x"}), "session_unresolved")
        assert data["control"] == "rate_limit" and "x-helio-session-id" in data["tried"]
        data = blocked(call(raw, "delete_record", {"id": "1"}), "policy_denied")
        assert data["retry_allowed"] is True
        # Calls that engage no session-dependent control are not affected.
        ok(call(raw, "add", {"a": 1, "b": 2}))

    pooled = start({"session": {**HEADER_ONLY, "on_unresolved": "anonymous"}, "policies": policy})
    with client(pooled, None) as first, client(pooled, None) as second:
        ok(call(first, "echo", {"text": "x"}))
        blocked(call(second, "echo", {"text": "x"}), "rate_limited")  # one shared "unknown" bucket
        # Evidence and dependency rules deny without identity in both modes.
        blocked(call(first, "delete_record", {"id": "1"}), "policy_denied")


def test_dry_run_reports_and_changes_nothing(start, upstream_sse: Upstream) -> None:
    instance = start(
        {
            "policies": {
                "dry_run": True,
                "rules": [
                    {"name": "one-echo", "match": {"tool": "echo"}, "action": "rate_limit",
                     "limits": {"max_calls": 1, "window": "1h", "key": "global"}},
                    {"name": "after-echo", "match": {"tool": "delete_record"}, "action": "allow", "requires": ["echo"]},
                ]
            }
        }
    )
    marker = secrets.token_hex(4)
    with client(instance, "dry") as raw:
        for _ in range(3):
            report = json.loads(ok(call(raw, "echo", {"text": marker}))["content"][0]["text"])
            assert report["dry_run"] is True and report["would_forward"] is True
            assert report["limits_ok"] is True and report["matched_rule"] == "one-echo"
        report = json.loads(ok(call(raw, "delete_record", {"id": marker}))["content"][0]["text"])
        assert report["would_forward"] is False and report["evidence_satisfied"] is False
    assert upstream_calls(upstream_sse, "echo", marker) == 0


def test_limits_and_budgets_survive_a_restart(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    config = {
        "audit": {"path": str(tmp_path / "helio.db")},
        "policies": {
            "rules": [
                {"name": "cap", "match": {"tool": "charge"}, "action": "spend_limit",
                 "limits": {"max_spend": {"field": "amount", "limit": 100, "currency": "EUR", "window": "1d"}}},
                {"name": "two-adds", "match": {"tool": "add"}, "action": "rate_limit",
                 "limits": {"max_calls": 2, "window": "1h", "key": "session"}},
            ]
        },
        "budgets": [
            {"name": "pot", "limit": 70, "currency": "EUR", "window": "session",
             "key": "session", "contributors": [{"match": {"tool": "add"}, "field": "a"}]}
        ],
    }
    first = helio(config, upstream=upstream_sse)
    with client(first, "keeper") as raw:
        ok(call(raw, "charge", {"amount": 60}))
        ok(call(raw, "add", {"a": 50, "b": 0}))
    assert first.terminate() == 0

    second = helio(config, upstream=upstream_sse)
    with client(second, "keeper") as raw:
        data = blocked(call(raw, "charge", {"amount": 50}), "spend_limited")
        assert data["current_spend"] == 60
        data = blocked(call(raw, "add", {"a": 30, "b": 0}), "budget_exceeded")
        assert data["budgets"][0]["spent"] == 50
        ok(call(raw, "add", {"a": 20, "b": 0}))  # the second of two rate slots
        blocked(call(raw, "add", {"a": 0, "b": 0}), "rate_limited")
    with client(second, "someone-else") as raw:
        ok(call(raw, "add", {"a": 70, "b": 0}))  # session pots and buckets are per session


def test_sigkill_under_load_loses_no_acknowledged_charge(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    """Spend is durable before a call is forwarded: after a SIGKILL in the
    middle of a load, the restarted Helio counts every charge the upstream
    received, so a spend limit can never be exceeded across a crash."""
    import signal
    import sqlite3

    db = tmp_path / "helio.db"
    config = {
        "audit": {"path": str(db), "include_responses": False},
        "policies": {
            "rules": [
                {"name": "cap", "match": {"tool": "charge"}, "action": "spend_limit",
                 "limits": {"max_spend": {"field": "amount", "limit": 1000000, "currency": "EUR", "window": "1d"}}},
            ]
        },
    }
    first = helio(config, upstream=upstream_sse)
    marker = f"kill-{secrets.token_hex(4)}"
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker() -> None:
        with RawMcp(first.mcp_url, timeout=10) as raw:
            raw.initialize()
            while not stop.is_set():
                try:
                    final = call(raw, "charge", {"amount": 1, "currency": marker})
                except Exception:
                    return  # Helio died mid-call: no answer, no claim
                if "result" in final and not final["result"].get("isError"):
                    with lock:
                        acknowledged.append(1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(acknowledged) >= 300, timeout=60), len(acknowledged)
    first.proc.send_signal(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    first.proc.wait(timeout=10)
    first.expected_exit = None
    received = upstream_calls(upstream_sse, "charge", marker)
    assert received >= len(acknowledged) > 0

    second = helio(config, upstream=upstream_sse)
    limits = httpx.get(
        f"{second.dashboard_url}/api/limits", headers={"authorization": f"Bearer {second.api_secret}"}, timeout=10
    ).json()
    (ledger,) = [s for s in limits["spend_limits"] if s["rule"] == "cap"]
    # Every charge that reached the upstream is on the ledger (none lost to
    # the crash). A charge written just before the kill, whose call never
    # went out, may be there too: the safe side, at most one per client.
    assert received <= ledger["current_spend"] <= received + len(threads), (ledger, received, len(acknowledged))
    with sqlite3.connect(db) as conn:
        (rows,) = conn.execute("SELECT COUNT(*) FROM state_ledger").fetchone()
    assert received <= rows <= received + len(threads)


def test_evidence_gates_per_session_with_expiry(start, upstream_sse: Upstream) -> None:
    instance = start(
        {
            "sdk": {"enabled": True},
            "policies": {
                "rules": [
                    {"name": "refund-needs-ticket", "match": {"tool": "charge"}, "action": "allow",
                     "evidence": {"requires": ["ticket_verified", "customer_confirmed"]}},
                ]
            },
        },
        env={"HELIO_SDK_TOKEN": SDK_TOKEN},
    )
    sdk = httpx.Client(base_url=instance.sdk_url, headers={"authorization": f"Bearer {SDK_TOKEN}"})

    def attest(session: str, key: str, ttl: int = 300) -> None:
        response = sdk.post(
            "/evidence",
            json={"session_id": session, "tool_name": "lookup_ticket", "evidence_key": key,
                  "evidence_data": {"ok": True}, "ttl_seconds": ttl},
        )
        assert response.status_code == 201, response.text

    with client(instance, "agent-a") as a, client(instance, "agent-b") as b:
        data = blocked(call(a, "charge", {"amount": 1}), "evidence_missing")
        assert sorted(data["missing_evidence"]) == ["customer_confirmed", "ticket_verified"]
        attest("agent-a", "ticket_verified")
        data = blocked(call(a, "charge", {"amount": 1}), "evidence_missing")
        assert data["missing_evidence"] == ["customer_confirmed"]
        attest("agent-a", "customer_confirmed", ttl=1)
        ok(call(a, "charge", {"amount": 1}))
        # Session A's evidence never satisfies session B.
        blocked(call(b, "charge", {"amount": 1}), "evidence_missing")
        assert wait_until(lambda: "error" in call(a, "charge", {"amount": 1}), timeout=5)
        data = blocked(call(a, "charge", {"amount": 1}), "evidence_expired")
        assert data["expired_evidence"] == ["customer_confirmed"]
    sdk.close()


def test_operators_see_a_sessions_evidence_and_completed_tools(start) -> None:
    instance = start({"sdk": {"enabled": True}, "policies": {"rules": [
        {"name": "grounded", "match": {"tool": "charge"}, "action": "allow", "evidence": {"requires": ["ticket_verified"]}},
    ]}}, env={"HELIO_SDK_TOKEN": SDK_TOKEN})
    with httpx.Client(base_url=instance.sdk_url, headers={"authorization": f"Bearer {SDK_TOKEN}"}) as sdk:
        attested = sdk.post("/evidence", json={"session_id": "ops-view", "tool_name": "lookup_ticket",
                                                "evidence_key": "ticket_verified", "evidence_data": {"ticket": 7}})
        assert attested.status_code == 201, attested.text
    with client(instance, "ops-view") as raw:
        ok(call(raw, "echo", {"text": "done"}))
    operator = httpx.Client(base_url=instance.dashboard_url, headers={"authorization": f"Bearer {instance.api_secret}"})
    assert httpx.get(instance.dashboard_url + "/api/evidence/ops-view").status_code == 401

    def seen() -> dict[str, Any]:
        return operator.get("/api/evidence/ops-view").json()["data"]

    assert wait_until(lambda: [t["tool_name"] for t in seen()["completed_tools"]] == ["echo"], timeout=5), seen()
    view = seen()
    assert view["session_id"] == "ops-view"
    assert view["evidence"]["ticket_verified"]["data"] == {"ticket": 7}
    assert view["completed_tools"][0]["succeeded"] is True
    assert operator.get("/api/evidence/nobody").json() == {
        "data": {"session_id": "nobody", "evidence": {}, "context": {}, "completed_tools": []}}
    assert operator.get("/api/evidence/" + "x" * 300).status_code == 400
    operator.close()


def test_evidence_marked_with_the_published_python_sdk_opens_the_gate(start, monkeypatch: pytest.MonkeyPatch) -> None:
    from helio import HelioClient

    instance = start(
        {
            "sdk": {"enabled": True},
            "policies": {
                "rules": [
                    {"name": "refund-needs-ticket", "match": {"tool": "charge"}, "action": "allow",
                     "evidence": {"requires": ["ticket_verified"]}},
                ]
            },
        },
        env={"HELIO_SDK_TOKEN": SDK_TOKEN},
    )
    monkeypatch.setenv("HELIO_SDK_TOKEN", SDK_TOKEN)
    run_id = f"run-{secrets.token_hex(4)}"
    with client(instance, run_id) as raw, HelioClient(proxy_url=instance.sdk_url, session_id=run_id) as sdk:
        blocked(call(raw, "charge", {"amount": 3}), "evidence_missing")
        sdk.mark_evidence("lookup_ticket", "ticket_verified", {"ticket": "T-9"})
        ok(call(raw, "charge", {"amount": 3}))
        state = sdk.get_session_state()
        assert "ticket_verified" in state.evidence
        assert [(t.tool_name, t.succeeded) for t in state.completed_tools] == [("charge", True)]


def test_a_benign_hot_reload_keeps_buckets_and_a_changed_limit_starts_fresh(start) -> None:
    limited = {"name": "two-echoes", "match": {"tool": "echo"}, "action": "rate_limit",
               "limits": {"max_calls": 2, "window": "1h", "key": "global"}}
    instance = start({"policies": {"rules": [limited]}})

    def rewrite(rules: list[dict[str, Any]], marker: str) -> None:
        config = dict(instance.config)
        config["policies"] = {"rules": rules}
        text = yaml.safe_dump(config, sort_keys=False) + f"# {marker}\n"
        tmp = instance.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(instance.config_path)
        reloads = instance.stderr.count("policy reloaded")
        assert wait_until(lambda: instance.stderr.count("policy reloaded") > reloads, 10), instance.stderr

    with client(instance, "r") as raw:
        ok(call(raw, "echo", {"text": "1"}))
        ok(call(raw, "echo", {"text": "2"}))
        blocked(call(raw, "echo", {"text": "3"}), "rate_limited")
        # Another rule added above it: the bucket is the same, still full.
        other = {"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"}
        rewrite([other, limited], "benign")
        blocked(call(raw, "echo", {"text": "4"}), "rate_limited")
        # The limit itself changed: a fresh bucket.
        rewrite([other, {**limited, "limits": {**limited["limits"], "max_calls": 3}}], "changed")
        ok(call(raw, "echo", {"text": "5"}))
