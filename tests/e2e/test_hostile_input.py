"""Hostile input, as an attacker would send it, through the real binary.

The catalogue below is the shape of the hostile-input probe that found two
ways to get a denied call through (issue 10): each row is a raw body sent to
/mcp and what must happen to it — refused or governed — asserted on what
reached a logging upstream and on the audit record, not only on the HTTP
status. New hostile shapes belong in the table.

The other tests cover the rest of the probe's findings: the database's file
modes, secrets echoed in responses, slow clients on all three listeners, a
hostile helio.yaml, and configuration that would leak the governance identity
or leave the operator API weakly guarded.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import HelioInstance, HelioLauncher, RawMcp, Upstream, free_ports, minimal_config, wait_until
from test_cli import run_helio

POLICY = {
    "default": "allow",
    "rules": [
        {
            "name": "no-prod-echo",
            "match": {"tool": "echo", "input": {"$.env": {"eq": "prod"}}},
            "action": "deny",
        },
        {"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"},
        {
            "name": "small-charges",
            "match": {"tool": "charge", "input": {"$.amount": {"gt": 100}}},
            "action": "deny",
        },
    ],
}


def audit_rows(db: Path, marker: str) -> list[dict[str, Any]]:
    """Records whose stored input or reason mentions `marker` (read as an
    operator's tooling would, straight from SQLite)."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [
            dict(r)
            for r in conn.execute(
                "SELECT * FROM audit_records WHERE tool_input LIKE ? OR tool_name LIKE ? ORDER BY id",
                (f"%{marker}%", f"%{marker}%"),
            )
        ]


@dataclass
class Case:
    """A raw body (with MARK where the test's marker goes) and what must come of it."""

    id: str
    body: str
    status: int
    code: int | None  # the JSON-RPC error code, None when the call is forwarded
    reason: str | None  # data.reason / the audit's block_reason
    forwarded: bool
    headers: dict[str, str] | None = None
    audited_as: str | None = None  # the record's tool_name when it is recorded; None = no record


DEEP = "[" * 200 + "1" + "]" * 200

