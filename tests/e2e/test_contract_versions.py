"""The plugin contract's versions through the real binary (issue 17).

Helio loads components built against helio:governance@0.1.0 and @0.2.0 side
by side, says which each one targets, and refuses any other version by
name. The 0.2 half is `tests/plugins/sdk-probe`, a stage built with the Rust
SDK (`plugins/sdk`); the 0.1 half is the card-guard example and the 0.1 fault
fixtures; `tests/plugins/future-version` is built against a 0.3.0 no Helio
has. What 0.2 gives a stage is checked on real calls: the agent, origin and
era on the call, numbers as their text, any-depth argument lookups, the
call's own session's evidence only, redaction a stage asks for, a typed stage
error, the observe export, and fault isolation failing closed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import HelioInstance, HelioLauncher, RawMcp, Upstream, jsonrpc_body_matches, minimal_config, wait_until
from test_plugins import CARD_GUARD, call, fixture, plugin, plugin_error

SDK_TOKEN = secrets.token_hex(32)


def card_guard() -> Path:
    if not CARD_GUARD.is_file():
        pytest.fail("examples/card-guard is not built (scripts/test.sh builds it)")
    return CARD_GUARD


def write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "helio.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(helio_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helio_bin), *args], capture_output=True, text=True, timeout=120)


def audit(instance: HelioInstance, tool: str, count: int = 1) -> list[dict[str, Any]]:
    operator = {"authorization": f"Bearer {instance.api_secret}"}
    records: list[dict[str, Any]] = []

    def recorded() -> bool:
        records[:] = httpx.get(f"{instance.dashboard_url}/api/audit", params={"tool": tool},
                               headers=operator, timeout=5).json()["data"]
        return len(records) >= count
    assert wait_until(recorded, timeout=5), records
    return records


# ------------------------------------------------------------ the matrix


def test_validate_names_the_contract_each_component_targets(helio_bin: Path, tmp_path: Path) -> None:
    config = minimal_config("http://127.0.0.1:9/mcp")
    config["policies"] = {"rules": [{"name": "no-deletes", "match": {"tool": "delete_*"}, "action": "deny"}]}
    config["plugins"] = [
        plugin("card-guard", card_guard(), config={"min_digits": 13}),
        plugin("probe", fixture("sdk-probe")),
    ]
    result = run(helio_bin, "validate", "-c", str(write(tmp_path, config)))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    # The built-ins moved to 0.2; the example stays on 0.1 and still loads.
    assert "  rules: helio:governance@0.2.0" in lines, result.stderr
    assert "  probe: helio:governance@0.2.0" in lines, result.stderr
    assert "  approval router: helio:governance@0.2.0" in lines, result.stderr
    assert any(line.startswith("  card-guard: helio:governance@0.1.0 (an older contract, still loaded")
               for line in lines), result.stderr


def test_a_component_of_an_unknown_version_is_refused_by_name(helio_bin: Path, tmp_path: Path) -> None:
    config = minimal_config("http://127.0.0.1:9/mcp")
    config["plugins"] = [plugin("future", fixture("future-version"))]
    result = run(helio_bin, "validate", "-c", str(write(tmp_path, config)))
    assert result.returncode == 1, result.stderr
    expected = ("plugins[0].path: it is built against helio:governance@0.3.0; this version of Helio "
                "loads components built against 0.1.0 and 0.2.0")
    assert expected in result.stderr, result.stderr
    checked = run(helio_bin, "plugin", "check", str(fixture("future-version")))
    assert checked.returncode == 1 and "helio:governance@0.3.0" in checked.stdout + checked.stderr, checked


@pytest.mark.parametrize(("component", "version"), [("card-guard", "0.1.0"), ("sdk-probe", "0.2.0")])
def test_plugin_check_prints_the_version(helio_bin: Path, component: str, version: str) -> None:
    path = card_guard() if component == "card-guard" else fixture(component)
    result = run(helio_bin, "plugin", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert f"helio:governance@{version}" in result.stdout, result.stdout


def test_plugin_eval_runs_a_02_stage_offline(helio_bin: Path) -> None:
    result = run(helio_bin, "plugin", "eval", str(fixture("sdk-probe")), "--config", "{}",
                 "--call", json.dumps({"tool": "file", "arguments": {"a": [{"ssn": "078-05-1120"}]}}))
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "deny" and verdict["feedback"]["reason"] == "pii_detected", verdict
    assert verdict["action"] == "deny" and verdict["rule"] == "no-ssn"
    assert verdict["redact"] == ["$.a.0.ssn"], verdict


# --------------------------------------------- 0.1 and 0.2 in one chain


@pytest.fixture
def both(helio: HelioLauncher, upstream_sse: Upstream) -> HelioInstance:
    return helio(
        {
            "sdk": {"enabled": True},
            "policies": {"rules": [{"name": "needs-ticket", "match": {"tool": "refund"}, "action": "allow",
                                    "evidence": {"requires": ["ticket"]}}]},
            "plugins": [
                plugin("card-guard", card_guard(), config={"min_digits": 13}),
                plugin("probe", fixture("sdk-probe"), config={"redact": ["api_key"], "observe": True}),
            ],
        },
        upstream=upstream_sse,
        env={"HELIO_SDK_TOKEN": SDK_TOKEN},
    )


def test_a_01_and_a_02_stage_govern_the_same_calls(both: HelioInstance, upstream_sse: Upstream) -> None:
    with RawMcp(both.mcp_url, headers={"x-helio-session-id": "matrix"}) as raw:
        raw.initialize()
        # 0.1: the card guard still blocks a card number, as it always has.
        carded = call(raw, "echo", {"text": "pay with 4111 1111 1111 1111"})
        assert carded["error"]["data"]["reason"] == "card_number_detected", carded
        # 0.2: the probe finds `ssn` at any depth and blocks it.
        marker = secrets.token_hex(4)
        ssn = call(raw, "echo", {"text": marker, "people": [{"name": "a", "ssn": "078-05-1120"}]})
        assert ssn["error"]["data"]["reason"] == "pii_detected", ssn
        assert "078-05-1120" not in json.dumps(ssn)
        # Both allow an ordinary call.
        assert "result" in call(raw, "echo", {"text": "plain", "amount": 12.50})
    assert not upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", name="echo") and marker in str(r.get("body")))
    blocked = [r for r in audit(both, "echo", 3) if r.get("policy_decision") == "deny"]
    ssn_record = next(r for r in blocked if "people" in (r["tool_input"] or {}))
    # The stage's redaction reached the record; the record names the stage.
    assert "078-05-1120" not in json.dumps(ssn_record), ssn_record["tool_input"]
    assert ssn_record["tool_input"]["people"][0]["ssn"] == "[REDACTED]"
    assert ssn_record["evidence_chain"]["decision"]["stage"] == "probe"


def test_a_02_stage_reads_agent_origin_era_and_exact_numbers(both: HelioInstance) -> None:
    with RawMcp(both.mcp_url, headers={"x-helio-session-id": "facts"}) as raw:
        raw.initialize()
        assert "result" in call(raw, "echo", {"text": "n", "amount": 12.50})
    line = next(l for l in both.stderr.splitlines() if "sdk-probe saw tool=echo" in l and "session=facts" in l)
    assert "origin=mcp" in line and "era=Handshake" in line, line
    assert "amount=12.5 " in line, line
    assert "agent=-" not in line, line  # the client's clientInfo names it


def test_a_02_stage_reads_only_its_own_sessions_evidence(both: HelioInstance) -> None:
    sdk = {"authorization": f"Bearer {SDK_TOKEN}"}
    attested = httpx.post(f"{both.sdk_url}/evidence", timeout=5, headers=sdk, json={
        "session_id": "holder", "tool_name": "lookup", "evidence_key": "ticket", "evidence_data": {}})
    assert attested.status_code == 201, attested.text
    for session in ("holder", "other"):
        with RawMcp(both.mcp_url, headers={"x-helio-session-id": session}) as raw:
            raw.initialize()
            assert "result" in call(raw, "echo", {"text": session})
    lines = both.stderr.splitlines()
    holder = next(l for l in lines if "sdk-probe saw" in l and "session=holder" in l)
    other = next(l for l in lines if "sdk-probe saw" in l and "session=other" in l)
    assert "ticket=Present" in holder and "ticket=Missing" in other, (holder, other)


def test_a_stage_can_redact_arguments_without_audit_redact(both: HelioInstance, upstream_sse: Upstream) -> None:
    key = f"sk-{secrets.token_hex(8)}"
    with RawMcp(both.mcp_url) as raw:
        raw.initialize()
        assert "result" in call(raw, "echo", {"text": "with key", "api_key": key})
    # The upstream gets the arguments as sent; the record does not keep it.
    assert upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", name="echo") and key in str(r.get("body")))
    record = next(r for r in audit(both, "echo") if "api_key" in (r["tool_input"] or {}))
    assert key not in json.dumps(record), record
    assert record["tool_input"]["api_key"] == "[REDACTED]"


def test_a_stage_observes_how_the_calls_it_allowed_ended(both: HelioInstance) -> None:
    with RawMcp(both.mcp_url) as raw:
        raw.initialize()
        assert "result" in call(raw, "echo", {"text": "observed"})
        failed = call(raw, "fail", {})
        assert failed.get("result", {}).get("isError") is True, failed

    def observed() -> bool:
        return ("sdk-probe observed tool=echo ending=succeeded" in both.stderr
                and "sdk-probe observed tool=fail ending=tool-error" in both.stderr)
    assert wait_until(observed, timeout=5), both.stderr[-2000:]


# ------------------------------------------------ 0.2 fault isolation


@pytest.mark.parametrize(
    ("fail", "fragment", "record"),
    [
        ("panic", "it trapped", "trapped"),
        ("loop", "time limit", "time limit"),
        ("alloc", "memory limit", "memory limit"),
        ("error", "it could not decide", "reported an error: sdk-probe was told to report an error"),
        ("spend-loop", "it trapped", "asked for a call's spend more than 16 times"),
    ],
)
def test_a_failing_02_stage_blocks_the_call_and_helio_keeps_serving(
    helio: HelioLauncher, upstream_sse: Upstream, fail: str, fragment: str, record: str
) -> None:
    instance = helio({"plugins": [plugin("probe", fixture("sdk-probe"),
                                         config={"fail_tool": "echo", "fail": fail},
                                         limits={"timeout_ms": 100, "memory_mb": 16})]},
                     upstream=upstream_sse)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        for _ in range(2):
            error = plugin_error(call(raw, "echo", {"text": "x"}, timeout=10), "probe")
            assert fragment in error["message"], error["message"]
        # Another tool still passes through the same stage.
        assert "result" in call(raw, "add", {"a": 1, "b": 2})
    decision = audit(instance, "echo", 2)[0]["evidence_chain"]["decision"]
    assert decision["stage"] == "probe" and record in decision["failure"], decision
    if fail == "panic":
        # The SDK's panic hook puts the panic in the log, not a WASI trap.
        assert "panicked at sdk-probe/src/lib.rs:" in instance.stderr, instance.stderr[-2000:]
        assert ": sdk-probe was told to panic" in instance.stderr
        assert "get-environment" not in instance.stderr


def test_an_adapters_call_reaches_a_02_stage_with_its_origin_and_is_observed(
        helio: HelioLauncher, upstream_sse: Upstream) -> None:
    adapter_token = secrets.token_hex(32)
    instance = helio({"sdk": {"enabled": True},
                      "plugins": [plugin("probe", fixture("sdk-probe"), config={"observe": True})]},
                     upstream=upstream_sse, env={"HELIO_SDK_TOKEN": SDK_TOKEN, "HELIO_ADAPTER_TOKEN": adapter_token})
    adapter = {"authorization": f"Bearer {adapter_token}"}
    for status, ending in (("success", "succeeded"), ("error", "tool-error")):
        tool = f"run_{status}"
        answer = httpx.post(f"{instance.sdk_url}/evaluate", headers=adapter, timeout=10, json={
            "origin": "openclaw", "agent_id": "planner", "tool": {"name": tool}, "arguments": {"amount": 7}}).json()
        assert answer["decision"] == "allow", answer
        reported = httpx.post(f"{instance.sdk_url}/audit", headers=adapter, timeout=10,
                              json={"evaluation_id": answer["evaluation_id"], "status": status})
        assert reported.status_code == 201, reported.text
        assert wait_until(lambda: f"sdk-probe observed tool={tool} ending={ending}" in instance.stderr, timeout=5), \
            instance.stderr[-2000:]
    line = next(l for l in instance.stderr.splitlines() if "sdk-probe saw tool=run_success" in l)
    assert "origin=openclaw" in line and "era=None" in line and "agent=planner" in line and "amount=7 " in line, line
