"""The audit trail's write side through the real binary: one record per
governed call (allowed, blocked, simulated, failed upstream, rejected at the
transport), secrets redacted, and nothing lost when Helio is stopped with
SIGTERM in the middle of a load.

Records are read straight from the SQLite database (audit.path) with Python's
sqlite3, as an operator's own tooling would.
"""

from __future__ import annotations

import json
import secrets
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from conftest import HelioLauncher, RawMcp, Upstream, wait_until


def rows(db: Path, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"SELECT * FROM audit_records WHERE {where} ORDER BY created_at", params)]


def call(raw: RawMcp, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    request_id = f"call-{secrets.token_hex(4)}"
    final = raw.call_tool(tool, arguments or {}, id=request_id).final(request_id)
    assert final is not None
    return final


def test_every_kind_of_call_gets_one_record(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    instance = helio(
        {
            "environment": "staging",
            "audit": {"path": str(db), "redact": ["$.card.number", "password", "**.token"]},
            "policies": {
                "rules": [
                    {"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"},
                    {"name": "rehearse", "match": {"tool": "add"}, "action": "dry_run"},
                ]
            },
        },
        upstream=upstream_sse,
    )
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url, headers={"x-helio-session-id": "audited"}) as raw:
        raw.initialize()
        call(raw, "echo", {"text": marker, "card": {"number": "4111111111111111"}, "password": "hunter2",
                           "hops": [{"auth": {"token": "tk-deep-secret-1"}}], "token": "tk-top-secret-2"})
        call(raw, "delete_record", {"id": marker})
        call(raw, "add", {"a": 1, "b": 2})
        call(raw, "fail")
        nameless = raw.request("tools/call", {"arguments": {"x": marker}}, id="nameless")
        assert nameless.final("nameless")["error"]["code"] == -32602
    origin = httpx.post(instance.mcp_url, json={}, headers={"origin": "https://evil.example"})
    assert origin.status_code == 403
    assert instance.terminate() == 0

    records = rows(db)
    by_tool = {r["tool_name"]: r for r in records}
    assert len(records) == 6, [r["tool_name"] for r in records]

    echo = by_tool["echo"]
    assert echo["policy_decision"] == "allow" and echo["block_reason"] is None
    assert echo["session_id"] == "audited" and echo["session_source"] == "header"
    assert echo["environment"] == "staging" and echo["origin"] == "mcp" and echo["record_kind"] == "tool_call"
    # The agent, as it introduced itself in `initialize` (clientInfo), for every call of its session.
    assert {r["agent_id"] for r in records if r["tool_name"] != "<origin_rejected>"} == {"helio-e2e-raw@0.0.1"}
    stored = json.loads(echo["tool_input"])
    assert stored["text"] == marker
    assert stored["card"]["number"] == "[REDACTED]" and stored["password"] == "[REDACTED]"
    assert "4111111111111111" not in json.dumps(records) and "hunter2" not in json.dumps(records)
    # `**` is any depth, none included.
    assert stored["hops"][0]["auth"]["token"] == "[REDACTED]" and stored["token"] == "[REDACTED]"
    assert "tk-deep-secret-1" not in json.dumps(records) and "tk-top-secret-2" not in json.dumps(records)
    assert marker in echo["upstream_response"] and echo["upstream_http_status"] == 200
    assert echo["total_duration_ms"] >= echo["upstream_latency_ms"] > 0
    assert json.loads(echo["plugins"]) == ["rules"]

    deny = by_tool["delete_record"]
    assert deny["policy_decision"] == "deny" and deny["block_reason"] == "policy_denied"
    assert deny["matched_rule"] == "no-deletes" and deny["matched_rule_index"] == 0
    assert deny["upstream_response"] is None
    chain = json.loads(deny["evidence_chain"])
    assert chain["blocked"]["reason"] == "policy_denied" and chain["blocked"]["rule"] == "no-deletes", chain

    dry = by_tool["add"]
    assert dry["policy_decision"] == "dry_run" and dry["dry_run"] == 1 and dry["upstream_response"] is None
    assert dry["matched_rule"] == "rehearse" and dry["matched_rule_index"] == 1
    report = json.loads(dry["evidence_chain"])["dry_run"]
    assert report["dry_run"] is True and report["would_forward"] is False and report["matched_rule"] == "rehearse"
    # Nothing was checked in governance state, so an allowed call has no chain.
    assert echo["evidence_chain"] is None

    failed = by_tool["fail"]
    assert failed["policy_decision"] == "allow"
    assert "deliberate failure" in failed["upstream_response"]

    assert by_tool["<nameless>"]["block_reason"] == "missing_tool_name"
    assert by_tool["<nameless>"]["session_id"] == "audited"
    assert marker in by_tool["<nameless>"]["tool_input"]
    assert by_tool["<origin_rejected>"]["block_reason"] == "origin_not_allowed"
    assert all(r["policy_decision"] == "rejected" for r in (by_tool["<nameless>"], by_tool["<origin_rejected>"]))


def test_records_say_what_was_checked_and_flag_unguarded_destructive_tools(
    helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "audit.db"
    instance = helio(
        {
            "audit": {"path": str(db)},
            "policies": {
                "flag_destructive": "log",
                "rules": [
                    {"name": "reads", "match": {"annotations": {"readOnlyHint": True}}, "action": "allow"},
                    {
                        "name": "paced-charges",
                        "match": {"tool": "charge"},
                        "action": "rate_limit",
                        "requires": ["add"],
                        "limits": {"max_calls": 5, "window": "1m", "key": "session"},
                    },
                ],
            },
            "budgets": [
                {
                    "name": "card-pot",
                    "limit": 100,
                    "currency": "USD",
                    "window": "1h",
                    "contributors": [{"match": {"tool": "charge"}, "field": "$.amount"}],
                }
            ],
        },
        upstream=upstream_sse,
    )
    with RawMcp(instance.mcp_url, headers={"x-helio-session-id": "checked"}) as raw:
        raw.initialize()
        assert "error" in call(raw, "charge", {"amount": 30})
        call(raw, "add", {"a": 1, "b": 2})
        assert "result" in call(raw, "charge", {"amount": 30})
        call(raw, "wipe_everything", {})  # never listed: destructive by the MCP default
        # A call's own `_meta` clientInfo names its agent, over the session's.
        meta = {"io.modelcontextprotocol/clientInfo": {"name": "sub-agent", "version": "2"}}
        raw.request("tools/call", {"name": "echo", "arguments": {"text": "x"}, "_meta": meta}, id="meta").final("meta")
    assert instance.terminate() == 0

    first, second = rows(db, "tool_name = 'charge'")
    blocked = json.loads(first["evidence_chain"])
    assert blocked["blocked"]["reason"] == "dependency_missing", blocked
    assert blocked["dependencies"] == {"completed": [], "failed": [], "missing": ["add"]}, blocked

    allowed = json.loads(second["evidence_chain"])
    assert second["policy_decision"] == "rate_limit" and second["matched_rule"] == "paced-charges"
    assert "blocked" not in allowed
    assert allowed["dependencies"]["completed"] == ["add"], allowed
    (rate,) = allowed["rate_limits"]
    assert rate["rule"] == "paced-charges" and rate["bucket"] == "session:checked", rate
    assert (rate["allowed"], rate["current"], rate["limit"], rate["window_ms"]) == (True, 1, 5, 60_000), rate
    (pot,) = allowed["budgets"]
    assert pot["name"] == "card-pot" and (pot["amount"], pot["spent"], pot["limit"]) == (30, 30, 100), pot

    (sub_agent,) = rows(db, "tool_name = 'echo'")
    assert sub_agent["agent_id"] == "sub-agent@2" and first["agent_id"] == "helio-e2e-raw@0.0.1"

    (unguarded,) = rows(db, "tool_name = 'wipe_everything'")
    assert unguarded["flagged_destructive"] == 1 and unguarded["matched_rule"] is None
    (read,) = rows(db, "tool_name = 'add'")
    assert read["flagged_destructive"] == 0 and read["matched_rule"] == "reads"
    assert all(r["flagged_destructive"] == 0 for r in (first, second))


def test_an_unreachable_upstream_is_recorded(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    # Pointed at a closed port: the call fails at the transport.
    dead = helio({"audit": {"path": str(db)}, "upstream": {"url": "http://127.0.0.1:9/mcp"}}, upstream=upstream_sse)
    reply = httpx.post(
        dead.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}},
        headers={"accept": "application/json, text/event-stream"},
    )
    assert reply.json()["error"]["data"]["failure_reason"] == "unreachable"
    assert dead.terminate() == 0
    (record,) = rows(db)
    assert record["tool_name"] == "echo" and "unreachable" in record["upstream_error"]
    assert record["upstream_response"] is None


def test_sigterm_under_load_loses_no_record(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    instance = helio({"audit": {"path": str(db), "include_responses": False}}, upstream=upstream_sse)
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n: int) -> None:
        with RawMcp(instance.mcp_url, timeout=10) as raw:
            raw.initialize()
            i = 0
            while not stop.is_set() and i < 2000:
                marker = f"w{n}-{i}"
                i += 1
                try:
                    final = call(raw, "echo", {"text": marker})
                except Exception:
                    return  # the server went away mid-request: no answer, no claim
                if "result" in final:
                    with lock:
                        answered.append(marker)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(answered) >= 3000, timeout=90), len(answered)
    instance.proc.send_signal(signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join()
    assert instance.proc.wait(timeout=20) == 0
    instance.expected_exit = None

    recorded = {json.loads(r["tool_input"])["text"] for r in rows(db, "tool_name = 'echo'")}
    missing = [m for m in answered if m not in recorded]
    assert not missing, f"{len(missing)} answered calls have no record, e.g. {missing[:5]}"
    summary = json.loads(rows(db, "tool_name = 'echo'")[0]["upstream_response"])
    assert summary["success"] is True and summary["content_types"] == ["text"]


def test_records_of_real_calls_are_served_by_the_operator_api(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    import csv
    import io

    db = tmp_path / "audit.db"
    instance = helio(
        {
            "audit": {"path": str(db)},
            # A rule name a spreadsheet would run as a formula.
            "policies": {"rules": [{"name": "=SUM(A1)", "match": {"tool": "delete_record"}, "action": "deny"}]},
        },
        upstream=upstream_sse,
    )
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url, headers={"x-helio-session-id": "api"}) as raw:
        raw.initialize()
        call(raw, "echo", {"text": marker})
        call(raw, "delete_record", {"id": "row-1"})
    api = httpx.Client(base_url=instance.dashboard_url, headers={"authorization": f"Bearer {instance.api_secret}"})

    def listed() -> dict[str, Any]:
        return api.get("/api/audit", params={"session": "api"}).json()

    # Records are written within milliseconds, behind the request path.
    assert wait_until(lambda: listed()["total"] == 2, timeout=5), listed()
    page = api.get("/api/audit", params={"decision": "deny"}).json()
    (denied,) = page["data"]
    assert denied["block_reason"] == "policy_denied" and denied["matched_rule"] == "=SUM(A1)"
    one = api.get(f"/api/audit/{denied['id']}").json()["data"]
    assert one["tool_input"] == {"id": "row-1"}

    exported = api.get("/api/audit/export", params={"format": "csv"})
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["tool_name"] for r in table] == ["echo", "delete_record"]
    assert marker in table[0]["upstream_response"]
    assert table[1]["matched_rule"] == "'=SUM(A1)", "formula-looking cells are neutralised"
    assert httpx.get(instance.dashboard_url + "/api/audit").status_code == 401
    api.close()