CATALOGUE = [
    # The two bypasses: arguments Helio could not read exactly fell through to the default allow.
    Case("number-out-of-range", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"env":"prod","text":"MARK","pad":1e400}}}', 200, -32602, "invalid_arguments", False, audited_as="echo"),
    Case("negative-overflow", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"env":"prod","text":"MARK","pad":-1e999}}}', 200, -32602, "invalid_arguments", False, audited_as="echo"),
    Case("nesting-beyond-limit", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"env":"prod","text":"MARK","pad":' + DEEP + "}}}", 200, -32602, "invalid_arguments", False, audited_as="echo"),
    Case("lone-surrogate", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"env":"prod","text":"MARK","pad":"\\ud800"}}}', 200, -32602, "invalid_arguments", False, audited_as="echo"),
    Case("duplicate-key", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"env":"dev","text":"MARK","env":"prod"}}}', 200, -32602, "invalid_arguments", False, audited_as="echo"),
    Case("duplicate-arguments", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"env":"dev","text":"MARK"},"arguments":{"env":"prod","text":"MARK"}}}', 200, -32602, "invalid_arguments", False, audited_as="echo"),
    Case("inexact-integer", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"charge","arguments":{"amount":5,"ref":"MARK","id":9007199254740993}}}', 200, -32602, "invalid_arguments", False, audited_as="charge"),
    Case("unreadable-meta", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARK"},"_meta":{"x":1e400}}}', 200, -32602, "invalid_arguments", False, audited_as="echo"),
    # A tools/call without an id is a notification: no reply can carry the decision.
    Case("notification", '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_record","arguments":{"id":"MARK"}}}', 400, -32600, "missing_request_id", False, audited_as="delete_record"),
    Case("notification-allowed-tool", '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"text":"MARK"}}}', 400, -32600, "missing_request_id", False, audited_as="echo"),
    # Headers that contradict the body are refused, not re-stamped.
    Case("method-header-mismatch", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_record","arguments":{"id":"MARK"}}}', 400, -32020, "header_mismatch", False, headers={"mcp-method": "tools/list"}, audited_as="delete_record"),
    Case("name-header-mismatch", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_record","arguments":{"id":"MARK"}}}', 400, -32020, "header_mismatch", False, headers={"mcp-method": "tools/call", "mcp-name": "echo"}, audited_as="delete_record"),
    Case("param-header-mismatch", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"regional","arguments":{"region":"eu-1","text":"MARK"}}}', 400, -32020, "header_mismatch", False, headers={"mcp-param-region": "us-1"}, audited_as="regional"),
    Case("param-header-without-argument", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"regional","arguments":{"text":"MARK"}}}', 400, -32020, "header_mismatch", False, headers={"mcp-param-region": "eu-1"}, audited_as="regional"),
    Case("modern-without-mirror", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARK"}}}', 400, -32020, "header_mismatch", False, headers={"mcp-protocol-version": "2026-07-28"}, audited_as="echo"),
    # Spellings that decode to the denied call are governed as that call.
    Case("escaped-key", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"\\u0065nv":"prod","text":"MARK"}}}', 200, -32001, "policy_denied", False, audited_as="echo"),
    Case("escaped-name", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\u0064elete_record","arguments":{"id":"MARK"}}}', 200, -32001, "policy_denied", False, audited_as="delete_record"),
    Case("null-id-is-governed", '{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"delete_record","arguments":{"id":"MARK"}}}', 200, -32001, "policy_denied", False, audited_as="delete_record"),
    Case("big-amount-as-float", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"charge","arguments":{"amount":1e3,"ref":"MARK"}}}', 200, -32001, "policy_denied", False, audited_as="charge"),
    # Envelopes that are not one readable JSON-RPC message never reach the upstream.
    Case("duplicate-params", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARK"}},"params":{"name":"delete_record","arguments":{"id":"MARK"}}}', 400, -32600, None, False),
    Case("batch", '[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_record","arguments":{"id":"MARK"}}}]', 400, -32600, None, False),
    Case("params-not-an-object", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["delete_record","MARK"]}', 200, -32602, "missing_tool_name", False, audited_as="<nameless>"),
    # Controls: the same shapes, readable, are governed as usual.
    Case("denied-control", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"env":"prod","text":"MARK"}}}', 200, -32001, "policy_denied", False, audited_as="echo"),
    Case("allowed-control", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"env":"dev","text":"MARK"}}}', 200, None, None, True, audited_as="echo"),
    Case("allowed-large-exact-integer", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARK","n":9007199254740992}}}', 200, None, None, True, audited_as="echo"),
    Case("allowed-matching-param-header", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"regional","arguments":{"region":"eu-1","text":"MARK"}}}', 200, None, None, True, headers={"mcp-param-region": "=?base64?ZXUtMQ==?="}, audited_as="regional"),
    Case("allowed-matching-headers", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARK"}}}', 200, None, None, True, headers={"mcp-method": "tools/call", "mcp-name": "=?base64?ZWNobw==?="}, audited_as="echo"),
]


@pytest.fixture(scope="module")
def hostile(module_helio: HelioLauncher, upstream_sse: Upstream, tmp_path_factory: pytest.TempPathFactory) -> tuple[HelioInstance, Path]:
    db = tmp_path_factory.mktemp("hostile") / "audit.db"
    instance = module_helio.shared(
        upstream_sse, {"policies": POLICY, "audit": {"path": str(db), "include_responses": True}}
    )
    return instance, db


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_hostile_catalogue(hostile: tuple[HelioInstance, Path], upstream_sse: Upstream, case: Case) -> None:
    instance, db = hostile
    marker = f"hostile-{secrets.token_hex(6)}"
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        reply = raw.post(None, raw=case.body.replace("MARK", marker), headers=case.headers)
    assert reply.status == case.status, reply.response.text
    final = reply.final()
    if case.code is None:
        assert final is not None and "result" in final, reply.response.text
    else:
        assert final is not None and final["error"]["code"] == case.code, reply.response.text
        if case.reason is not None:
            assert final["error"]["data"]["reason"] == case.reason, final

    reached = [r for r in upstream_sse.requests() if marker in json.dumps(r.get("body"))]
    assert bool(reached) == case.forwarded, reached

    if case.audited_as is None:
        return
    assert wait_until(lambda: len(audit_rows(db, marker)) == 1, 5), audit_rows(db, marker)
    (record,) = audit_rows(db, marker)
    assert record["tool_name"] == case.audited_as
    if case.forwarded:
        assert record["policy_decision"] == "allow" and record["block_reason"] is None
    else:
        assert record["block_reason"] == case.reason
        assert record["policy_decision"] in ("rejected", "deny")
        assert record["upstream_http_status"] is None


