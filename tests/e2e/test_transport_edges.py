"""Helio's HTTP edges, byte by byte (raw httpx where the SDK can't express it).

All tests here need the helio binary (HELIO_BIN); without it they skip.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from typing import Any

import httpx
import pytest

from conftest import (
    HelioInstance,
    HelioLauncher,
    RawMcp,
    Upstream,
    free_port,
    jsonrpc_body_matches,
    rpc_result,
    wait_until,
)

EVIL_ORIGIN = "http://evil.example"
GOOD_ORIGIN = "http://allowed.example:8443"
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


@pytest.fixture
def edge_helio(helio: HelioLauncher, upstream_sse: Upstream) -> HelioInstance:
    """A plain Helio in front of the shared SSE upstream."""
    return helio(upstream=upstream_sse)


def jsonrpc_error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert body.get("jsonrpc") == "2.0", body
    assert "result" not in body, body
    return body


def initialize_body(request_id: Any = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "helio-e2e-edges", "version": "0.0.1"},
        },
    }


# ------------------------------------------------------------------ Origin guard


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_foreign_origin_is_refused(edge_helio: HelioInstance, method: str) -> None:
    headers = {"origin": EVIL_ORIGIN, "accept": "application/json, text/event-stream"}
    kwargs: dict[str, Any] = {}
    if method == "POST":
        headers["content-type"] = "application/json"
        kwargs["content"] = json.dumps(initialize_body())
    r = httpx.request(method, edge_helio.mcp_url, headers=headers, timeout=10, **kwargs)
    assert r.status_code == 403, r.text
    body = jsonrpc_error(r)
    assert body["error"]["code"] == -32600
    assert "evil.example" not in r.text, "the refused origin must not be echoed"


def test_listed_origin_passes(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio({"listen": {"allowed_origins": [GOOD_ORIGIN]}}, upstream=upstream_sse)
    with RawMcp(instance.mcp_url, headers={"origin": GOOD_ORIGIN}) as raw:
        reply = raw.initialize()
        assert rpc_result(reply, 1)["serverInfo"]["name"] == "helio-e2e-upstream"
        assert rpc_result(raw.call_tool("echo", {"text": "from a listed origin"}))["content"][0]["text"] == (
            "from a listed origin"
        )
    r = httpx.post(
        instance.mcp_url,
        content=json.dumps(initialize_body()),
        headers={"origin": EVIL_ORIGIN, "content-type": "application/json", "accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 403


# --------------------------------------------------------- body and media type


def test_non_json_content_type_is_415(edge_helio: HelioInstance) -> None:
    r = httpx.post(
        edge_helio.mcp_url,
        content=json.dumps(initialize_body()),
        headers={"content-type": "text/plain", "accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 415, r.text


def test_json_content_type_with_parameters_is_accepted(edge_helio: HelioInstance) -> None:
    r = httpx.post(
        edge_helio.mcp_url,
        content=json.dumps(initialize_body()),
        headers={"content-type": "Application/JSON; charset=utf-8", "accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 200, r.text


def test_invalid_json_is_400_parse_error(edge_helio: HelioInstance) -> None:
    r = httpx.post(
        edge_helio.mcp_url,
        content=b'{"jsonrpc": "2.0", "id": 1, "method": ',
        headers={"content-type": "application/json", "accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 400, r.text
    assert jsonrpc_error(r)["error"]["code"] == -32700


def test_oversized_body_is_413_and_not_relayed(edge_helio: HelioInstance, upstream_sse: Upstream) -> None:
    marker = secrets.token_hex(4)
    body = {"jsonrpc": "2.0", "id": f"big-{marker}", "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x" * (5 * 1024 * 1024)}}}
    r = httpx.post(
        edge_helio.mcp_url,
        content=json.dumps(body),
        headers={"content-type": "application/json", "accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 413, r.text[:200]
    assert jsonrpc_error(r)["error"]["code"] == -32600
    assert not upstream_sse.find(lambda req: marker in json.dumps(req.get("body"))), "the oversized body was relayed"


def test_batch_is_refused(edge_helio: HelioInstance) -> None:
    r = httpx.post(
        edge_helio.mcp_url,
        content=json.dumps([initialize_body(1), initialize_body(2)]),
        headers={"content-type": "application/json", "accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 400, r.text
    assert jsonrpc_error(r)["error"]["code"] == -32600


def test_notification_is_202_with_empty_body(edge_helio: HelioInstance) -> None:
    with RawMcp(edge_helio.mcp_url) as raw:
        raw.initialize()  # sends notifications/initialized and asserts 202 too
        reply = raw.notify("notifications/cancelled", {"requestId": 12345, "reason": "e2e"})
        assert reply.status == 202
        assert reply.response.content == b""


# ------------------------------------------------------ ids, _meta, unknown fields


@pytest.mark.parametrize(
    "request_id", ["req-7f3a", 0, 42, 9007199254740991, "", "ünïcode-id"], ids=["string", "zero", "int", "big-int", "empty-string", "unicode"]
)
def test_ids_are_relayed_unchanged(edge_helio: HelioInstance, upstream_sse: Upstream, request_id: Any) -> None:
    observations = {}
    for label, url in {"direct": upstream_sse.url, "helio": edge_helio.mcp_url}.items():
        with RawMcp(url) as raw:
            raw.initialize()
            ok = raw.request("tools/list", id=request_id)
            unknown = raw.request("helio_test/unknown_method", {"x": 1}, id=request_id)
            ok_final, unknown_final = ok.final(request_id), unknown.final(request_id)
            assert ok_final is not None and unknown_final is not None, (ok.response.text, unknown.response.text)
            assert type(ok_final["id"]) is type(request_id)
            assert type(unknown_final["id"]) is type(request_id)
            observations[label] = (ok_final, unknown_final)
    assert observations["helio"] == observations["direct"]
    assert observations["helio"][1]["error"]["code"] == -32601


def test_meta_and_unknown_params_reach_the_upstream_unchanged(
    edge_helio: HelioInstance, upstream_sse: Upstream
) -> None:
    marker = secrets.token_hex(6)
    params = {
        "name": "echo",
        "arguments": {"text": marker},
        "_meta": {"progressToken": f"tok-{marker}", "io.example/trace": {"span": marker, "n": [1, 2.5, None]}},
        "x_unknown_extra": {"keep": True, "marker": marker},
    }
    with RawMcp(edge_helio.mcp_url) as raw:
        raw.initialize()
        reply = raw.request("tools/call", params, id=f"meta-{marker}")
        assert rpc_result(reply, f"meta-{marker}")["structuredContent"] == {"result": marker}
    (seen,) = upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", text=marker))
    assert seen["body"]["params"] == params


def test_unknown_method_error_is_relayed(edge_helio: HelioInstance) -> None:
    with RawMcp(edge_helio.mcp_url) as raw:
        raw.initialize()
        final = raw.request("helio_test/unknown_method", id="u-1").final("u-1")
        assert final is not None
        assert final["error"]["code"] == -32601
        assert final["id"] == "u-1"


# ------------------------------------------------------------------- sessions


def test_session_id_round_trip_and_delete(edge_helio: HelioInstance, upstream_sse: Upstream) -> None:
    marker = secrets.token_hex(6)
    with RawMcp(edge_helio.mcp_url) as raw:
        reply = raw.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": f"session-{marker}", "version": "1"},
            },
            id=1,
        )
        assert reply.status == 200
        session_id = reply.response.headers.get("mcp-session-id")
        assert session_id, f"no Mcp-Session-Id relayed; headers: {dict(reply.response.headers)}"
        (upstream_init,) = upstream_sse.find(
            lambda r: jsonrpc_body_matches(r, "initialize")
            and ((r["body"].get("params") or {}).get("clientInfo") or {}).get("name") == f"session-{marker}"
        )
        assert upstream_init["response_headers"]["mcp-session-id"] == session_id, "not the upstream's session id"

        raw.session_id = session_id
        raw.protocol_version = "2025-06-18"
        assert raw.notify("notifications/initialized").status == 202
        assert rpc_result(raw.call_tool("echo", {"text": marker}))["structuredContent"] == {"result": marker}
        (call,) = upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", text=marker))
        assert call["headers"].get("mcp-session-id") == session_id

        deleted = raw.client.delete(edge_helio.mcp_url, headers={"mcp-session-id": session_id})
        assert deleted.status_code in (200, 204), deleted.text
        assert upstream_sse.find(
            lambda r: r["method"] == "DELETE" and r["headers"].get("mcp-session-id") == session_id
        ), "DELETE was not relayed to the upstream"

        after = raw.request("tools/list", id="after-delete")
        assert after.status == 404, (after.status, after.response.text)


def test_get_opens_the_upstream_sse_stream(edge_helio: HelioInstance) -> None:
    with RawMcp(edge_helio.mcp_url) as raw:
        raw.initialize()
        headers = {
            "accept": "text/event-stream",
            "mcp-session-id": raw.session_id or "",
            "mcp-protocol-version": raw.protocol_version or "",
        }
        with httpx.stream("GET", edge_helio.mcp_url, headers=headers, timeout=httpx.Timeout(10, read=2)) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"].split(";")[0].strip() == "text/event-stream"


# --------------------------------------------------------- health and operator API


def test_healthz_on_mcp_port(edge_helio: HelioInstance) -> None:
    r = httpx.get(f"{edge_helio.base_url}/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_operator_api_is_not_on_the_mcp_port(edge_helio: HelioInstance) -> None:
    assert httpx.get(f"{edge_helio.base_url}/api/health").status_code == 404
    assert httpx.get(f"{edge_helio.base_url}/api/audit", headers={"authorization": f"Bearer {edge_helio.api_secret}"}).status_code == 404


def test_dashboard_health_is_open(edge_helio: HelioInstance) -> None:
    r = httpx.get(f"{edge_helio.dashboard_url}/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert {"status", "version", "uptime"} <= set(body)


@pytest.mark.parametrize("path", ["/api/anything-else", "/api/audit"])
def test_dashboard_api_requires_the_secret(edge_helio: HelioInstance, path: str) -> None:
    url = f"{edge_helio.dashboard_url}{path}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Bearer {secrets.token_hex(32)}"}).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Bearer {edge_helio.api_secret}x"}).status_code == 401
    assert httpx.get(url, headers={"authorization": edge_helio.api_secret or ""}).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Bearer {edge_helio.api_secret}"}).status_code != 401


# ----------------------------------------------------------------- SDK sideband


def status_of(url: str, **kwargs: Any) -> int | None:
    try:
        return httpx.get(url, timeout=2, **kwargs).status_code
    except httpx.HTTPError:
        return None


def sdk_token_candidates(stderr: str) -> set[str]:
    return {m for line in stderr.splitlines() if "token" in line.lower() for m in HEX64.findall(line)}


def test_sdk_sideband_generated_token(helio: HelioLauncher) -> None:
    instance = helio({"sdk": {"enabled": True}})
    assert wait_until(lambda: status_of(f"{instance.sdk_url}/healthz") == 200, 5), instance.stderr
    candidates = sdk_token_candidates(instance.stderr) - {instance.api_secret}
    assert candidates, f"no 64-hex token on a line mentioning the token in stderr:\n{instance.stderr}"

    state_url = f"{instance.sdk_url}/session/e2e-session/state"
    assert httpx.get(state_url).status_code == 401
    assert httpx.get(state_url, headers={"authorization": f"Bearer {secrets.token_hex(32)}"}).status_code == 401
    accepted = [
        t
        for t in candidates
        if httpx.get(state_url, headers={"authorization": f"Bearer {t}"}).status_code not in (401, 403)
    ]
    assert accepted, "none of the printed tokens is accepted by the SDK sideband"

    health = httpx.get(f"{instance.sdk_url}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    for origin in (EVIL_ORIGIN, "null", "http://127.0.0.1"):
        assert httpx.get(f"{instance.sdk_url}/healthz", headers={"origin": origin}).status_code == 403
        assert (
            httpx.get(state_url, headers={"origin": origin, "authorization": f"Bearer {accepted[0]}"}).status_code
            == 403
        )


def test_sdk_sideband_token_from_environment_is_used_and_not_printed(helio: HelioLauncher) -> None:
    token = secrets.token_hex(32)
    instance = helio({"sdk": {"enabled": True}}, env={"HELIO_SDK_TOKEN": token})
    state_url = f"{instance.sdk_url}/session/e2e-session/state"
    assert httpx.get(state_url, headers={"authorization": f"Bearer {token}"}).status_code not in (401, 403)
    assert httpx.get(state_url).status_code == 401
    assert httpx.get(state_url, headers={"authorization": f"Bearer {secrets.token_hex(32)}"}).status_code == 401
    assert token not in instance.stderr
    assert token not in instance.stdout


# ------------------------------------------------------------ upstream failures


def test_upstream_down_is_a_prompt_jsonrpc_error(helio: HelioLauncher) -> None:
    closed = free_port()
    instance = helio({"upstream": {"url": f"http://127.0.0.1:{closed}/mcp"}})
    with RawMcp(instance.mcp_url) as raw:
        started = time.monotonic()
        reply = raw.call_tool("echo", {"text": "anyone there?"}, id="down-1", timeout=10)
        elapsed = time.monotonic() - started
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert reply.status == 200, reply.response.text
    final = reply.final("down-1")
    assert final is not None, reply.response.text
    assert final["error"]["code"] == -32603
    assert "unreachable" in final["error"]["message"].lower(), final


@pytest.mark.parametrize("mode", ["sse", "json"])
def test_upstream_timeout_is_a_clear_jsonrpc_error(helio: HelioLauncher, mode: str, request: pytest.FixtureRequest) -> None:
    upstream: Upstream = request.getfixturevalue(f"upstream_{mode}")
    instance = helio({"upstream": {"request_timeout": "1s"}}, upstream=upstream)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        started = time.monotonic()
        reply = raw.call_tool("slow", {"seconds": 5}, id="slow-1", timeout=10)
        elapsed = time.monotonic() - started
    assert elapsed < 3.5, f"took {elapsed:.1f}s with request_timeout 1s"
    final = reply.final("slow-1")
    assert final is not None, (reply.status, reply.response.text)
    assert "error" in final, final
    assert re.search(r"time(d)?[ -]?out", final["error"]["message"], re.IGNORECASE), final


# ------------------------------------------------------------ headers upstream


def whoami(instance: HelioInstance, headers: dict[str, str] | None = None) -> dict[str, str]:
    with RawMcp(instance.mcp_url, headers=headers) as raw:
        raw.initialize()
        return rpc_result(raw.call_tool("whoami_headers"))["structuredContent"]


def test_static_upstream_headers_with_env_interpolation(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    key = f"key-{secrets.token_hex(8)}"
    instance = helio(
        {"upstream": {"headers": {"X-Api-Key": "${HELIO_E2E_API_KEY}", "X-Static": "literal $NOT_INTERPOLATED"}}},
        upstream=upstream_sse,
        env={"HELIO_E2E_API_KEY": key},
    )
    seen = whoami(instance, headers={"x-api-key": "caller-tries-to-override"})
    assert seen.get("x-api-key") == key
    assert seen.get("x-static") == "literal $NOT_INTERPOLATED"


def test_forward_headers_allowlist(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    caller_headers = {"x-team": "blue", "x-not-listed": "nope"}
    plain = helio(upstream=upstream_sse)
    seen = whoami(plain, headers=caller_headers)
    assert "x-team" not in seen
    assert "x-not-listed" not in seen

    forwarding = helio({"upstream": {"forward_headers": ["x-team"]}}, upstream=upstream_sse)
    seen = whoami(forwarding, headers=caller_headers)
    assert seen.get("x-team") == "blue"
    assert "x-not-listed" not in seen


def test_upstream_sees_mcp_method_and_name_headers(edge_helio: HelioInstance, upstream_sse: Upstream) -> None:
    marker = secrets.token_hex(6)
    with RawMcp(edge_helio.mcp_url) as raw:
        raw.initialize()
        rpc_result(raw.call_tool("echo", {"text": marker}))
    (seen,) = upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", text=marker))
    assert seen["headers"].get("mcp-method") == "tools/call"
    assert seen["headers"].get("mcp-name") == "echo"


def test_a_clients_own_mcp_headers_reach_the_upstream_as_sent(edge_helio: HelioInstance, upstream_sse: Upstream) -> None:
    # MCP 2026-07-28: Mcp-Param-* mirror arguments, and the upstream checks
    # them against the body Helio forwards byte for byte, so they go as sent;
    # the client's (agreeing) Mcp-Name is kept in its own encoding.
    marker = secrets.token_hex(6)
    sent = {"mcp-method": "tools/call", "mcp-name": "=?base64?ZWNobw==?=", "mcp-param-region": "eu-west-1"}
    with RawMcp(edge_helio.mcp_url) as raw:
        raw.initialize()
        rpc_result(raw.call_tool("echo", {"text": marker}, headers=sent))
    (seen,) = upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", text=marker))
    for name, value in sent.items():
        assert seen["headers"].get(name) == value, (name, seen["headers"])


# ---------------------------------------------------------------- graceful stop


def test_sigterm_lets_an_in_flight_call_finish(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(upstream=upstream_sse)
    marker = secrets.token_hex(4)
    outcome: dict[str, Any] = {}
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()

        def call() -> None:
            try:
                outcome["reply"] = raw.call_tool("slow", {"seconds": 2}, id=f"inflight-{marker}", timeout=20)
            except Exception as exc:  # noqa: BLE001 - reported below
                outcome["exception"] = exc

        worker = threading.Thread(target=call)
        worker.start()
        session_id = raw.session_id
        assert wait_until(
            lambda: bool(
                upstream_sse.find(
                    lambda r: jsonrpc_body_matches(r, "tools/call", name="slow")
                    and r["headers"].get("mcp-session-id") == session_id
                )
            ),
            10,
        ), "the slow call never reached the upstream"
        started = time.monotonic()
        code = instance.terminate()
        worker.join(timeout=20)
    assert "exception" not in outcome, outcome.get("exception")
    reply = outcome["reply"]
    assert rpc_result(reply, f"inflight-{marker}")["structuredContent"] == {"result": "slept 2"}
    assert code == 0, f"exit code {code}; stderr:\n{instance.stderr}"
    assert time.monotonic() - started < 15


def test_sigterm_ends_open_get_streams_promptly(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    """Long-lived server-to-client streams must not hold shutdown for the grace period."""
    instance = helio(upstream=upstream_sse)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        headers = {
            "accept": "text/event-stream",
            "mcp-session-id": raw.session_id or "",
            "mcp-protocol-version": raw.protocol_version or "",
        }
        with httpx.stream("GET", instance.mcp_url, headers=headers, timeout=httpx.Timeout(10, read=30)) as r:
            assert r.status_code == 200
            started = time.monotonic()
            code = instance.terminate()
            elapsed = time.monotonic() - started
    assert code == 0, instance.stderr
    assert elapsed < 5, f"shutdown took {elapsed:.1f}s with a GET stream open"


# ------------------------------------------------- every key is enforced


def test_no_key_is_accepted_without_being_enforced(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    overrides = {"audit": {"retention": "30d"}, "sdk": {"enabled": True, "evaluation_ttl": "5m"},
                 "policies": {"install": {"default": "deny", "rules": []}}}
    instance = helio(overrides, upstream=upstream_sse)
    assert "not yet enforced" not in instance.stderr
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert rpc_result(raw.call_tool("echo", {"text": "hi"}, id="ok-1"), "ok-1")["content"]


def test_a_stdio_server_that_cannot_start_is_a_clear_error_not_a_hang(helio: HelioLauncher) -> None:
    instance = helio({"upstream": {"url": "stdio://", "transport": "stdio", "command": "/nonexistent/mcp-server",
                                   "connect_timeout": "1s", "request_timeout": "1s"}})
    assert wait_until(lambda: "cannot start `/nonexistent/mcp-server`" in instance.stderr, timeout=10), instance.stderr
    with RawMcp(instance.mcp_url) as raw:
        reply = raw.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert reply.status == 503, reply.response.text
        assert "the upstream MCP server is not running" in reply.final(1)["error"]["message"]
