"""Human approvals on the dashboard channel: a call a rule sends for approval is
held open on its request, a ticket appears in the operator API bound to exactly
that call, and the call goes on (approve, break-glass) or is blocked (deny,
timeout) — driven by the official MCP SDK client and by raw JSON-RPC."""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

import httpx
import pytest

from conftest import (
    HelioInstance,
    HelioLauncher,
    RawMcp,
    Upstream,
    call_tool_outcome,
    jsonrpc_body_matches,
    mcp_session,
    wait_until,
)

HOLD_DELETES = {
    "rules": [
        {"name": "approve-deletes", "match": {"tool": "delete_record"}, "action": "require_approval"},
    ]
}


def start(helio: HelioLauncher, upstream: Upstream, **approval: Any) -> HelioInstance:
    overrides: dict[str, Any] = {"policies": HOLD_DELETES}
    if approval:
        overrides["approval"] = approval
    return helio(overrides, upstream=upstream)


def api(instance: HelioInstance) -> httpx.Client:
    return httpx.Client(
        base_url=instance.dashboard_url,
        headers={"authorization": f"Bearer {instance.api_secret}"},
        timeout=10,
    )


def reached(upstream: Upstream, marker: str) -> bool:
    return bool(
        upstream.find(
            lambda r: jsonrpc_body_matches(r, "tools/call", name="delete_record") and marker in str(r.get("body"))
        )
    )