def test_live_events_and_limits(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    instance = helio(
        {
            "audit": {"path": str(tmp_path / "audit.db")},
            "dashboard": {"sse_heartbeat_interval": "1s"},
            "policies": {
                "rules": [
                    {"name": "echo-rate", "match": {"tool": "echo"}, "action": "rate_limit",
                     "limits": {"max_calls": 5, "window": "1m", "key": "session"}},
                ]
            },
        },
        upstream=upstream_sse,
    )
    auth = {"authorization": f"Bearer {instance.api_secret}"}
    assert httpx.get(instance.dashboard_url + "/api/events").status_code == 401
    assert httpx.get(instance.dashboard_url + "/api/limits").status_code == 401

    events: list[tuple[str, str]] = []
    ids: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", instance.dashboard_url + "/api/events", headers=auth, timeout=15) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in response.iter_lines():
                if line.startswith("id: "):
                    ids.append(line[len("id: "):])
                elif line.startswith("event: "):
                    kind = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append((kind, line[len("data: "):]))
                    # A heartbeat comes at once: the client is subscribed.
                    connected.set()
                    if kind == "action" or len(events) > 20:
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    assert connected.wait(10)
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url, headers={"x-helio-session-id": "live"}) as raw:
        raw.initialize()
        # Heartbeats arrive while nothing happens.
        assert wait_until(lambda: any(k == "heartbeat" for k, _ in events), timeout=5), events
        call(raw, "echo", {"text": marker})
        call(raw, "echo", {"text": "again"})
    listener.join(timeout=15)
    assert events[0][0] == "heartbeat", events
    actions = [json.loads(data) for kind, data in events if kind == "action"]
    assert actions and actions[0]["tool_name"] == "echo", events
    assert actions[0]["policy_decision"] == "rate_limit" and actions[0]["session_id"] == "live"
    # A summary: the arguments stay in the audit trail, behind /api/audit/:id.
    assert "tool_input" not in actions[0] and marker not in json.dumps(actions[0])
    record = httpx.get(f"{instance.dashboard_url}/api/audit/{actions[0]['id']}", headers=auth).json()["data"]
    assert record["tool_input"] == {"text": marker}
    # Heartbeats carry no id; every other frame a unique one.
    assert len(ids) == len([k for k, _ in events if k != "heartbeat"]) and len(set(ids)) == len(ids)

    limits = httpx.get(instance.dashboard_url + "/api/limits", headers=auth).json()
    (rate,) = limits["rate_limits"]
    assert rate["key"] == "session:live:rule:echo-rate"
    assert (rate["current"], rate["limit"], rate["window_ms"]) == (2, 5, 60_000)
    assert rate["rule"] == "echo-rate" and rate["bucket"] == "session:live"
    assert rate["reset_at_ms"] > time.time() * 1000
    assert limits["spend_limits"] == []
