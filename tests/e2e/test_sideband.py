"""The SDK sideband (`sdk.enabled`): POST /evidence, POST /context and
GET /session/{id}/state over raw HTTP, and the Python SDK against it: ours
(`python-sdk/`, imported as `helio`), used exactly as code written for the
original Helio's `helio-client` uses it (these tests were written against
`helio-client` 0.16 and run unchanged).

One Helio per module serves the read-mostly tests (each uses its own session
ids); the hot-reload test starts its own, since it rewrites the config.
"""

from __future__ import annotations

import calendar
import copy
import re
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import HelioInstance, HelioLauncher, Upstream, wait_until

import helio as helio_sdk
from helio import HelioClient, HelioContext, HelioError

TOKEN = secrets.token_hex(32)
AUTH = {"authorization": f"Bearer {TOKEN}"}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

# 25 filler keys so the allowlist preview (at most 20) is truncated.
FILLER_KEYS = [f"filler.{i:02d}" for i in range(23)]
POLICIES: dict[str, Any] = {
    "rules": [
        {
            "name": "refunds-need-ticket",
            "match": {"tool": "process_refund"},
            "action": "allow",
            "evidence": {"requires": ["ticket_verified"]},
        },
        {
            "name": "orders-need-lookup",
            "match": {"tool": "cancel_order"},
            "action": "allow",
            "evidence": {"requires": ["orders.lookup"]},
        },
        {
            "name": "filler",
            "match": {"tool": "filler_tool"},
            "action": "allow",
            "evidence": {"requires": FILLER_KEYS},
        },
    ]
}
ALL_KEYS = sorted(["ticket_verified", "orders.lookup", *FILLER_KEYS])


def sid() -> str:
    return f"e2e-{secrets.token_hex(6)}"