def pending_ticket(client: httpx.Client, marker: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def appeared() -> bool:
        page = client.get("/api/approvals", params={"status": "pending"}).json()
        for ticket in page["data"]:
            if ticket["tool_input"].get("id") == marker:
                found.update(ticket)
                return True
        return False

    assert wait_until(appeared, timeout=15), "no pending ticket appeared"
    return found


def call_in_background(instance: HelioInstance, marker: str) -> tuple[threading.Thread, dict[str, Any]]:
    return tool_in_background(instance, "delete_record", {"id": marker})


def tool_in_background(
    instance: HelioInstance, tool: str, arguments: dict[str, Any]
) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with RawMcp(instance.mcp_url) as raw:
                raw.initialize()
                reply = raw.call_tool(tool, arguments, id="held")
                outcome["final"] = reply.final("held")
        except Exception as exc:  # Helio killed under the call: no answer
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def hold(instance: HelioInstance) -> tuple[str, threading.Thread, dict[str, Any]]:
    """A call that a rule holds, made in the background: its marker, thread, outcome."""
    marker = secrets.token_hex(4)
    thread, outcome = call_in_background(instance, marker)
    return marker, thread, outcome


def audit_record(client: httpx.Client, ticket_id: str) -> dict[str, Any]:
    record: dict[str, Any] = {}

    def written() -> bool:
        response = client.get(f"/api/audit/{ticket_id}")
        if response.status_code == 200:
            record.update(response.json()["data"] if "data" in response.json() else response.json())
            return True
        return False

    assert wait_until(written, timeout=10), "the held call's record was not written"
    return record


@pytest.mark.anyio
async def test_an_sdk_clients_held_call_goes_on_once_an_operator_approves(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    instance = start(helio, upstream_sse)
    marker = secrets.token_hex(4)
    import anyio

    async with mcp_session(instance.mcp_url) as (session, events):
        async with anyio.create_task_group() as group:
            outcome: dict[str, Any] = {}

            async def held_call() -> None:
                outcome.update(await call_tool_outcome(session, "delete_record", {"id": marker}, events))

            group.start_soon(held_call)
            with api(instance) as client:
                ticket = await anyio.to_thread.run_sync(pending_ticket, client, marker)
                # Held, not forwarded, until a human decides.
                assert not reached(upstream_sse, marker)
                assert ticket["matched_rule"] == "approve-deletes"
                assert ticket["channel_name"] == "dashboard"
                assert len(ticket["arguments_digest"]) == 64
                assert len(ticket["policy_version"]) == 64
                one = client.get(f"/api/approvals/{ticket['id']}")
                assert one.status_code == 200 and one.json()["data"]["status"] == "pending"
                # The waiting client hears about it (the SDK sent a progressToken).
                assert await anyio.to_thread.run_sync(
                    lambda: wait_until(lambda: bool(events.of("progress")), timeout=10)
                ), events.kinds()
                waiting = events.of("progress")[0].data
                assert ticket["id"] in waiting["message"]
                approved = client.post(f"/api/approvals/{ticket['id']}/approve", json={"approved_by": "alice"})
                assert approved.status_code == 200 and approved.json() == {"ok": True}
    assert "result" in outcome, outcome
    assert reached(upstream_sse, marker)
    with api(instance) as client:
        ticket = client.get(f"/api/approvals/{ticket['id']}").json()["data"]
        assert ticket["status"] == "approved"
        assert ticket["resolved_by"] == "alice"
        assert ticket["resolved_via"] == "api_secret"
        again = client.post(f"/api/approvals/{ticket['id']}/deny", json={"denied_by": "bob"})
        assert again.status_code == 409
        assert again.json() == {"error": "Ticket already resolved", "status": "approved"}
        record = audit_record(client, ticket["id"])
        assert record["approval_status"] == "approved"
        assert record["approved_by"] == "alice"
        assert record["approval_wait_ms"] > 0
        # The ticket's lifecycle, from the audit trail alone.
        lifecycle = record["evidence_chain"]["approval"]
        assert lifecycle["ticket_id"] == ticket["id"]
        assert lifecycle["status"] == "approved"
        assert lifecycle["channel"] == "dashboard"
        assert lifecycle["resolved_by"] == "alice" and lifecycle["resolved_via"] == "api_secret"
        assert lifecycle["requested_at"] <= lifecycle["resolved_at"]
        assert lifecycle["arguments_digest"] == ticket["arguments_digest"]


def test_a_denied_call_is_blocked_with_the_operators_reason_and_never_forwarded(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    instance = start(helio, upstream_sse)
    marker, thread, outcome = hold(instance)
    with api(instance) as client:
        ticket = pending_ticket(client, marker)
        # Validation in the original's shapes.
        assert client.post(f"/api/approvals/{ticket['id']}/deny", content=b"{nope").json() == {"error": "Invalid JSON"}
        missing = client.post(f"/api/approvals/{ticket['id']}/deny", json={}).json()
        assert missing["error"] == "Validation error"
        assert missing["details"][0]["path"] == ["denied_by"]
        glass = client.post(f"/api/approvals/{ticket['id']}/break-glass", json={"approved_by": "x", "reason": " "})
        assert glass.status_code == 400
        assert client.post("/api/approvals/nope/approve", json={"approved_by": "x"}).status_code == 404
        denied = client.post(
            f"/api/approvals/{ticket['id']}/deny", json={"denied_by": "bob", "reason": "wrong customer"}
        )
        assert denied.status_code == 200
        thread.join(timeout=15)
        error = outcome["final"]["error"]
        assert error["data"]["reason"] == "approval_denied"
        assert "wrong customer" in error["message"]
        assert not reached(upstream_sse, marker)
        record = audit_record(client, ticket["id"])
        assert record["approval_status"] == "denied"
        assert record["block_reason"] == "approval_denied"
        assert record["evidence_chain"]["approval"]["denial_reason"] == "wrong customer"


def test_break_glass_forwards_and_is_recorded_as_such(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = start(helio, upstream_sse)
    marker, thread, outcome = hold(instance)
    with api(instance) as client:
        ticket = pending_ticket(client, marker)
        forced = client.post(
            f"/api/approvals/{ticket['id']}/break-glass",
            json={"approved_by": "oncall", "reason": "incident 42"},
        )
        assert forced.status_code == 200
        thread.join(timeout=15)
        assert "result" in outcome["final"], outcome
        assert reached(upstream_sse, marker)
        stored = client.get(f"/api/approvals/{ticket['id']}").json()["data"]
        assert stored["status"] == "break_glass"
        assert stored["break_glass_reason"] == "incident 42"
        record = audit_record(client, ticket["id"])
        assert record["approval_status"] == "break_glass"
        assert record["evidence_chain"]["break_glass"]["reason"] == "incident 42"


@pytest.mark.parametrize("on_timeout", ["deny", "allow"])
def test_nobody_deciding_in_time_follows_default_on_timeout(
    helio: HelioLauncher, upstream_sse: Upstream, on_timeout: str
) -> None:
    instance = start(helio, upstream_sse, timeout="1s", default_on_timeout=on_timeout)
    marker, thread, outcome = hold(instance)
    thread.join(timeout=15)
    final = outcome["final"]
    with api(instance) as client:
        page = client.get("/api/approvals", params={"status": "timeout"}).json()
        assert page["total"] == 1
        ticket = page["data"][0]
        late = client.post(f"/api/approvals/{ticket['id']}/approve", json={"approved_by": "late"})
        assert late.status_code == 409
    if on_timeout == "deny":
        assert final["error"]["data"]["reason"] == "approval_timeout"
        assert not reached(upstream_sse, marker)
    else:
        assert "result" in final, final
        assert reached(upstream_sse, marker)


def test_a_held_call_ends_shutdown_cancelled_when_helio_stops(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    instance = start(helio, upstream_sse)
    marker, thread, outcome = hold(instance)
    with api(instance) as client:
        pending_ticket(client, marker)
    assert instance.terminate() == 0
    thread.join(timeout=15)
    assert outcome["final"]["error"]["data"]["reason"] == "shutdown_cancelled"
    assert not reached(upstream_sse, marker)


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_tickets_survive_a_restart_and_a_pending_one_comes_back_cancelled(
    helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Any, stop: str
) -> None:
    import signal
    import time

    overrides = {"policies": HOLD_DELETES, "audit": {"path": str(tmp_path / "helio.db")}}
    first = helio(overrides, upstream=upstream_sse)
    resolved, pending = secrets.token_hex(4), secrets.token_hex(4)
    thread, _ = call_in_background(first, resolved)
    with api(first) as client:
        done = pending_ticket(client, resolved)
        assert client.post(f"/api/approvals/{done['id']}/deny", json={"denied_by": "bob"}).status_code == 200
        thread.join(timeout=15)
        thread, _ = call_in_background(first, pending)
        held = pending_ticket(client, pending)
    if stop == "sigterm":
        assert first.terminate() == 0
    else:
        time.sleep(0.5)  # the ticket is written behind the call path, within milliseconds
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=15)
        first.expected_exit = None
    thread.join(timeout=15)

    second = helio(overrides, upstream=upstream_sse)
    with api(second) as client:
        page = client.get("/api/approvals").json()
        by_id = {t["id"]: t for t in page["data"]}
        assert by_id[done["id"]]["status"] == "denied"
        assert by_id[done["id"]]["resolved_by"] == "bob"
        assert by_id[held["id"]]["status"] == "shutdown_cancelled"
        assert by_id[held["id"]]["arguments_digest"] == held["arguments_digest"]
        late = client.post(f"/api/approvals/{held['id']}/approve", json={"approved_by": "alice"})
        assert late.status_code == 409
    assert not reached(upstream_sse, pending)


class WebhookReceiver:
    """A real HTTP server standing in for an approval webhook receiver: it
    records each delivery and answers with the statuses it is given in turn
    (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        import http.server
        import json as json_module

        self.deliveries: list[dict[str, Any]] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver.deliveries.append(
                    {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                     "json": json_module.loads(body)}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"receiver says no" if status >= 400 else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def webhook_config(url: str, secret: str | None) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "webhook", "name": "ops-hook", "url": url}
    if secret:
        channel["secret"] = secret
    return {
        "policies": {
            "rules": [
                {"name": "approve-deletes", "match": {"tool": "delete_record"}, "action": "require_approval",
                 "approval": {"channel": "ops-hook"}},
            ]
        },
        "approval": {"channels": [channel]},
    }


def test_a_webhook_receiver_gets_a_signed_ticket_retried_until_it_answers_and_resolves_it(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    import hashlib
    import hmac as hmac_module
    import time

    receiver = WebhookReceiver([503])  # the first attempt fails, the retry lands
    secret = secrets.token_hex(16)
    try:
        instance = helio(webhook_config(receiver.url, secret), upstream=upstream_sse)
        marker, thread, outcome = hold(instance)
        assert wait_until(lambda: len(receiver.deliveries) >= 2, timeout=15), receiver.deliveries
        first, second = receiver.deliveries[0], receiver.deliveries[1]
        # The same delivery, byte for byte, on every attempt.
        assert first["body"] == second["body"]
        assert first["headers"]["x-helio-delivery"] == second["headers"]["x-helio-delivery"]
        payload = second["json"]
        assert payload["event"] == "approval_requested"
        assert payload["delivery_id"] == second["headers"]["x-helio-delivery"]
        ticket = payload["ticket"]
        assert ticket["tool_input"] == {"id": marker}
        assert ticket["channel_name"] == "ops-hook"
        # The receiver's checks: the signature over the raw body (the
        # original's header), and a timestamp inside the replay window.
        expected = "sha256=" + hmac_module.new(secret.encode(), second["body"], hashlib.sha256).hexdigest()
        assert hmac_module.compare_digest(second["headers"]["x-helio-signature"], expected)
        assert abs(time.time() - int(second["headers"]["x-helio-timestamp"])) < 300
        forged = "sha256=" + hmac_module.new(b"wrong", second["body"], hashlib.sha256).hexdigest()
        assert not hmac_module.compare_digest(second["headers"]["x-helio-signature"], forged)
        assert not reached(upstream_sse, marker)
        # The receiver resolves through the operator API.
        with api(instance) as client:
            assert wait_until(
                lambda: client.get(f"/api/approvals/{ticket['id']}").json()["data"]["notifications"], timeout=10
            )
            stored = client.get(f"/api/approvals/{ticket['id']}").json()["data"]
            assert stored["notifications"][0]["attempts"] == 2
            assert stored["notification_failures"] == []
            approved = client.post(f"/api/approvals/{ticket['id']}/approve", json={"approved_by": "hook-bot"})
            assert approved.status_code == 200
        thread.join(timeout=15)
        assert "result" in outcome["final"], outcome
        assert reached(upstream_sse, marker)
        # The receiver also learns how the ticket ended.
        assert wait_until(lambda: len(receiver.deliveries) >= 3, timeout=10), receiver.deliveries
        resolved = receiver.deliveries[2]["json"]
        assert resolved["event"] == "approval_resolved"
        assert resolved["ticket"]["status"] == "approved" and resolved["ticket"]["resolved_by"] == "hook-bot"
    finally:
        receiver.close()


def test_a_webhook_that_keeps_failing_is_recorded_on_the_ticket_and_in_the_live_feed(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    receiver = WebhookReceiver([500] * 10)
    try:
        instance = helio(webhook_config(receiver.url, None), upstream=upstream_sse)
        events: list[str] = []

        def listen() -> None:
            with httpx.stream(
                "GET", f"{instance.dashboard_url}/api/events",
                headers={"authorization": f"Bearer {instance.api_secret}"}, timeout=60,
            ) as stream:
                for line in stream.iter_lines():
                    events.append(line)
                    if "approval_notification_failed" in line:
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        marker, thread, outcome = hold(instance)
        with api(instance) as client:
            ticket = pending_ticket(client, marker)
            # Five attempts over about fifteen seconds, then the failure.
            assert wait_until(
                lambda: client.get(f"/api/approvals/{ticket['id']}").json()["data"]["notification_failures"],
                timeout=40,
            )
            failure = client.get(f"/api/approvals/{ticket['id']}").json()["data"]["notification_failures"][0]
            assert failure["channel"] == "ops-hook"
            assert "HTTP 500" in failure["error"] and "5 attempts" in failure["error"]
            assert len(receiver.deliveries) == 5
            assert "x-helio-signature" not in receiver.deliveries[0]["headers"]  # no secret, no signature
            listener.join(timeout=10)
            assert any("approval_notification_failed" in line for line in events), events
            # The dashboard still resolves it.
            client.post(f"/api/approvals/{ticket['id']}/deny", json={"denied_by": "ops"})
        thread.join(timeout=15)
        assert outcome["final"]["error"]["data"]["reason"] == "approval_denied"
    finally:
        receiver.close()


def test_a_ticket_nobody_decides_on_escalates_to_its_delegates(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    primary, oncall = WebhookReceiver([]), WebhookReceiver([])
    try:
        config = {
            "policies": {
                "rules": [
                    {"name": "approve-deletes", "match": {"tool": "delete_record"}, "action": "require_approval",
                     "approval": {"channel": "ops-hook", "timeout": "60s", "escalation_after": "1s",
                                  "delegates": ["oncall-hook"]}},
                ]
            },
            "approval": {"channels": [
                {"type": "webhook", "name": "ops-hook", "url": primary.url},
                {"type": "webhook", "name": "oncall-hook", "url": oncall.url},
            ]},
        }
        instance = helio(config, upstream=upstream_sse)
        marker, thread, outcome = hold(instance)
        assert wait_until(lambda: len(oncall.deliveries) == 1, timeout=15), oncall.deliveries
        assert [d["json"]["event"] for d in primary.deliveries] == ["approval_requested"]
        escalated = oncall.deliveries[0]["json"]
        assert escalated["event"] == "approval_escalated"
        ticket_id = escalated["ticket"]["id"]
        assert escalated["ticket"]["escalated_to"] == ["oncall-hook"]
        with api(instance) as client:
            ticket = client.get(f"/api/approvals/{ticket_id}").json()["data"]
            assert ticket["escalated_at"] and ticket["escalated_to"] == ["oncall-hook"]
            assert ticket["timeout_ms"] == 60_000  # the rule's own timeout
            client.post(f"/api/approvals/{ticket_id}/approve", json={"approved_by": "oncall"})
            thread.join(timeout=15)
            assert "result" in outcome["final"], outcome
            record = audit_record(client, ticket_id)
            lifecycle = record["evidence_chain"]["approval"]
            assert lifecycle["escalated_to"] == ["oncall-hook"]
            phases = sorted((n["channel"], n["phase"]) for n in lifecycle["notifications"])
            assert phases == [("oncall-hook", "escalation"), ("ops-hook", "initial")]
        # Both the primary channel and the delegate learn how it ended.
        for receiver in (primary, oncall):
            assert wait_until(
                lambda r=receiver: r.deliveries[-1]["json"]["event"] == "approval_resolved", timeout=10
            ), receiver.deliveries
    finally:
        primary.close()
        oncall.close()


@pytest.mark.anyio
async def test_a_2026_07_28_client_waits_for_the_approval_and_gets_its_result(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    import anyio
    from mcp import Client

    instance = start(helio, upstream_sse)
    marker = secrets.token_hex(4)
    async with Client(instance.mcp_url) as client:
        assert client.protocol_version == "2026-07-28"
        outcome: dict[str, Any] = {}

        async def held_call() -> None:
            outcome["result"] = await client.call_tool("delete_record", {"id": marker})

        async with anyio.create_task_group() as group:
            group.start_soon(held_call)
            with api(instance) as operator:
                ticket = await anyio.to_thread.run_sync(pending_ticket, operator, marker)
                assert not reached(upstream_sse, marker)
                operator.post(f"/api/approvals/{ticket['id']}/approve", json={"approved_by": "alice"})
        result = outcome["result"]
        assert not result.is_error, result
    assert reached(upstream_sse, marker)


def test_the_approval_routes_refuse_hostile_requests(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = start(helio, upstream_sse)
    marker, thread, outcome = hold(instance)
    with api(instance) as client:
        ticket = pending_ticket(client, marker)
        approve = f"/api/approvals/{ticket['id']}/approve"
        # No credential, a wrong one: nothing is resolved.
        assert httpx.post(instance.dashboard_url + approve, json={"approved_by": "x"}).status_code == 401
        wrong = {"authorization": "Bearer " + "0" * 64}
        assert httpx.post(instance.dashboard_url + approve, json={"approved_by": "x"}, headers=wrong).status_code == 401
        # Bodies that are not what the route reads.
        assert client.post(approve, content=b"[]").json() == {"error": "Invalid JSON"}
        assert client.post(approve, content=b"\xff\xfe").json() == {"error": "Invalid JSON"}
        assert client.post(approve, json={"approved_by": 7}).json()["details"][0]["message"] == "Expected a string"
        too_big = client.post(approve, content=b'{"approved_by":"' + b"a" * (3 << 20) + b'"}')
        assert too_big.status_code in (400, 413)
        # Refused before the body was read: the client is told not to reuse
        # the connection (its unread rest would be read as the next request).
        assert too_big.headers.get("connection") == "close"
        # Ids that name nothing.
        for bad in ("..%2F..%2Fetc", "x" * 4000, "%00"):
            assert client.post(f"/api/approvals/{bad}/approve", json={"approved_by": "x"}).status_code == 404
        # Approvals are not reachable from the MCP port.
        assert httpx.post(f"{instance.base_url}{approve}", json={"approved_by": "x"}).status_code == 404
        # Still pending after all that.
        assert client.get(f"/api/approvals/{ticket['id']}").json()["data"]["status"] == "pending"
        client.post(f"/api/approvals/{ticket['id']}/deny", json={"denied_by": "ops"})
    thread.join(timeout=15)
    assert not reached(upstream_sse, marker)


class FakeSlack:
    """A real HTTP server standing in for Slack's Web API side of the wire:
    records chat.postMessage / chat.update calls (method, token, JSON body)
    and answers like Slack does."""

    def __init__(self) -> None:
        import http.server
        import json as json_module

        self.calls: list[dict[str, Any]] = []
        # Web API methods answered as refused (`ok: false`).
        self.refuse: set[str] = set()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                method = self.path.rsplit("/", 1)[-1]
                fake.calls.append({"method": method, "auth": self.headers.get("authorization"),
                                   "json": json_module.loads(body)})
                answer: dict[str, Any] = {"ok": True, "channel": "C0APPROVALS", "ts": f"1700000000.{len(fake.calls):06d}"}
                if method in fake.refuse:
                    answer = {"ok": False, "error": "expired_trigger_id"}
                payload = json_module.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] == method]

    def close(self) -> None:
        self.server.shutdown()


def slack_callback(
    instance: HelioInstance, secret: str, action_id: str, user: str, *, timestamp: int | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POSTs a block_actions callback to /slack/actions as Slack does: the
    JSON payload form-encoded, signed v0 over timestamp and raw body."""
    import hashlib
    import hmac as hmac_module
    import json as json_module
    import time
    import urllib.parse

    payload = {
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0APPROVALS"},
        "trigger_id": "1.2.3",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "action_ts": "1700000001.0"}],
    }
    return slack_post(instance, secret, payload, timestamp=timestamp, signature=signature)


def deny_reason_submission(ticket_id: str, reason: str, user: str) -> dict[str, Any]:
    """The view_submission Slack sends when the deny dialog is submitted."""
    return {
        "type": "view_submission",
        "team": {"id": "T0TEAM", "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "trigger_id": "4.5.6",
        "view": {
            "id": "V0DIALOG", "team_id": "T0TEAM", "type": "modal", "hash": "1700000002.abc",
            "title": {"type": "plain_text", "text": "Deny this call"}, "blocks": [],
            "private_metadata": ticket_id, "callback_id": "helio_deny_reason",
            "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}},
        },
    }


def slack_post(
    instance: HelioInstance, secret: str, payload: dict[str, Any], *, timestamp: int | None = None,
    signature: str | None = None,
) -> httpx.Response:
    import hashlib
    import hmac as hmac_module
    import json as json_module
    import time
    import urllib.parse

    body = urllib.parse.urlencode({"payload": json_module.dumps(payload)}).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    mac = hmac_module.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature or f"v0={mac}",
    }
    return httpx.post(f"{instance.base_url}/slack/actions", content=body, headers=headers, timeout=10)


def test_a_slack_approver_resolves_a_ticket_from_the_message(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    import time

    slack = FakeSlack()
    secret = secrets.token_hex(16)
    try:
        config = {
            "policies": {
                "rules": [
                    {"name": "approve-deletes", "match": {"tool": "delete_record"}, "action": "require_approval",
                     "approval": {"channel": "finance"}},
                ]
            },
            "approval": {"channels": [
                {"type": "slack", "name": "finance", "bot_token": "xoxb-test-token", "signing_secret": secret,
                 "channel": "#approvals", "approvers": ["U0ALLOWED"], "api_url": slack.api_url},
            ]},
        }
        instance = helio(config, upstream=upstream_sse)
        marker = f"<!channel> *{secrets.token_hex(4)}*"
        thread, outcome = call_in_background(instance, marker)
        assert wait_until(lambda: len(slack.of("chat.postMessage")) == 1, timeout=15), slack.calls
        posted = slack.of("chat.postMessage")[0]
        assert posted["auth"] == "Bearer xoxb-test-token"
        message = posted["json"]
        assert message["channel"] == "#approvals"
        rendered = json.dumps(message["blocks"])
        assert "<!channel>" not in rendered  # the caller's text cannot mention or format
        buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
        approve = next(b["action_id"] for b in buttons if b["action_id"].startswith("helio_approve:"))
        ticket_id = approve.split(":", 1)[1]
        # Forged, stale and unsigned callbacks are refused the same way.
        assert slack_callback(instance, "wrong-secret", approve, "U0ALLOWED").status_code == 401
        stale = slack_callback(instance, secret, approve, "U0ALLOWED", timestamp=int(time.time()) - 600)
        assert stale.status_code == 401 and stale.json() == {"error": "Unauthorized"}
        assert slack_callback(instance, secret, approve, "U0ALLOWED", signature="v0=" + "0" * 64).status_code == 401
        # Oversized: refused unread. Signed but malformed, or not a button of
        # ours: acknowledged (so Slack does not retry) and ignored.
        huge = httpx.post(
            f"{instance.base_url}/slack/actions", content=b"payload=" + b"x" * (300 << 10),
            headers={"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=00"}, timeout=10,
        )
        assert huge.status_code == 401
        assert slack_callback(instance, secret, "helio_approve:no-such-ticket", "U0ALLOWED").status_code == 200
        assert slack_callback(instance, secret, "something_else", "U0ALLOWED").status_code == 200
        # Someone not on the approver list: acknowledged, ignored.
        assert slack_callback(instance, secret, approve, "U0INTRUDER").status_code == 200
        with api(instance) as client:
            assert client.get(f"/api/approvals/{ticket_id}").json()["data"]["status"] == "pending"
            assert not reached(upstream_sse, marker)
            assert client.get(f"/api/audit/{ticket_id}").status_code == 404  # nothing recorded as decided
            # The approver presses Approve.
            assert slack_callback(instance, secret, approve, "U0ALLOWED").status_code == 200
            thread.join(timeout=15)
            assert "result" in outcome["final"], outcome
            assert reached(upstream_sse, marker)
            ticket = client.get(f"/api/approvals/{ticket_id}").json()["data"]
            assert ticket["status"] == "approved"
            assert ticket["resolved_by"] == "u0allowed" and ticket["resolved_via"] == "slack:U0ALLOWED"
            # A replayed press changes nothing.
            assert slack_callback(instance, secret, approve, "U0ALLOWED").status_code == 200
            assert client.get(f"/api/approvals/{ticket_id}").json()["data"]["status"] == "approved"
        # The message is updated with the outcome, in place.
        assert wait_until(lambda: len(slack.of("chat.update")) == 1, timeout=10), slack.calls
        update = slack.of("chat.update")[0]["json"]
        assert update["ts"] == "1700000000.000001" and update["channel"] == "C0APPROVALS"
        assert "Approved by u0allowed" in update["text"]
        assert "actions" not in json.dumps(update["blocks"])
    finally:
        slack.close()


def test_a_slack_denier_is_asked_why_and_the_agent_is_told(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    slack = FakeSlack()
    secret = secrets.token_hex(16)
    try:
        config = {
            "policies": {"rules": [{"name": "approve-deletes", "match": {"tool": "delete_record"},
                                    "action": "require_approval", "approval": {"channel": "finance"}}]},
            "approval": {"channels": [
                {"type": "slack", "name": "finance", "bot_token": "xoxb-test-token", "signing_secret": secret,
                 "channel": "#approvals", "approvers": ["U0ALLOWED"], "api_url": slack.api_url},
            ]},
        }
        instance = helio(config, upstream=upstream_sse)
        marker, thread, outcome = hold(instance)
        assert wait_until(lambda: len(slack.of("chat.postMessage")) == 1, timeout=15), slack.calls
        message = slack.of("chat.postMessage")[0]["json"]
        buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
        deny = next(b["action_id"] for b in buttons if b["action_id"].startswith("helio_deny:"))
        ticket_id = deny.split(":", 1)[1]
        # Deny opens a dialog asking why (with the press's trigger_id).
        assert slack_callback(instance, secret, deny, "U0ALLOWED").status_code == 200
        assert wait_until(lambda: len(slack.of("views.open")) == 1, timeout=10), slack.calls
        dialog = slack.of("views.open")[0]
        assert dialog["auth"] == "Bearer xoxb-test-token" and dialog["json"]["trigger_id"] == "1.2.3"
        view = dialog["json"]["view"]
        assert view["type"] == "modal" and view["callback_id"] == "helio_deny_reason"
        assert view["private_metadata"] == ticket_id
        with api(instance) as client:
            assert client.get(f"/api/approvals/{ticket_id}").json()["data"]["status"] == "pending"
            # A submission by someone not on the list keeps the dialog open, decides nothing.
            refused = slack_post(instance, secret, deny_reason_submission(ticket_id, "no", "U0INTRUDER"))
            assert refused.json()["response_action"] == "errors"
            # Unsigned: refused like any callback.
            assert slack_post(instance, "wrong", deny_reason_submission(ticket_id, "no", "U0ALLOWED")).status_code == 401
            submitted = slack_post(instance, secret, deny_reason_submission(ticket_id, "vendor not approved", "U0ALLOWED"))
            assert submitted.status_code == 200 and submitted.content == b""  # closes the dialog
            thread.join(timeout=15)
            data = outcome["final"]["error"]["data"]
            assert data["reason"] == "approval_denied" and data["suggestion"] == "vendor not approved"
            ticket = client.get(f"/api/approvals/{ticket_id}").json()["data"]
            assert ticket["status"] == "denied" and ticket["denial_reason"] == "vendor not approved"
            assert ticket["resolved_via"] == "slack:U0ALLOWED"
            # Submitted again: already resolved, said in the dialog.
            again = slack_post(instance, secret, deny_reason_submission(ticket_id, "x", "U0ALLOWED"))
            assert "already resolved" in again.json()["errors"]["reason"]
        assert not reached(upstream_sse, marker)
        assert wait_until(lambda: len(slack.of("chat.update")) == 1, timeout=10), slack.calls
        assert "Denied by u0allowed: vendor not approved" in slack.of("chat.update")[0]["json"]["text"]

        # When Slack will not open the dialog, the press denies at once.
        slack.refuse.add("views.open")
        marker, thread, outcome = hold(instance)
        assert wait_until(lambda: len(slack.of("chat.postMessage")) == 2, timeout=15), slack.calls
        message = slack.of("chat.postMessage")[1]["json"]
        buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
        deny = next(b["action_id"] for b in buttons if b["action_id"].startswith("helio_deny:"))
        assert slack_callback(instance, secret, deny, "U0ALLOWED").status_code == 200
        thread.join(timeout=15)
        assert outcome["final"]["error"]["data"]["reason"] == "approval_denied"
        assert not reached(upstream_sse, marker)
    finally:
        slack.close()


def test_slack_actions_is_not_served_without_a_slack_channel(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = start(helio, upstream_sse)
    assert httpx.post(f"{instance.base_url}/slack/actions", content=b"payload=%7B%7D").status_code == 404


def test_a_reload_may_not_route_approvals_to_a_channel_the_running_helio_lacks(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    import copy

    import yaml

    receiver = WebhookReceiver([])
    try:
        instance = helio(webhook_config(receiver.url, None), upstream=upstream_sse)

        def rewrite(config: dict[str, Any]) -> None:
            tmp = instance.config_path.with_suffix(".tmp")
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))
            tmp.replace(instance.config_path)

        # Routes to a channel only the new file has: refused whole, with its path.
        routed = copy.deepcopy(instance.config)
        routed["approval"]["channels"].append({"type": "webhook", "name": "new-hook", "url": receiver.url})
        routed["policies"]["rules"][0]["approval"] = {"channel": "new-hook"}
        rewrite(routed)
        assert wait_until(lambda: "policies.rules[0].approval.channel" in instance.stderr, timeout=10), instance.stderr
        assert "config reload failed" in instance.stderr
        # The running policy still routes to the channel it had.
        marker = secrets.token_hex(4)
        thread, _ = call_in_background(instance, marker)
        assert wait_until(lambda: len(receiver.deliveries) == 1, timeout=10)
        assert receiver.deliveries[0]["json"]["ticket"]["channel_name"] == "ops-hook"
        with api(instance) as client:
            client.post(f"/api/approvals/{receiver.deliveries[0]['json']['ticket']['id']}/deny", json={"denied_by": "x"})
        thread.join(timeout=15)

        # A changed approval section alone: the rules reload, the section waits for a restart.
        timed = copy.deepcopy(instance.config)
        timed["approval"]["timeout"] = "1s"
        timed["policies"]["rules"].append({"name": "deny-adds", "match": {"tool": "add"}, "action": "deny"})
        rewrite(timed)
        assert wait_until(lambda: "restart required" in instance.stderr, timeout=10), instance.stderr
        warning = next(line for line in instance.stderr.splitlines() if "restart required" in line)
        assert "sections=approval" in warning, warning
        with RawMcp(instance.mcp_url) as raw:
            raw.initialize()
            final = raw.call_tool("add", {"a": 1, "b": 2}, id="after-reload").final("after-reload")
            assert final["error"]["data"]["rule"] == "deny-adds", final
    finally:
        receiver.close()


# A pot of 50 that asks finance past its limit; charges over 100 also need a
# rule's approval (the action), asked first.
BUDGET_TICKETS = {
    "policies": {
        "rules": [
            {
                "name": "approve-big-charges",
                "match": {"tool": "charge", "input": {"amount": {"gt": 100}}},
                "action": "require_approval",
            }
        ]
    },
    "budgets": [
        {
            "name": "refunds",
            "limit": 50,
            "currency": "USD",
            "window": "1d",
            "on_exceed": "require_approval",
            "approval": {"channel": "dashboard", "timeout": "30s"},
            "contributors": [{"match": {"tool": "charge"}, "field": "$.amount"}],
        }
    ],
}


def charge_tickets(client: httpx.Client, amount: float) -> list[dict[str, Any]]:
    page = client.get("/api/approvals", params={"status": "pending"}).json()
    return [t for t in page["data"] if t["tool_name"] == "charge" and t["tool_input"].get("amount") == amount]


def wait_for_ticket(client: httpx.Client, amount: float, *, budget: bool) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def appeared() -> bool:
        found[:] = [t for t in charge_tickets(client, amount) if ("breached_budgets" in t) == budget]
        return bool(found)

    assert wait_until(appeared, timeout=15), f"no pending {'budget' if budget else 'rule'} ticket"
    return found[0]


def refunds_spent(client: httpx.Client) -> float:
    limits = client.get("/api/limits").json()
    (pot,) = [b for b in limits["budgets"] if b["name"] == "refunds"]
    return float(pot["spent"])


def test_a_budget_ticket_lists_the_breach_and_charges_the_approved_overage(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    instance = helio(BUDGET_TICKETS, upstream=upstream_sse)
    with api(instance) as client, RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert "result" in raw.call_tool("charge", {"amount": 30}, id=1).final(1)

        # Past the pot's limit: held for the money, the breach on the ticket.
        thread, outcome = tool_in_background(instance, "charge", {"amount": 40})
        ticket = wait_for_ticket(client, 40, budget=True)
        (breach,) = ticket["breached_budgets"]
        assert breach == {
            "name": "refunds", "limit": 50, "spent": 30, "attempted_amount": 40,
            "currency": "USD", "window": "1d",
        }
        assert ticket["timeout_ms"] == 30_000 and ticket["matched_rule"] is None
        assert client.post(f"/api/approvals/{ticket['id']}/approve", json={"approved_by": "finance"}).json() == {"ok": True}
        thread.join(timeout=15)
        assert "result" in outcome["final"], outcome
        # Charged beyond the limit, as approved.
        assert refunds_spent(client) == 70
        record = audit_record(client, ticket["id"])
        chain = record["evidence_chain"]
        assert record["approval_status"] == "approved" and record["approved_by"] == "finance"
        assert chain["budget_approval"]["status"] == "approved"
        assert chain["budget_approval"]["approved_overage"] == [
            {"name": "refunds", "amount": 40, "currency": "USD", "kind": "approved_overage"}
        ]

        # Over the limit now: every charge asks. Denied: blocked, not retryable.
        thread, outcome = tool_in_background(instance, "charge", {"amount": 4.321})
        ticket = wait_for_ticket(client, 4.321, budget=True)
        client.post(f"/api/approvals/{ticket['id']}/deny", json={"denied_by": "finance", "reason": "month closed"})
        thread.join(timeout=15)
        data = outcome["final"]["error"]["data"]
        assert data["reason"] == "budget_exceeded" and data["retry_allowed"] is False
        assert data["denied_by"] == "finance" and data["denial_reason"] == "month closed"
        assert data["budgets"][0]["name"] == "refunds"
        assert refunds_spent(client) == 70
    assert upstream_calls(upstream_sse, 4.321) == 0


def upstream_calls(upstream: Upstream, amount: float) -> int:
    return len(upstream.find(lambda r: jsonrpc_body_matches(r, "tools/call", name="charge") and f'"amount":{amount}' in json.dumps(r.get("body"), separators=(",", ":"))))


def test_a_rule_and_a_budget_ask_one_after_the_other(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(BUDGET_TICKETS, upstream=upstream_sse)
    with api(instance) as client:
        thread, outcome = tool_in_background(instance, "charge", {"amount": 120})
        # The action first: a rule's ticket, no budgets on it.
        rule_ticket = wait_for_ticket(client, 120, budget=False)
        assert rule_ticket["matched_rule"] == "approve-big-charges"
        client.post(f"/api/approvals/{rule_ticket['id']}/approve", json={"approved_by": "ops"})
        # Then the money, on its own ticket bound to the same call.
        budget_ticket = wait_for_ticket(client, 120, budget=True)
        assert budget_ticket["id"] != rule_ticket["id"]
        assert budget_ticket["call_id"] == rule_ticket["id"]
        assert budget_ticket["arguments_digest"] == rule_ticket["arguments_digest"]
        assert not upstream_calls(upstream_sse, 120), "forwarded before the money was approved"
        # Break-glass on the money: forwarded, recorded as such.
        glass = client.post(
            f"/api/approvals/{budget_ticket['id']}/break-glass",
            json={"approved_by": "cfo", "reason": "customer escalation"},
        )
        assert glass.json() == {"ok": True}
        thread.join(timeout=15)
        assert "result" in outcome["final"], outcome
        assert upstream_calls(upstream_sse, 120) == 1
        record = audit_record(client, rule_ticket["id"])
        # The columns keep the rule's decision; the money's is beside it.
        assert record["approval_status"] == "approved" and record["approved_by"] == "ops"
        chain = record["evidence_chain"]
        assert chain["approval"]["status"] == "approved"
        assert chain["budget_approval"]["status"] == "break_glass"
        assert chain["break_glass"] == {"reason": "customer escalation", "invoked_by": "cfo", "credential": "api_secret"}
        assert refunds_spent(client) == 120