def _next_message(lines: Any) -> dict[str, Any]:
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended without a message")


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_hostile_catalogue_through_the_legacy_sse_door(
    hostile: tuple[HelioInstance, Path], upstream_sse: Upstream, case: Case
) -> None:
    # The same bodies, posted to the legacy door: each is answered 202 and its
    # outcome arrives on the stream, exactly as /mcp decides it.
    instance, db = hostile
    marker = f"hostile-sse-{secrets.token_hex(6)}"
    with httpx.Client(timeout=15) as client, client.stream("GET", instance.base_url + "/sse") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: endpoint"
        endpoint = instance.base_url + next(lines).removeprefix("data: ")
        initialize = {"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}}
        assert client.post(endpoint, json=initialize).status_code == 202
        assert "result" in _next_message(lines)
        assert client.post(endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
        headers = {"content-type": "application/json", **(case.headers or {})}
        posted = client.post(endpoint, content=case.body.replace("MARK", marker), headers=headers)
        assert posted.status_code == 202, posted.text
        final = _next_message(lines)
    if case.code is None:
        assert "result" in final, final
    else:
        assert final["error"]["code"] == case.code, final
        if case.reason is not None:
            assert final["error"]["data"]["reason"] == case.reason, final
    reached = [r for r in upstream_sse.requests() if marker in json.dumps(r.get("body"))]
    assert bool(reached) == case.forwarded, reached
    if case.audited_as is not None:
        assert wait_until(lambda: len(audit_rows(db, marker)) == 1, 5), audit_rows(db, marker)
        (record,) = audit_rows(db, marker)
        assert record["tool_name"] == case.audited_as
        assert record["session_source"] in ("transport", "header", "meta", "legacy_header")


def test_unreadable_arguments_are_recorded_with_where_and_why(hostile: tuple[HelioInstance, Path]) -> None:
    instance, db = hostile
    marker = f"why-{secrets.token_hex(6)}"
    body = '{"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"echo","arguments":{"env":"prod","text":"%s","pad":1e400}}}' % marker
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        final = raw.post(None, raw=body).final("w")
    assert final is not None
    data = final["error"]["data"]
    assert data["blocked"] is True and data["path"] == "$.arguments.pad" and "out of range" in data["problem"]
    assert "$.arguments.pad" in final["error"]["message"]
    assert wait_until(lambda: len(audit_rows(db, marker)) == 1, 5)
    (record,) = audit_rows(db, marker)
    stored = json.loads(record["tool_input"])
    assert stored["unreadable"] == {"path": "$.arguments.pad", "problem": data["problem"]}
    assert "1e400" in stored["raw_preview"] and marker in stored["raw_preview"]


def test_redacted_secrets_stay_out_of_unreadable_and_echoed_records(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    instance = helio(
        {"audit": {"path": str(db), "redact": ["text", "$.card.number"], "include_responses": True}, "policies": POLICY},
        upstream=upstream_sse,
    )
    secret = f"s3cret-{secrets.token_hex(8)}"
    card = "4111111111111111"
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        # Allowed, and the tool echoes the secret back in text and structured content.
        echoed = raw.call_tool("echo", {"text": secret, "card": {"number": card}}, id="e").final("e")
        assert echoed is not None and echoed["result"]["structuredContent"] == {"result": secret}
        # Refused as unreadable: the raw text cannot be redacted by path, so it is not kept.
        body = '{"jsonrpc":"2.0","id":"u","method":"tools/call","params":{"name":"echo","arguments":{"text":"%s","pad":1e400}}}' % secret
        refused = raw.post(None, raw=body).final("u")
        assert refused is not None and refused["error"]["data"]["reason"] == "invalid_arguments"
    assert instance.terminate() == 0
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        records = [dict(r) for r in conn.execute("SELECT * FROM audit_records WHERE tool_name = 'echo' ORDER BY id")]
    assert len(records) == 2
    dumped = json.dumps(records)
    assert secret not in dumped and card not in dumped
    allowed, unreadable = records
    assert json.loads(allowed["tool_input"]) == {"text": "[REDACTED]", "card": {"number": "[REDACTED]"}}
    response = json.loads(allowed["upstream_response"])
    assert response["result"]["structuredContent"] == {"result": "[REDACTED]"}
    assert "[REDACTED]" in response["result"]["content"][0]["text"]
    stored = json.loads(unreadable["tool_input"])
    assert stored["unreadable"]["path"] == "$.arguments.pad"
    assert stored["raw_preview"].startswith("[REDACTED]")


def test_the_database_is_private_to_its_owner(helio: HelioLauncher, upstream_sse: Upstream, tmp_path: Path) -> None:
    directory = tmp_path / "made-by-helio" / "state"
    db = directory / "helio.db"
    old_umask = os.umask(0o022)
    try:
        instance = helio({"audit": {"path": str(db)}}, upstream=upstream_sse)
    finally:
        os.umask(old_umask)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        raw.call_tool("echo", {"text": "mode"}, id="m")
    assert wait_until(lambda: Path(f"{db}-wal").exists() and Path(f"{db}-shm").exists(), 5)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(db) == 0o600
    assert mode(Path(f"{db}-wal")) == 0o600
    assert mode(Path(f"{db}-shm")) == 0o600
    assert mode(directory) == 0o700 and mode(directory.parent) == 0o700
    assert instance.terminate() == 0


# ------------------------------------------------------------------ slow clients


def stalled_head(port: int) -> socket.socket:
    """A connection that sends half a request head and then nothing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    return s


def stalled_body(port: int, path: str = "/mcp") -> socket.socket:
    """A connection that sends a whole head promising 100 bytes, then 10."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode()
        + b'{"jsonrpc"'
    )
    return s


def closed_by_server(s: socket.socket, within: float) -> bool:
    """Whether the server closed `s` (reading whatever it answered first)."""
    s.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if chunk == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def test_stalled_clients_are_cut_off_and_others_still_served(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(
        {
            "connections": {"header_timeout": "2s", "body_timeout": "2s"},
            "sdk": {"enabled": True},
        },
        upstream=upstream_sse,
        env={"HELIO_SDK_TOKEN": secrets.token_hex(32)},
    )
    mcp_port = instance.port
    dashboard_port = instance.config["dashboard"]["port"]
    sdk_port = instance.config["sdk"]["port"]
    stalled: list[socket.socket] = []
    try:
        for i in range(200):
            stalled.append(stalled_head(mcp_port) if i % 2 else stalled_body(mcp_port))
        for port, path in ((dashboard_port, "/api/audit"), (sdk_port, "/evidence")):
            for i in range(10):
                stalled.append(stalled_head(port) if i % 2 else stalled_body(port, path))
        # With 220 connections stalled, a normal client is served at once.
        started = time.monotonic()
        with RawMcp(instance.mcp_url) as raw:
            raw.initialize()
            listed = raw.request("tools/list", id="l").final("l")
        assert listed is not None and "result" in listed
        assert httpx.get(f"{instance.dashboard_url}/api/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 2
        # And every stalled connection is closed once its timeout passes.
        still_open = [s for s in stalled if not closed_by_server(s, 6)]
        assert not still_open, f"{len(still_open)} stalled connections were not closed"
    finally:
        for s in stalled:
            s.close()


def test_a_full_listener_queues_newcomers_until_a_slot_frees(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(
        {"connections": {"header_timeout": "2s", "max_per_listener": 4}},
        upstream=upstream_sse,
    )
    holders = [stalled_head(instance.port) for _ in range(4)]
    try:
        time.sleep(0.2)
        started = time.monotonic()
        reply = httpx.get(f"{instance.base_url}/healthz", timeout=10)
        waited = time.monotonic() - started
        assert reply.status_code == 200
        # Served only once the stalled holders timed out (2 s), not before.
        assert waited > 1.2, waited
    finally:
        for s in holders:
            s.close()


# ------------------------------------------------------------ hostile helio.yaml


def write_config(tmp_path: Path, extra: str, *, name: str = "helio.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml_with(minimal_config("http://127.0.0.1:9/mcp"), extra))
    return path


def yaml_with(base: dict[str, Any], extra: str) -> str:
    import yaml

    return yaml.safe_dump(base, sort_keys=False) + extra


def test_a_deeply_nested_config_is_refused_at_once(helio_bin: Path, tmp_path: Path) -> None:
    depth = 100_000
    for label, extra in (
        ("flow", "x-deep: " + "[" * depth + "]" * depth + "\n"),
        ("block", "x-deep:\n" + "".join("  " * i + "-\n" for i in range(1, 2000))),
    ):
        config = write_config(tmp_path, extra, name=f"{label}.yaml")
        started = time.monotonic()
        result = run_helio(helio_bin, "validate", "-c", str(config), cwd=tmp_path, timeout=20)
        assert result.returncode == 1, result.stderr
        assert time.monotonic() - started < 3, label
        assert "nested deeper" in result.stderr, result.stderr


def test_hostile_plugin_paths_are_refused_without_echoing_content(helio_bin: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "not-a-plugin.txt"
    secret_file.write_text("root:TOPSECRET:0:0\n")
    for path, expected in (("/dev/zero", "not a regular file"), (str(tmp_path), "not a regular file"), (str(secret_file), "not a WebAssembly file")):
        config = write_config(tmp_path, f"plugins:\n  - name: hostile\n    path: {path}\n")
        started = time.monotonic()
        result = run_helio(helio_bin, "validate", "-c", str(config), cwd=tmp_path, timeout=20)
        assert result.returncode == 1, result.stderr
        assert time.monotonic() - started < 5
        assert expected in result.stderr, result.stderr
        assert "TOPSECRET" not in result.stderr and "0x72" not in result.stderr


def test_config_that_leaks_identity_or_guards_weakly_is_refused(helio_bin: Path, tmp_path: Path) -> None:
    cases = [
        (
            "upstream:\n  url: http://127.0.0.1:9/mcp\n  forward_headers: [x-team, X-Helio-Session-Id]\n",
            "upstream.forward_headers[1]",
        ),
        (
            "upstream:\n  url: http://127.0.0.1:9/mcp\n  forward_headers: [x-tenant]\nsession:\n  identity: [{source: header, name: x-tenant}]\n",
            "upstream.forward_headers[0]",
        ),
    ]
    for extra, where in cases:
        base = minimal_config("http://127.0.0.1:9/mcp")
        base.pop("upstream")
        config = tmp_path / "identity.yaml"
        config.write_text(yaml_with(base, extra))
        result = run_helio(helio_bin, "validate", "-c", str(config), cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert where in result.stderr and "governance session identity" in result.stderr, result.stderr
    for weak in ("x", "ab" * 32, "password"):
        base = minimal_config("http://127.0.0.1:9/mcp")
        base["dashboard"]["api_secret"] = weak
        config = tmp_path / "weak.yaml"
        config.write_text(yaml_with(base, ""))
        result = run_helio(helio_bin, "validate", "-c", str(config), cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert "dashboard.api_secret" in result.stderr and "too weak" in result.stderr, result.stderr
    base = minimal_config("http://127.0.0.1:9/mcp")
    config = tmp_path / "strong.yaml"
    config.write_text(yaml_with(base, ""))
    assert run_helio(helio_bin, "validate", "-c", str(config), cwd=tmp_path).returncode == 0
