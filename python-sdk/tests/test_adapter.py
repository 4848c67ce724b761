"""`helio.adapter` against the real gateway's adapter API, sync and async."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from helio import HelioError
from helio.adapter import AdapterClient, AsyncAdapterClient, Evaluation

from conftest import ADAPTER_TOKEN, API_SECRET, Blocking, Gateway, session


class BlockingAdapter(Blocking):
    kind = AsyncAdapterClient


@pytest.fixture(params=["sync", "async"])
def adapter(request: pytest.FixtureRequest, gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HELIO_ADAPTER_TOKEN", ADAPTER_TOKEN)
    make: Callable[..., Any] = AdapterClient if request.param == "sync" else BlockingAdapter
    client = make(gateway.sdk_url, "sdk-tests", adapter_version="0.1", agent_id="tester")
    yield client
    client.close()


def test_evaluate_then_report_and_a_retry_changes_nothing(adapter: Any) -> None:
    evaluation = adapter.evaluate("lookup_order", {"order_id": "ORD-1001"}, session_id=session(),
                                  annotations={"readOnlyHint": True}, metadata={"channel": "c1"})
    assert isinstance(evaluation, Evaluation) and evaluation.allowed
    first = adapter.report(evaluation, "success", result={"found": True}, duration_ms=3.5)
    assert first.audit_record_id == evaluation.evaluation_id and not first.already_finalized
    again = adapter.report(evaluation.evaluation_id, "success", result={"found": True}, duration_ms=3.5)
    assert again.already_finalized
    with pytest.raises(HelioError) as conflict:
        adapter.report(evaluation, "error", error="late")
    assert conflict.value.status_code == 409
    assert "evaluation_conflict" in str(conflict.value)


def test_a_blocked_call_carries_feedback_for_the_model(adapter: Any) -> None:
    denied = adapter.evaluate("delete_record", {"record_type": "order", "record_id": "1"})
    assert not denied.allowed and denied.decision == "deny"
    assert denied.matched_rule == "no-deletes"
    assert denied.feedback_text() == "Deleting is disabled. Archive the record instead."
    assert adapter.report(denied, "not_executed").finalized_by_evaluate


def test_limits_are_reserved_until_reported(adapter: Any) -> None:
    # `two-searches` allows two an hour across every caller; other tests
    # (and the other client kind) may have used some.
    taken = []
    while True:
        evaluation = adapter.evaluate("search_docs", {"query": "x"})
        if not evaluation.allowed:
            break
        taken.append(evaluation)
    assert evaluation.decision == "rate_limited" and evaluation.feedback["retry_allowed"] is True
    if taken:
        adapter.report(taken[0], "not_executed")
        assert adapter.evaluate("search_docs", {"query": "x"}).allowed
    for evaluation in taken[1:]:
        adapter.report(evaluation, "success")


def test_errors_name_what_went_wrong(adapter: Any, monkeypatch: pytest.MonkeyPatch, gateway: Gateway) -> None:
    with pytest.raises(HelioError) as unknown:
        adapter.report("no-such-evaluation", "success")
    assert unknown.value.status_code == 404
    assert str(unknown.value).startswith("POST /audit failed: HTTP 404 (evaluation_unknown:")
    with pytest.raises(HelioError) as bad:
        adapter.report("x", "finished")
    assert bad.value.status_code is None and "status must be" in str(bad.value)
    with pytest.raises(HelioError) as not_json:
        adapter.evaluate("lookup_order", {"n": float("nan")})
    assert "Failed to serialize POST /evaluate payload as JSON" in str(not_json.value)
    monkeypatch.setenv("HELIO_ADAPTER_TOKEN", "wrong")
    with AdapterClient(gateway.sdk_url) as wrong, pytest.raises(HelioError) as refused:
        wrong.evaluate("lookup_order")
    assert (str(refused.value), refused.value.status_code) == ("POST /evaluate failed: HTTP 401", 401)
    with AdapterClient("http://127.0.0.1:9") as nowhere, pytest.raises(HelioError) as down:
        nowhere.evaluate("lookup_order")
    assert str(down.value) == "Cannot connect to proxy at http://127.0.0.1:9"


def test_install_scans(adapter: Any) -> None:
    assert adapter.install_scan({"name": "requests", "version": "2.32"}).allowed
    banned = adapter.install_scan({"name": "left-pad", "source": "npm"})
    assert not banned.allowed and banned.reason == "install_denied" and banned.matched_rule == "no-pads"
    assert banned.feedback_text().startswith("Installing left-pad is not allowed")


def test_a_held_call_waits_for_the_operator(adapter: Any, gateway: Gateway) -> None:
    held = adapter.evaluate("wire_money", {"amount": 5})
    assert held.held and not held.allowed
    assert held.approval is not None and held.approval["channel"] == "dashboard"
    # Not decided within the wait: still held.
    assert adapter.wait_for_decision(held, timeout=0.2).held
    assert adapter.status(held).status == "awaiting_approval"
    approve = threading.Timer(0.3, lambda: httpx.post(
        f"{gateway.dashboard_url}/api/approvals/{held.approval['id']}/approve", json={"approved_by": "ops"},
        headers={"authorization": f"Bearer {API_SECRET}"}, timeout=5))
    approve.start()
    decided = adapter.wait_for_decision(held, timeout=10)
    approve.join()
    assert decided.allowed and decided.status == "awaiting_report"
    assert adapter.report(decided, "success", result={"sent": True}).audit_record_id == held.evaluation_id


def test_a_framework_decides_its_own_tickets(adapter: Any) -> None:
    held = adapter.evaluate("wire_money", {"amount": 6})
    adapter.resolve_approval(held, "denied", resolved_by="user", reason="too much")
    decided = adapter.wait_for_decision(held.evaluation_id, timeout=10)
    assert not decided.allowed and decided.reason == "approval_denied"
    assert "too much" in decided.feedback_text()
    assert adapter.report(decided, "not_executed").finalized_by_evaluate
    with pytest.raises(HelioError, match="already_resolved"):
        adapter.resolve_approval(held.approval["id"], "approved", resolved_by="user")
    with pytest.raises(HelioError, match="resolved_by"):
        adapter.resolve_approval(held, "approved")
    with pytest.raises(HelioError, match="resolution must be"):
        adapter.resolve_approval(held, "maybe")
    with pytest.raises(HelioError, match="not held"):
        adapter.resolve_approval(adapter.evaluate("lookup_order", {"order_id": "x"}), "approved", resolved_by="u")


def test_a_report_says_what_a_call_really_cost(adapter: Any, gateway: Gateway) -> None:
    evaluation = adapter.evaluate("buy_item", {"price": 40})
    assert evaluation.allowed
    adapter.report(evaluation, "success", actual_amount=12.5)
    # The ledger is read from the audit trail, which is written behind the call.
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        ledger = httpx.get(f"{gateway.dashboard_url}/api/budgets/purchases/events?limit=1000",
                           headers={"authorization": f"Bearer {API_SECRET}"}, timeout=5).json()["data"]
        rows = [r for r in ledger if r["audit_record_id"] == evaluation.evaluation_id]
        if rows:
            break
        time.sleep(0.05)
    (row,) = rows
    assert row["amount"] == 12.5
    lookup = adapter.evaluate("lookup_order", {"order_id": "ORD-1"})
    with pytest.raises(HelioError, match="no_spend_rule"):
        adapter.report(lookup, "success", actual_amount=1)
    adapter.report(lookup, "success")


def test_a_tool_definition_that_changes_is_blocked(adapter: Any) -> None:
    name = f"lookup_{type(adapter).__name__.lower()}"
    definition = {"description": "Looks an order up", "input_schema": {"type": "object"}}
    first = adapter.evaluate(name, {"order_id": "x"}, definition=definition,
                             annotations={"readOnlyHint": True, "destructiveHint": False})
    assert first.allowed and first.tool_drift is None
    adapter.report(first, "not_executed")
    changed = adapter.evaluate(name, {"order_id": "x"}, definition={**definition, "description": "Deletes it"},
                               annotations={"readOnlyHint": True, "destructiveHint": False})
    assert changed.reason == "tool_definition_drift" and changed.tool_drift["aspects"] == ["description"]
