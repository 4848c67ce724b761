"""`helio demo`: the README's "run it" command, driven by the official SDK client."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import anyio
import httpx
import pytest

from conftest import call_tool_outcome, mcp_session, port_accepts, wait_until


def run_demo(helio_bin: Path, tmp_path: Path, *args: str):
    if port_accepts("127.0.0.1", 3000) or port_accepts("127.0.0.1", 3100):
        pytest.skip("ports 3000/3100 are in use; the demo binds the documented defaults")
    stderr = tmp_path / "demo.stderr"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([str(helio_bin), "demo", *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    try:
        assert wait_until(lambda: "Press Ctrl-C" in stderr.read_text() or proc.poll() is not None, 15)
        assert proc.poll() is None, stderr.read_text()
        yield proc, stderr
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, stderr.read_text()


@pytest.fixture
def demo(helio_bin: Path, tmp_path: Path):
    yield from run_demo(helio_bin, tmp_path)


@pytest.mark.anyio
async def test_demo_over_stdio_spawns_the_demo_server_and_stops_it(helio_bin: Path, tmp_path: Path) -> None:
    running = run_demo(helio_bin, tmp_path, "--transport", "stdio")
    try:
        proc, stderr = next(running)
        banner = stderr.read_text()
        assert "(stdio)" in banner and "child process over stdio" in banner, banner
        # The child is spawned in the background: its log line may follow the banner.
        pid_line = r"stdio upstream started: .* pid=(\d+)"
        assert wait_until(lambda: re.search(pid_line, stderr.read_text()) is not None, 15), stderr.read_text()
        child = re.search(pid_line, stderr.read_text())
        assert child
        async with mcp_session("http://127.0.0.1:3000/mcp") as (session, _events):
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert "lookup_order" in names
            order = json.loads((await session.call_tool("lookup_order", {"order_id": "ORD-1002"})).content[0].text)
            assert order["customer"] == "Grace Hopper"
            denied = await call_tool_outcome(session, "delete_record", {"record_id": "1"})
            assert denied["error"]["code"] == -32001, denied
        # SIGINT: the demo stops (exit 0, checked by run_demo), and with it the server it spawned.
        assert next(running, None) is None
    finally:
        running.close()  # stops the demo however the test went
    pid = int(child.group(1))
    assert wait_until(lambda: not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", 10)


@pytest.mark.anyio
async def test_demo_serves_the_shop_through_helio(demo) -> None:
    proc, stderr = demo
    banner = stderr.read_text()
    assert "http://127.0.0.1:3000/mcp" in banner
    assert "Dashboard:     http://127.0.0.1:3100/" in banner

    async with mcp_session("http://127.0.0.1:3000/mcp") as (session, _events):
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert {"lookup_order", "search_docs", "process_refund", "create_payment", "delete_record"} <= set(tools)
        assert tools["delete_record"].annotations.destructive_hint is True
        assert tools["lookup_order"].annotations.read_only_hint is True

        result = await session.call_tool("lookup_order", {"order_id": "ORD-1002"})
        order = json.loads(result.content[0].text)
        assert order["customer"] == "Grace Hopper"

        refund = await session.call_tool("process_refund", {"order_id": "ORD-1002", "amount": 10, "reason": "late"})
        assert json.loads(refund.content[0].text)["status"] == "issued"
        after = json.loads((await session.call_tool("lookup_order", {"order_id": "ORD-1002"})).content[0].text)
        assert after["refunded"] == 10

    # A fresh session has not looked anything up: the refund waits for that.
    async with mcp_session("http://127.0.0.1:3000/mcp") as (session, _events):
        refund = await call_tool_outcome(session, "process_refund", {"order_id": "ORD-1002", "amount": 5})
        assert refund["error"]["code"] == -32001, refund
        assert "Look the order up" in refund["error"]["message"]

    health = httpx.get("http://127.0.0.1:3100/api/health").json()
    assert health["status"] == "ok"

    # The operator API takes this run's secret, printed in the banner.
    banner = stderr.read_text()
    assert "http://127.0.0.1:3100/api/audit" in banner
    secret = re.search(r"export HELIO_SECRET=([0-9a-f]{64})", banner).group(1)
    operator = {"authorization": f"Bearer {secret}"}
    assert httpx.get("http://127.0.0.1:3100/api/audit").status_code == 401

    # A refund over 100 waits for an operator, who approves it.
    async with mcp_session("http://127.0.0.1:3000/mcp") as (session, events):
        await session.call_tool("lookup_order", {"order_id": "ORD-1003"})
        outcome: dict = {}
        async with anyio.create_task_group() as group:
            async def big_refund() -> None:
                outcome.update(await call_tool_outcome(
                    session, "process_refund", {"order_id": "ORD-1003", "amount": 150, "reason": "damaged"}, events
                ))

            group.start_soon(big_refund)

            def pending() -> list[dict]:
                return httpx.get(
                    "http://127.0.0.1:3100/api/approvals", params={"status": "pending"}, headers=operator
                ).json()["data"]

            assert await anyio.to_thread.run_sync(lambda: wait_until(lambda: bool(pending()), 10))
            ticket = pending()[0]
            assert ticket["matched_rule"] == "large-refunds"
            approved = httpx.post(
                f"http://127.0.0.1:3100/api/approvals/{ticket['id']}/approve",
                json={"approved_by": "demo-operator"}, headers=operator,
            )
            assert approved.status_code == 200
    assert json.loads(outcome["result"]["content"][0]["text"])["status"] == "issued", outcome

    def audit() -> list[dict]:
        return httpx.get("http://127.0.0.1:3100/api/audit", params={"limit": 50}, headers=operator).json()["data"]

    assert wait_until(lambda: len(audit()) >= 4, 5), audit()
    records = audit()
    refunds = [r for r in records if r["tool_name"] == "process_refund"]
    assert {bool(r["block_reason"]) for r in refunds} == {True, False}, refunds
    held = next(r for r in refunds if r["approval_status"])
    assert held["approval_status"] == "approved" and held["approved_by"] == "demo-operator"
    blocked = next(r for r in refunds if r["block_reason"])
    assert blocked["block_reason"] == "dependency_missing"
    assert blocked["evidence_chain"]["dependencies"]["missing"] == ["lookup_order"]
    issued = next(r for r in refunds if not r["block_reason"] and not r["approval_status"])
    assert issued["evidence_chain"]["budgets"][0]["name"] == "daily-refunds"
    assert all(r["environment"] == "demo" for r in records)


def test_demo_removes_its_audit_database_when_it_stops(demo) -> None:
    proc, _stderr = demo
    scratch = Path(tempfile.gettempdir()) / f"helio-demo-{proc.pid}"
    assert (scratch / "audit.db").is_file()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0
    assert not scratch.exists()


def test_demo_drive_fills_the_dashboard_within_seconds(helio_bin: Path, tmp_path: Path) -> None:
    """`helio demo --drive`: a scripted agent makes calls, so the feed, a held
    refund and the daily budget are there to see at once."""
    running = run_demo(helio_bin, tmp_path, "--drive")
    try:
        proc, stderr = next(running)
        banner = stderr.read_text()
        assert "scripted agent" in banner, banner
        secret = re.search(r"export HELIO_SECRET=([0-9a-f]{64})", banner).group(1)
        api = httpx.Client(base_url="http://127.0.0.1:3100", headers={"authorization": f"Bearer {secret}"}, timeout=10)

        def held() -> list[dict]:
            return api.get("/api/approvals", params={"status": "pending"}).json()["data"]

        assert wait_until(lambda: bool(held()), timeout=30), api.get("/api/audit").json()
        (ticket,) = held()
        assert ticket["tool_name"] == "process_refund" and ticket["tool_input"]["amount"] == 150
        records = api.get("/api/audit", params={"session": "demo-agent"}).json()["data"]
        decisions = {r["tool_name"]: r["policy_decision"] for r in records}
        assert decisions["delete_record"] == "deny" and decisions["create_payment"] == "dry_run", decisions
        (daily,) = api.get("/api/budgets").json()["budgets"]
        # 40 + 10 refunded, and the held 150 reserved while it waits.
        assert daily["name"] == "daily-refunds" and daily["buckets"][0]["spent"] == 200
        # The operator approves; the agent's call completes.
        assert api.post(f"/api/approvals/{ticket['id']}/approve", json={"approved_by": "test"}).json() == {"ok": True}

        def refunded() -> bool:
            return any(r["tool_name"] == "process_refund" and r["approval_status"] == "approved"
                       for r in api.get("/api/audit", params={"session": "demo-agent"}).json()["data"])

        assert wait_until(refunded, timeout=10)
        api.close()
        assert next(running, None) is None
    finally:
        running.close()
