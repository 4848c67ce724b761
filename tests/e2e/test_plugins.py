"""Third-party policy stages (WebAssembly components) through the real binary.

Fault fixtures prove the sandbox fails closed and Helio keeps serving: a plugin
that traps, loops forever, allocates without bound or returns a malformed
verdict blocks the call with `plugin_error`; the example card-guard plugin shows
a real third-party stage end to end. The components are built by
scripts/test.sh (`tests/plugins/`, `examples/card-guard/`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import HelioInstance, HelioLauncher, RawMcp, Upstream, jsonrpc_body_matches, minimal_config, wait_until

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "plugins" / "target" / "wasm32-wasip2" / "release"
CARD_GUARD = ROOT / "examples" / "card-guard" / "target" / "wasm32-wasip2" / "release" / "card_guard.wasm"


def fixture(name: str) -> Path:
    path = FIXTURES / f"{name.replace('-', '_')}.wasm"
    if not path.exists():
        pytest.skip(f"{path} is not built; run scripts/test.sh (or cargo build --manifest-path tests/plugins/Cargo.toml --target wasm32-wasip2 --release)")
    return path


def plugin(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": str(path), **extra}


def call(raw: RawMcp, tool: str, arguments: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
    request_id = f"p-{secrets.token_hex(4)}"
    reply = raw.call_tool(tool, arguments or {}, id=request_id, timeout=timeout)
    final = reply.final(request_id)
    assert final is not None, reply.response.text
    return final


def plugin_error(final: dict[str, Any], plugin_name: str) -> dict[str, Any]:
    assert "error" in final, f"expected plugin_error, got {final}"
    error = final["error"]
    assert error["code"] == -32001
    assert error["data"]["blocked"] is True
    assert error["data"]["reason"] == "plugin_error", error
    assert error["data"]["plugin"] == plugin_name
    return error


@pytest.mark.parametrize(
    ("fixture_name", "config", "fragment"),
    [
        ("fault-trap", {}, "trapped"),
        ("fault-loop", {}, "time limit"),
        ("fault-alloc", {}, "memory limit"),
        ("fault-garbage", {"mode": "bad-extra-json"}, "malformed verdict"),
        ("fault-garbage", {"mode": "empty-reason"}, "malformed verdict"),
        ("fault-garbage", {"mode": "array-extra-json"}, "malformed verdict"),
    ],
)
def test_a_failing_plugin_blocks_the_call_and_helio_keeps_serving(
    helio: HelioLauncher, upstream_sse: Upstream, fixture_name: str, config: dict[str, Any], fragment: str
) -> None:
    path = fixture(fixture_name)
    limits = {"timeout_ms": 100, "memory_mb": 16}
    instance = helio({"plugins": [plugin("faulty", path, config=config, limits=limits)]}, upstream=upstream_sse)
    marker = secrets.token_hex(4)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        for attempt in range(3):
            started = time.monotonic()
            error = plugin_error(call(raw, "echo", {"text": f"{marker}-{attempt}"}, timeout=10), "faulty")
            assert fragment in error["message"], error["message"]
            assert time.monotonic() - started < 5, "a failing plugin must not hold the call"
        # The gateway is still serving: other methods relay, health is fine.
        listed = raw.request("tools/list", {}, id="after-fault").final("after-fault")
        assert listed is not None and "result" in listed
    assert not upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", name="echo") and marker in str(r.get("body")))
    assert 'plugin="faulty"' in instance.stderr or "plugin=faulty" in instance.stderr, instance.stderr
    # The record keeps which stage failed and how, in full.
    operator = {"authorization": f"Bearer {instance.api_secret}"}
    records: list[dict[str, Any]] = []

    def recorded() -> bool:
        records[:] = httpx.get(f"{instance.dashboard_url}/api/audit", params={"tool": "echo"},
                               headers=operator, timeout=5).json()["data"]
        return len(records) >= 3
    assert wait_until(recorded, timeout=5)
    decision = records[0]["evidence_chain"]["decision"]
    assert decision["stage"] == "faulty" and fragment.split()[-1] in decision["failure"], decision
    if fixture_name in ("fault-trap", "fault-garbage"):
        # What went wrong inside the stage (a trap's cause, the verdict's
        # defect) is the operator's: never in what the agent is told.
        detail = decision["failure"].split(": ", 1)[1]
        assert detail and detail not in str(records[0]["evidence_chain"]["blocked"]), decision


def _validate(helio_bin: Path, tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "helio.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run([str(helio_bin), "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)


def test_validate_reports_plugin_config_errors_by_path(helio_bin: Path, tmp_path: Path) -> None:
    config = minimal_config("http://127.0.0.1:9/mcp")
    config["plugins"] = [plugin("picky", fixture("fault-configure"), config={"threshold": "high"})]
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 1, result.stderr
    assert "plugins[0].config.threshold: must be a number" in result.stderr
    assert "plugins[0].config: fixture always rejects its config" in result.stderr


def test_sha256_pin(helio_bin: Path, tmp_path: Path) -> None:
    path = fixture("allow-all")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    config = minimal_config("http://127.0.0.1:9/mcp")
    config["plugins"] = [plugin("pinned", path, sha256=digest)]
    ok = _validate(helio_bin, tmp_path, config)
    assert ok.returncode == 0, ok.stderr
    assert "1 plugin" in ok.stderr
    config["plugins"][0]["sha256"] = "0" * 64
    bad = _validate(helio_bin, tmp_path, config)
    assert bad.returncode == 1
    assert "plugins[0].sha256: sha256 mismatch" in bad.stderr
    assert digest in bad.stderr


def test_a_plugin_that_is_not_a_component_is_refused(helio_bin: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\x00asm\x01\x00\x00\x00")
    config = minimal_config("http://127.0.0.1:9/mcp")
    config["plugins"] = [plugin("junk", junk)]
    result = _validate(helio_bin, tmp_path, config)
    assert result.returncode == 1
    assert "plugins[0].path:" in result.stderr


def test_plugins_can_only_tighten_by_default(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    dry_run_echo = {"rules": [{"name": "try-echo", "match": {"tool": "echo"}, "action": "dry_run"}]}
    tightened = helio(
        {"policies": dry_run_echo, "plugins": [plugin("deny-all", fixture("deny-all"), config={"message": "no calls today"})]},
        upstream=upstream_sse,
    )
    with RawMcp(tightened.mcp_url) as raw:
        raw.initialize()
        final = call(raw, "add", {"a": 1, "b": 2})
        assert final["error"]["message"] == "no calls today"
        assert final["error"]["data"]["reason"] == "fixture_denied"
        assert final["error"]["data"]["rule"] == "deny-all"

    # An allow-all plugin cannot loosen the rule's dry run...
    kept = helio({"policies": dry_run_echo, "plugins": [plugin("allow-all", fixture("allow-all"))]}, upstream=upstream_sse)
    with RawMcp(kept.mcp_url) as raw:
        raw.initialize()
        assert '"dry_run":true' in call(raw, "echo", {"text": "x"})["result"]["content"][0]["text"]

    # ...unless the operator lets it.
    loosened = helio(
        {"policies": dry_run_echo, "plugins": [plugin("allow-all", fixture("allow-all"), may_loosen=True)]},
        upstream=upstream_sse,
    )
    with RawMcp(loosened.mcp_url) as raw:
        raw.initialize()
        assert call(raw, "echo", {"text": "loosened"})["result"]["content"][0]["text"] == "loosened"


def test_a_deny_is_final_even_for_a_loosening_plugin(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(
        {
            "policies": {"rules": [{"name": "no-echo", "match": {"tool": "echo"}, "action": "deny"}]},
            "plugins": [plugin("allow-all", fixture("allow-all"), may_loosen=True)],
        },
        upstream=upstream_sse,
    )
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert call(raw, "echo", {"text": "x"})["error"]["data"]["rule"] == "no-echo"


def test_before_rules_position_and_what_the_plugin_sees(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio(
        {
            "environment": "staging",
            "plugins": [plugin("echo-call", fixture("echo-call"), position="before_rules", config={"deny_tool": "add"})],
        },
        upstream=upstream_sse,
    )
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, 10)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert call(raw, "add", {"a": 1, "b": 2})["error"]["data"]["reason"] == "echo_denied"
        assert "result" in call(raw, "delete_record", {"id": "7"})
    assert wait_until(lambda: "echo-call saw tool=delete_record destructive=true known=true env=staging" in instance.stderr, 5), instance.stderr


def test_the_card_guard_example(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    if not CARD_GUARD.exists():
        pytest.skip(f"{CARD_GUARD} is not built; run scripts/test.sh")
    instance = helio({"plugins": [plugin("card-guard", CARD_GUARD, config={"min_digits": 13})]}, upstream=upstream_sse)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        final = call(raw, "echo", {"text": "charge 4111 1111 1111 1111 please"})
        error = final["error"]
        assert error["data"]["reason"] == "card_number_detected"
        assert "4111" not in error["message"] and "4111" not in str(error["data"])
        assert "result" in call(raw, "echo", {"text": "order 12345 shipped"})


def test_hot_reload_recompiles_plugins(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance: HelioInstance = helio({"plugins": []}, upstream=upstream_sse)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        assert "result" in call(raw, "echo", {"text": "before"})
    config = dict(instance.config)
    config["plugins"] = [plugin("deny-all", fixture("deny-all"))]
    instance.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def denied() -> bool:
        with RawMcp(instance.mcp_url) as raw:
            raw.initialize()
            return "error" in call(raw, "echo", {"text": "after"})

    assert wait_until(denied, 10), instance.stderr


# --- helio plugin check / eval: a component tried offline ------------------------------

CARD_GUARD = Path(__file__).resolve().parents[2] / "examples/card-guard/target/wasm32-wasip2/release/card_guard.wasm"
BUILTIN_RULES = Path(__file__).resolve().parents[2] / "target/plugins/wasm32-wasip2/release/helio_rules.wasm"


def helio_plugin(helio_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helio_bin), "plugin", *map(str, args)], capture_output=True, text=True, timeout=60)


def built(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not built; run scripts/test.sh")
    return path


def test_plugin_check_says_what_a_component_is_and_what_configure_makes_of_a_config(
        helio_bin: Path, tmp_path: Path) -> None:
    checked = helio_plugin(helio_bin, "check", built(CARD_GUARD))
    assert checked.returncode == 0, checked.stderr
    assert "world:    helio:governance@0.1.0 policy-stage" in checked.stdout
    assert "imports:  helio:governance/types@0.1.0, helio:governance/host@0.1.0" in checked.stdout
    assert "wasi:cli/environment@" in checked.stdout and "trap" in checked.stdout
    assert "configure({}): accepted" in checked.stdout

    stateful = helio_plugin(helio_bin, "check", built(BUILTIN_RULES), "--config", json.dumps(
        {"policies": {"rules": [{"name": "paced", "match": {"tool": "send"}, "action": "rate_limit",
                                 "limits": {"max_calls": 2, "window": "1m"}}]}}))
    assert stateful.returncode == 0, stateful.stderr
    assert "helio:governance@0.2.0 observing-policy-stage" in stateful.stdout
    assert 'rate "paced"' in stateful.stdout, stateful.stdout

    # The built-in's configuration is what the host writes for it: a hand-written one
    # with a key the host would not write is refused, not read as "no rules".
    unwrapped = helio_plugin(helio_bin, "check", built(BUILTIN_RULES), "--config", '{"rules": []}')
    assert unwrapped.returncode == 1 and 'config.(whole): unknown key "rules"' in unwrapped.stderr, unwrapped.stderr

    picky = helio_plugin(helio_bin, "check", fixture("fault-configure"), "--config", '{"threshold": "high"}')
    assert picky.returncode == 1
    assert "config.threshold: must be a number" in picky.stderr
    assert "rejected its configuration" in picky.stderr

    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\x00asm\x01\x00\x00\x00")
    refused = helio_plugin(helio_bin, "check", junk)
    assert refused.returncode == 1 and "junk.wasm" in refused.stderr
    missing = helio_plugin(helio_bin, "check", tmp_path / "nope.wasm")
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    bad_config = helio_plugin(helio_bin, "check", built(CARD_GUARD), "--config", "{oops")
    assert bad_config.returncode == 1 and "--config is not JSON" in bad_config.stderr


def test_plugin_eval_runs_one_call_offline_and_prints_the_verdict(helio_bin: Path) -> None:
    card = built(CARD_GUARD)
    denied = helio_plugin(helio_bin, "eval", card, "--call", json.dumps(
        {"tool": "pay", "arguments": {"note": "card 4111 1111 1111 1111"}}))
    assert denied.returncode == 0, denied.stderr
    verdict = json.loads(denied.stdout)
    assert (verdict["verdict"], verdict["action"], verdict["rule"]) == ("deny", "deny", "card-guard")
    assert verdict["feedback"]["reason"] == "card_number_detected"
    assert verdict["feedback"]["extra"] == {"field": "$.note"}
    assert verdict["took_us"] >= 0

    allowed = json.loads(helio_plugin(helio_bin, "eval", card, "--call", '{"tool": "pay", "arguments": {"note": "hi"}}').stdout)
    assert allowed["verdict"] == "allow" and allowed["explanation"] == "no card number found"

    # A stateful stage: what it read or took is shown as the audit record would.
    rules = {"policies": {"rules": [{"name": "paced", "match": {"tool": "send"}, "action": "rate_limit",
                                     "limits": {"max_calls": 2, "window": "1m", "key": "session"}}]}}
    paced = json.loads(helio_plugin(helio_bin, "eval", built(BUILTIN_RULES), "--config", json.dumps(rules),
                                    "--call", '{"tool": "send", "session": "s1"}').stdout)
    assert (paced["verdict"], paced["action"], paced["rule"]) == ("allow", "rate_limit", "paced")
    (window,) = paced["evidence_chain"]["rate_limits"]
    assert (window["rule"], window["bucket"], window["current"], window["limit"]) == ("paced", "session:s1", 1, 2)

    failed = helio_plugin(helio_bin, "eval", fixture("fault-loop"), "--timeout-ms", "20", "--call", '{"tool": "x"}')
    assert failed.returncode == 1
    assert json.loads(failed.stdout) | {"took_us": 0} == {
        "verdict": "failed", "failure": "exceeded its time limit of 20 ms", "took_us": 0}
    assert "plugin_error" in failed.stderr


@pytest.mark.parametrize("call_text, message", [
    ('{"arguments": {}}', "--call.tool is required"),
    ('["send"]', "--call must be a JSON object"),
    ('{"tool": "t", "arguments": {"a": 1, "a": 2}}', "--call: "),
    ('{"tool": "t", "annotations": {"readOnlyHint": "yes"}}', "--call.annotations.readOnlyHint must be a boolean"),
    ('{"tool": "t", "session": 7}', "--call.session must be a string"),
    ('{"tool": "t", "args": {}}', "--call.args: unknown key"),
])
def test_plugin_eval_names_what_is_wrong_with_the_call(helio_bin: Path, call_text: str, message: str) -> None:
    result = helio_plugin(helio_bin, "eval", built(CARD_GUARD), "--call", call_text)
    assert result.returncode == 1 and message in result.stderr, result.stderr