@pytest.fixture(scope="module")
def sideband(module_helio: HelioLauncher, upstream_sse: Upstream) -> HelioInstance:
    return module_helio(
        {"sdk": {"enabled": True}, "policies": POLICIES},
        upstream=upstream_sse,
        env={"HELIO_SDK_TOKEN": TOKEN},
    )


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads HELIO_SDK_TOKEN once, when a client is built."""
    monkeypatch.setenv("HELIO_SDK_TOKEN", TOKEN)


def post(instance: HelioInstance, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{instance.sdk_url}{path}", json=body, headers=AUTH if headers is None else headers, timeout=5)


def state(instance: HelioInstance, session: str) -> dict[str, Any]:
    r = httpx.get(f"{instance.sdk_url}/session/{session}/state", headers=AUTH, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def evidence(session: str, key: str = "ticket_verified", **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "tool_name": "lookup_ticket",
        "evidence_key": key,
        "evidence_data": {"ticket": "T-1"},
        **extra,
    }


# ------------------------------------------------------------------ raw HTTP


def test_evidence_201_and_state_shape(sideband: HelioInstance) -> None:
    session = sid()
    before = time.time() * 1000
    r = post(sideband, "/evidence", evidence(session, ttl_seconds=120))
    assert r.status_code == 201, r.text
    assert r.json() == {"ok": True}
    after = time.time() * 1000

    body = state(sideband, session)
    assert set(body) == {"session_id", "evidence", "context", "completed_tools"}
    assert body["session_id"] == session
    entry = body["evidence"]["ticket_verified"]
    assert set(entry) == {"evidence_key", "data", "tool_name", "timestamp", "expires_at"}
    assert entry["evidence_key"] == "ticket_verified"
    assert entry["data"] == {"ticket": "T-1"}
    assert entry["tool_name"] == "lookup_ticket"
    assert ISO_UTC.match(entry["timestamp"]), entry["timestamp"]
    assert isinstance(entry["expires_at"], int)
    assert before + 120_000 - 5 <= entry["expires_at"] <= after + 120_000 + 5
    assert body["context"] == {} and body["completed_tools"] == []


def test_evidence_defaults_and_trimmed_session(sideband: HelioInstance) -> None:
    session = sid()
    r = post(sideband, "/evidence", {**evidence(f"  {session}\t"), "evidence_data": None})
    assert r.status_code == 201, r.text
    entry = state(sideband, session)["evidence"]["ticket_verified"]
    assert entry["data"] is None
    # Default TTL: 300 s from the recorded time.
    recorded = calendar.timegm(time.strptime(entry["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(entry["expires_at"] / 1000 - (recorded + 300)) < 2


def test_unknown_session_has_empty_state(sideband: HelioInstance) -> None:
    session = sid()
    assert state(sideband, session) == {"session_id": session, "evidence": {}, "context": {}, "completed_tools": []}


VALIDATION_CASES = [
    ({"tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1}, "session_id", "session_id is required"),
    ({"session_id": 7, "tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1}, "session_id", "must be a string"),
    ({"session_id": "   ", "tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1}, "session_id", "non-empty"),
    ({"session_id": "x" * 257, "tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1}, "session_id", "at most 256"),
    ({"session_id": "s", "evidence_key": "ticket_verified", "evidence_data": 1}, "tool_name", "tool_name is required"),
    ({"session_id": "s", "tool_name": "", "evidence_key": "ticket_verified", "evidence_data": 1}, "tool_name", "non-empty"),
    ({"session_id": "s", "tool_name": ["t"], "evidence_key": "ticket_verified", "evidence_data": 1}, "tool_name", "must be a string"),
    ({"session_id": "s", "tool_name": "t", "evidence_data": 1}, "evidence_key", "evidence_key is required"),
    ({"session_id": "s", "tool_name": "t", "evidence_key": None, "evidence_data": 1}, "evidence_key", "must be a string"),
    ({"session_id": "s", "tool_name": "t", "evidence_key": "ticket_verified"}, "evidence_data", "evidence_data is required"),
    ({"session_id": "s", "tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1, "ttl_seconds": 0}, "ttl_seconds", "positive integer"),
    ({"session_id": "s", "tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1, "ttl_seconds": -3}, "ttl_seconds", "positive integer"),
    ({"session_id": "s", "tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1, "ttl_seconds": 1.5}, "ttl_seconds", "positive integer"),
    ({"session_id": "s", "tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1, "ttl_seconds": "60"}, "ttl_seconds", "positive integer"),
    ({"session_id": "s", "tool_name": "t", "evidence_key": "ticket_verified", "evidence_data": 1, "ttl_seconds": 7 * 86400 + 1}, "ttl_seconds", "7 days"),
]


@pytest.mark.parametrize(("body", "field", "needle"), VALIDATION_CASES)
def test_evidence_validation_400_names_the_field(sideband: HelioInstance, body: dict[str, Any], field: str, needle: str) -> None:
    r = post(sideband, "/evidence", body)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["field"] == field
    assert answer["code"] == "validation_error"
    assert needle in answer["error"], answer


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"null"])
def test_evidence_bad_json_400(sideband: HelioInstance, raw: bytes) -> None:
    r = httpx.post(f"{sideband.sdk_url}/evidence", content=raw, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_json"
    assert isinstance(r.json()["error"], str)


def test_evidence_read_two_ways_is_refused_and_records_nothing(sideband: HelioInstance) -> None:
    """A body parsers disagree on (a key twice, a lone surrogate) is refused
    whole: neither reading of it gets evidence."""
    first, second = sid(), sid()
    for raw in (
        f'{{"session_id":"{first}","session_id":"{second}","tool_name":"t","evidence_key":"ticket_verified","evidence_data":1}}',
        f'{{"session_id":"{first}","tool_name":"t\\ud800","evidence_key":"ticket_verified","evidence_data":1}}',
    ):
        r = httpx.post(f"{sideband.sdk_url}/evidence", content=raw, headers={**AUTH, "content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_json", r.text
        assert "$." in r.json()["error"], r.text
    for session in (first, second):
        assert state(sideband, session)["evidence"] == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "k", "value": 1}, "session_id"),
        ({"session_id": " ", "key": "k", "value": 1}, "session_id"),
        ({"session_id": "s", "value": 1}, "key"),
        ({"session_id": "s", "key": "", "value": 1}, "key"),
        ({"session_id": "s", "key": "k"}, "value"),
    ],
)
def test_context_validation_400(sideband: HelioInstance, body: dict[str, Any], field: str) -> None:
    r = post(sideband, "/context", body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert field in r.json()["error"]


def test_key_outside_allowlist_is_400_with_preview_and_logged_once(sideband: HelioInstance) -> None:
    session = sid()
    key = f"not.in.policy.{secrets.token_hex(4)}"
    for _ in range(3):
        r = post(sideband, "/evidence", evidence(session, key))
        assert r.status_code == 400, r.text
        answer = r.json()
        assert answer["code"] == "evidence_key_not_in_policy_allowlist"
        assert answer["key"] == key
        assert answer["allowed_key_count"] == len(ALL_KEYS) == 25
        assert answer["truncated"] is True
        assert answer["allowed_keys"] == ALL_KEYS[:20]
        assert isinstance(answer["error"], str)
    assert state(sideband, session)["evidence"] == {}
    assert wait_until(lambda: key in sideband.stderr, 5), sideband.stderr
    warnings = [line for line in sideband.stderr.splitlines() if key in line]
    assert len(warnings) == 1, warnings
    assert "WARN" in warnings[0]


def test_token_required(sideband: HelioInstance) -> None:
    session = sid()
    for headers in ({}, {"authorization": f"Bearer {secrets.token_hex(32)}"}, {"authorization": TOKEN}):
        r = post(sideband, "/evidence", evidence(session), headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json() == {"error": "Unauthorized"}
        r = post(sideband, "/context", {"session_id": session, "key": "k", "value": 1}, headers=headers)
        assert r.status_code == 401
        r = httpx.get(f"{sideband.sdk_url}/session/{session}/state", headers=headers)
        assert r.status_code == 401
    assert state(sideband, session)["evidence"] == {}


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1"])
def test_origin_refused(sideband: HelioInstance, origin: str) -> None:
    session = sid()
    r = post(sideband, "/evidence", evidence(session), headers={**AUTH, "origin": origin})
    assert r.status_code == 403, r.text
    assert r.json() == {"error": "Cross-origin requests are not allowed"}
    r = httpx.get(f"{sideband.sdk_url}/session/{session}/state", headers={**AUTH, "origin": origin})
    assert r.status_code == 403
    assert state(sideband, session)["evidence"] == {}


def test_json_fallbacks_and_body_limit(sideband: HelioInstance) -> None:
    r = httpx.get(f"{sideband.sdk_url}/nope", headers=AUTH)
    assert (r.status_code, r.json()) == (404, {"error": "Not found"})
    r = httpx.get(f"{sideband.sdk_url}/evidence", headers=AUTH)
    assert r.status_code == 405 and isinstance(r.json()["error"], str)
    r = post(sideband, "/evidence", evidence(sid(), evidence_data="x" * (1024 * 1024 + 1)))
    assert (r.status_code, r.json()) == (413, {"error": "request_body_too_large"})


def test_sessions_are_isolated_and_context_is_listed(sideband: HelioInstance) -> None:
    a, b = sid(), sid()
    assert post(sideband, "/evidence", evidence(a)).status_code == 201
    r = post(sideband, "/context", {"session_id": a, "key": "customer", "value": {"id": 7, "tier": "gold"}})
    assert (r.status_code, r.json()) == (201, {"ok": True})
    assert post(sideband, "/context", {"session_id": b, "key": "other", "value": [1, 2]}).status_code == 201

    state_a, state_b = state(sideband, a), state(sideband, b)
    assert set(state_a["evidence"]) == {"ticket_verified"}
    assert state_a["context"] == {"customer": {"id": 7, "tier": "gold"}}
    assert state_b["evidence"] == {}
    assert state_b["context"] == {"other": [1, 2]}

    # Overwriting a key refreshes it.
    assert post(sideband, "/context", {"session_id": a, "key": "customer", "value": None}).status_code == 201
    assert state(sideband, a)["context"] == {"customer": None}


def test_ttl_is_respected(sideband: HelioInstance) -> None:
    session = sid()
    assert post(sideband, "/evidence", evidence(session, ttl_seconds=1)).status_code == 201
    assert "ticket_verified" in state(sideband, session)["evidence"]
    time.sleep(1.5)
    assert state(sideband, session)["evidence"] == {}


def _rewrite_policies(instance: HelioInstance, policies: dict[str, Any]) -> None:
    config = copy.deepcopy(instance.config)
    config["policies"] = policies
    tmp = instance.config_path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(instance.config_path)


def test_hot_reload_changes_the_allowlist(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(
        {"sdk": {"enabled": True}, "policies": {"rules": [POLICIES["rules"][0]]}},
        upstream=upstream_sse,
        env={"HELIO_SDK_TOKEN": TOKEN},
    )
    session = sid()
    r = post(instance, "/evidence", evidence(session, "refund_approved"))
    assert r.status_code == 400 and r.json()["allowed_keys"] == ["ticket_verified"], r.text

    _rewrite_policies(
        instance,
        {
            "rules": [
                {
                    "name": "refunds-need-approval",
                    "match": {"tool": "process_refund"},
                    "action": "allow",
                    "evidence": {"requires": ["refund_approved"]},
                }
            ]
        },
    )
    assert wait_until(lambda: "policy reloaded" in instance.stderr, 15), instance.stderr
    assert wait_until(lambda: post(instance, "/evidence", evidence(session, "refund_approved")).status_code == 201, 5)
    assert set(state(instance, session)["evidence"]) == {"refund_approved"}
    # The key the old policy named is no longer accepted.
    r = post(instance, "/evidence", evidence(session, "ticket_verified"))
    assert r.status_code == 400
    assert r.json()["allowed_keys"] == ["refund_approved"]


# ------------------------------------------------------------- the real SDK


def test_sdk_is_ours_installed_from_its_wheel() -> None:
    from importlib.metadata import distribution

    assert helio_sdk.__version__ == distribution("helio-sdk").version
    assert "site-packages" in Path(helio_sdk.__file__).parts


def test_sdk_client_round_trip(sideband: HelioInstance, sdk_env: None) -> None:
    session = sid()
    with HelioClient(proxy_url=sideband.sdk_url + "/", session_id=session) as client:
        assert client.proxy_url == sideband.sdk_url
        client.mark_evidence("lookup_order", "orders.lookup", {"order": 991, "status": "shipped"}, ttl=120)
        client.set_context("customer_tier", "gold")
        client.set_context("flags", {"vip": True})
        got = client.get_session_state()

    assert isinstance(got, helio_sdk.SessionState)
    assert got.session_id == session
    assert set(got.evidence) == {"orders.lookup"}
    entry = got.evidence["orders.lookup"]
    assert isinstance(entry, helio_sdk.EvidenceEntry)
    assert entry.evidence_key == "orders.lookup"
    assert entry.data == {"order": 991, "status": "shipped"}
    assert entry.tool_name == "lookup_order"
    assert ISO_UTC.match(entry.timestamp)
    assert entry.expires_at > time.time() * 1000 + 100_000
    assert got.context == {"customer_tier": "gold", "flags": {"vip": True}}
    assert got.completed_tools == []


def test_sdk_context_requirements(sideband: HelioInstance, sdk_env: None) -> None:
    session = sid()
    with HelioContext(sideband.sdk_url, session_id=session) as ctx:
        assert ctx.session_id == session
        ctx.require_evidence(["ticket_verified", "orders.lookup"])
        report = ctx.get_evidence_state()
        assert isinstance(report, helio_sdk.EvidenceStateReport)
        assert report.satisfied == [] and report.missing == ["orders.lookup", "ticket_verified"]

        ctx.mark_evidence("lookup_ticket", "ticket_verified", {"ticket": "T-9"})
        ctx.set("agent", "refund-bot")
        report = ctx.get_evidence_state()
        assert report.session_id == session
        assert report.satisfied == ["ticket_verified"]
        assert report.missing == ["orders.lookup"]
        assert report.context == {"agent": "refund-bot"}
        assert report.evidence["ticket_verified"].data == {"ticket": "T-9"}

    # Another session sees none of it.
    with HelioClient(sideband.sdk_url, session_id=sid()) as other:
        assert other.get_session_state().evidence == {}


def test_sdk_allowlist_rejection_raises_helio_error(sideband: HelioInstance, sdk_env: None) -> None:
    with HelioClient(sideband.sdk_url, session_id=sid()) as client:
        with pytest.raises(HelioError) as caught:
            client.mark_evidence("lookup_weather", "weather.lookup", {"city": "Oslo"})
    error = caught.value
    assert error.status_code == 400
    message = str(error)
    assert "POST /evidence failed: HTTP 400" in message
    assert "code=evidence_key_not_in_policy_allowlist" in message
    assert 'key="weather.lookup"' in message
    assert f"(showing 20 of {len(ALL_KEYS)})" in message


def test_sdk_validation_and_auth_errors_raise_helio_error(
    sideband: HelioInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIO_SDK_TOKEN", TOKEN)
    with HelioClient(sideband.sdk_url, session_id=sid()) as client:
        with pytest.raises(HelioError) as caught:
            client.mark_evidence("lookup_ticket", "ticket_verified", {}, ttl=0)
    assert caught.value.status_code == 400
    assert "code=validation_error" in str(caught.value)

    monkeypatch.setenv("HELIO_SDK_TOKEN", "wrong")
    with HelioClient(sideband.sdk_url, session_id=sid()) as client:
        with pytest.raises(HelioError) as caught:
            client.get_session_state()
    assert caught.value.status_code == 401
