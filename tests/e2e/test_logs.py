"""Helio's logs: `HELIO_LOG_FORMAT=json` gives one JSON object per line with
stable field names, and no secret Helio was given or generated reaches its
output, even at debug level. (Every other e2e test's instance is checked for
the secrets it was given at teardown too: `HelioInstance.close`.)"""

from __future__ import annotations

import json
import re
import secrets

import httpx

from conftest import HelioLauncher, RawMcp, Upstream

POLICIES = {"rules": [{"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"}]}


def test_json_logs_are_one_object_per_line_and_keep_secrets_out(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    upstream_secret = secrets.token_hex(24)
    sdk_token, adapter_token = secrets.token_hex(32), secrets.token_hex(32)
    instance = helio(
        {"policies": POLICIES, "sdk": {"enabled": True},
         "upstream": {"headers": {"authorization": f"Bearer {upstream_secret}"}}},
        upstream=upstream_sse,
        env={"HELIO_LOG_FORMAT": "json", "HELIO_LOG": "debug,hyper=info,h2=info",
             "HELIO_SDK_TOKEN": sdk_token, "HELIO_ADAPTER_TOKEN": adapter_token},
    )
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        raw.call_tool("echo", {"text": "hello"}).final()
        raw.call_tool("delete_record", {"id": "r1"}).final()
    sdk = {"authorization": f"Bearer {sdk_token}"}
    evidence = {"session_id": "s1", "tool_name": "lookup", "evidence_key": "k", "evidence_data": {}}
    httpx.post(f"{instance.sdk_url}/evidence", json=evidence, headers=sdk, timeout=5)
    httpx.post(f"{instance.sdk_url}/evaluate", json={"tool": {"name": "echo"}},
               headers={"authorization": f"Bearer {adapter_token}"}, timeout=5)
    httpx.get(f"{instance.dashboard_url}/api/audit", headers={"authorization": f"Bearer {instance.api_secret}"},
              timeout=5)
    httpx.get(f"{instance.dashboard_url}/api/audit", headers={"authorization": "Bearer wrong"}, timeout=5)
    assert instance.terminate() == 0

    lines = instance.stderr.splitlines()
    assert len(lines) > 10
    events = []
    for line in lines:
        event = json.loads(line)  # every line is one JSON object
        assert {"timestamp", "level", "message", "target"} <= event.keys(), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", event["timestamp"]), event
        assert event["level"] in {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}
        events.append(event)
    assert any(e["message"].startswith("Helio ") and "listening on" in e["message"] for e in events)
    output = instance.stderr + instance.stdout
    for secret in (upstream_secret, sdk_token, adapter_token, instance.api_secret):
        assert secret not in output


def test_generated_tokens_are_not_written_to_json_logs(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio({"sdk": {"enabled": True}}, upstream=upstream_sse, env={"HELIO_LOG_FORMAT": "json"})
    assert instance.terminate() == 0
    messages = [json.loads(line)["message"] for line in instance.stderr.splitlines()]
    assert any("SDK sideband token: generated, not shown in JSON logs" in m for m in messages)
    assert any("Adapter API token: generated, not shown in JSON logs" in m for m in messages)
    assert not re.search(r"\b[0-9a-f]{64}\b", instance.stderr + instance.stdout)


def test_an_unknown_log_format_is_refused(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(upstream=upstream_sse, env={"HELIO_LOG_FORMAT": "xml"}, wait=False)
    instance.expected_exit = 1
    assert instance.proc.wait(timeout=10) == 1
    assert 'HELIO_LOG_FORMAT must be text or json, not "xml"' in instance.stderr
