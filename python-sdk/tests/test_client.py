"""Every method and every way it can fail, for `HelioClient` and
`AsyncHelioClient` alike, against the real gateway."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import helio
from helio import HelioContext, HelioError

from conftest import Answering, Gateway, Silent, session


def test_evidence_and_context_round_trip(gateway: Gateway, token: str, make_client: Callable[..., Any]) -> None:
    sid = session()
    with make_client(gateway.sdk_url + "/", sid) as client:
        assert client.proxy_url == gateway.sdk_url  # the trailing slash is dropped
        assert client.session_id == sid
        before = time.time() * 1000
        client.mark_evidence("lookup_order", "orders.lookup", {"order": "ORD-1001"}, ttl=120)
        client.set_context("ticket", {"id": "T-9", "tags": ["vip"]})
        state = client.get_session_state()
    assert isinstance(state, helio.SessionState) and state.session_id == sid
    entry = state.evidence["orders.lookup"]
    assert isinstance(entry, helio.EvidenceEntry)
    assert (entry.evidence_key, entry.data, entry.tool_name) == ("orders.lookup", {"order": "ORD-1001"}, "lookup_order")
    assert before + 120_000 - 50 <= entry.expires_at <= time.time() * 1000 + 120_000 + 50
    assert state.context == {"ticket": {"id": "T-9", "tags": ["vip"]}}
    assert state.completed_tools == []
    with pytest.raises(Exception):
        entry.data = None  # type: ignore[misc]  # frozen


def test_an_unknown_session_is_empty_and_ids_are_sent_as_path_segments(
    gateway: Gateway, token: str, make_client: Callable[..., Any]
) -> None:
    with make_client(gateway.sdk_url, "odd id/with?chars") as client:
        state = client.get_session_state()
    assert state == helio.SessionState("odd id/with?chars")


def test_a_default_session_is_random_and_says_so(gateway: Gateway, token: str, make_client: Callable[..., Any]) -> None:
    with make_client(gateway.sdk_url) as a, make_client(gateway.sdk_url) as b:
        assert len(a.session_id) == 32 and a.session_id != b.session_id
        assert a.mcp_headers() == {"x-helio-session-id": a.session_id}


def test_a_key_no_rule_names_is_refused_with_the_allowed_ones(
    gateway: Gateway, token: str, make_client: Callable[..., Any]
) -> None:
    with make_client(gateway.sdk_url, session()) as client, pytest.raises(HelioError) as refused:
        client.mark_evidence("t", "not.a.key", {})
    message = str(refused.value)
    assert refused.value.status_code == 400
    assert message.startswith("POST /evidence failed: HTTP 400 (code=evidence_key_not_in_policy_allowlist")
    assert 'key="not.a.key"' in message and "allowed_keys=['filler.00', " in message
    assert "(showing 20 of 25)" in message


def test_a_wrong_or_missing_token_is_401(gateway: Gateway, make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("wrong", ""):  # empty: no Authorization header at all
        monkeypatch.setenv("HELIO_SDK_TOKEN", value)
        with make_client(gateway.sdk_url, session()) as client:
            with pytest.raises(HelioError) as refused:
                client.set_context("k", 1)
            assert (str(refused.value), refused.value.status_code) == ("POST /context failed: HTTP 401", 401)
            with pytest.raises(HelioError) as refused:
                client.get_session_state()
            assert refused.value.status_code == 401
            assert str(refused.value).startswith(f"GET /session/{client.session_id}/state failed: HTTP 401")


def test_a_body_over_a_mebibyte_is_413(gateway: Gateway, token: str, make_client: Callable[..., Any]) -> None:
    with make_client(gateway.sdk_url, session()) as client, pytest.raises(HelioError) as refused:
        client.mark_evidence("t", "orders.lookup", "x" * (1024 * 1024 + 10))
    assert refused.value.status_code == 413
    assert str(refused.value).startswith("POST /evidence failed: HTTP 413")


@pytest.mark.parametrize("data", [object(), math.nan, {"n": math.inf}, {1j: 2}])
def test_what_is_not_json_never_leaves(data: Any, gateway: Gateway, token: str, make_client: Callable[..., Any]) -> None:
    with make_client(gateway.sdk_url, session()) as client, pytest.raises(HelioError) as refused:
        client.mark_evidence("t", "orders.lookup", data)
    assert str(refused.value).startswith("Failed to serialize POST /evidence payload as JSON:")
    assert refused.value.status_code is None


def test_a_gateway_that_is_not_there(make_client: Callable[..., Any]) -> None:
    with make_client("http://127.0.0.1:9", session()) as client, pytest.raises(HelioError) as failed:
        client.mark_evidence("t", "k", {})
    assert (str(failed.value), failed.value.status_code) == ("Cannot connect to proxy at http://127.0.0.1:9", None)


def test_a_gateway_that_does_not_answer(silent: Silent, make_client: Callable[..., Any]) -> None:
    with make_client(silent.url, session(), timeout=0.3) as client:
        with pytest.raises(HelioError) as failed:
            client.set_context("k", "v")
        assert str(failed.value) == "Proxy request timed out: POST /context"
        with pytest.raises(HelioError) as failed:
            client.get_session_state()
        assert str(failed.value) == f"Proxy request timed out: GET /session/{client.session_id}/state"


def test_a_malformed_state_answer_is_an_error(make_client: Callable[..., Any]) -> None:
    """What a gateway never sends, from a stand-in server (the one place
    one is used): the SDK never hands back a half-read state."""
    answers = [b"[]", b'{"session_id": 7}', b'{"session_id": "s", "evidence": {"k": {"bogus": 1}}}', b"not json"]
    with Answering(answers) as server:
        for _ in answers:
            with make_client(server.url, "s") as client, pytest.raises(HelioError) as failed:
                client.get_session_state()
            assert str(failed.value) == "GET /session/s/state returned malformed response payload"
            assert failed.value.status_code == 200


def test_the_context_compares_what_it_requires(gateway: Gateway, token: str) -> None:
    with HelioContext(gateway.sdk_url, session_id=session()) as ctx:
        assert ctx.client.session_id == ctx.session_id
        ctx.require_evidence("orders.lookup")
        ctx.require_evidence(["filler.01", "orders.lookup"])
        report = ctx.get_evidence_state()
        assert (report.satisfied, report.missing) == ([], ["filler.01", "orders.lookup"])
        ctx.mark_evidence("lookup_order", "orders.lookup", {"ok": True})
        ctx.set("note", "checked")
        report = ctx.get_evidence_state()
    assert isinstance(report, helio.EvidenceStateReport)
    assert (report.satisfied, report.missing) == (["orders.lookup"], ["filler.01"])
    assert report.context == {"note": "checked"}


def test_the_mcp_headers_tie_an_agents_calls_to_the_sdk_session(gateway: Gateway, token: str) -> None:
    """The correlation contract end to end: a refund the policy allows only
    after evidence is refused without it, and goes through once the SDK
    reported it for the session whose header the MCP client sends."""
    with helio.HelioClient(gateway.sdk_url, session()) as sdk, httpx.Client(timeout=20) as mcp:
        headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            "mcp-protocol-version": "2025-06-18",
            **sdk.mcp_headers(),
        }

        def rpc(body: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, Any] | None:
            r = mcp.post(gateway.mcp_url, json=body, headers={**headers, **(extra or {})})
            assert r.status_code in (200, 202), r.text
            if r.status_code == 202:
                return None
            text = r.text
            if r.headers["content-type"].startswith("text/event-stream"):
                text = [line[6:] for line in text.splitlines() if line.startswith("data: ")][-1]
            return json.loads(text)

        init = mcp.post(gateway.mcp_url, headers=headers, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "sdk-test", "version": "1"}},
        })
        assert init.status_code == 200, init.text
        session_header = {"mcp-session-id": init.headers["mcp-session-id"]} if "mcp-session-id" in init.headers else {}
        rpc({"jsonrpc": "2.0", "method": "notifications/initialized"}, session_header)
        refund = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                  "params": {"name": "process_refund", "arguments": {"order_id": "ORD-1001", "amount": 5}}}
        refused = rpc(refund, session_header)
        assert refused and "error" in refused and "evidence" in json.dumps(refused["error"]).lower(), refused
        sdk.mark_evidence("lookup_order", "orders.lookup", {"order": "ORD-1001"})
        allowed = rpc({**refund, "id": 2}, session_header)
        assert allowed and "result" in allowed, allowed
