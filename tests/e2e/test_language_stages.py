"""Policy stages written in Python (componentize-py) and JavaScript
(componentize-js), built by the README's test command, loaded from helio.yaml
into the real binary and governing real calls — and failing closed when they
misbehave, as a Rust stage does.

The stages: `examples/python-stage` (PII in any argument), `examples/js-stage`
(business hours by the host's clock), and the fault fixtures of
`tests/lang-plugins` (raise/trap, loop, unbounded allocation, stage error).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import HelioInstance, HelioLauncher, RawMcp, Upstream, jsonrpc_body_matches, wait_until
from test_plugins import call, plugin, plugin_error

ROOT = Path(__file__).resolve().parents[2]
PYTHON_STAGE = ROOT / "examples" / "python-stage" / "target" / "python_stage.wasm"
JS_STAGE = ROOT / "examples" / "js-stage" / "target" / "js_stage.wasm"
FAULTS = ROOT / "tests" / "lang-plugins" / "target"
# Enough for CPython or SpiderMonkey (they need 13 and 12 MiB); a first load
# compiles the component (seconds), later ones read Helio's disk cache.
LIMITS = {"timeout_ms": 200, "memory_mb": 32}


def built(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is not built (scripts/test.sh builds it)")
    return path


def records(instance: HelioInstance, tool: str, count: int) -> list[dict[str, Any]]:
    operator = {"authorization": f"Bearer {instance.api_secret}"}
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = httpx.get(f"{instance.dashboard_url}/api/audit", params={"tool": tool},
                             headers=operator, timeout=5).json()["data"]
        return len(found) >= count
    assert wait_until(recorded, timeout=10), found
    return found


def test_a_python_stage_keeps_pii_from_the_upstream_and_the_record(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio({"plugins": [plugin("python-stage", built(PYTHON_STAGE),
                                         config={"detect": ["email", "ssn"]}, limits=LIMITS)]},
                     upstream=upstream_sse)
    address = "someone.private@example.com"
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        blocked = call(raw, "echo", {"text": "hi", "notify": [{"email": address}]})
        assert blocked["error"]["data"]["reason"] == "pii_detected", blocked
        assert blocked["error"]["message"] == "Blocked: email found in $.notify.0.email"
        assert address not in json.dumps(blocked)
        assert "result" in call(raw, "echo", {"text": "nothing personal"})
    assert not upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", name="echo") and address in str(r.get("body")))
    denied = next(r for r in records(instance, "echo", 2) if r["policy_decision"] == "deny")
    assert denied["tool_input"]["notify"][0]["email"] == "[REDACTED]"
    assert denied["evidence_chain"]["decision"]["stage"] == "python-stage"
    assert "python-stage looks for email, ssn" in instance.stderr


def _hours_around_now(open_now: bool) -> dict[str, Any]:
    """A configuration whose hours include now (or not), whatever the time:
    the offset puts local time at noon, the window is around it or after it."""
    now = datetime.now(timezone.utc)
    offset = (12 - now.hour) * 60
    window = {"open": "11:00", "close": "14:00"} if open_now else {"open": "15:00", "close": "16:00"}
    days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    return {"tools": ["delete_*"], "days": days, "utc_offset_minutes": offset, **window}


@pytest.mark.parametrize("open_now", [True, False])
def test_a_javascript_stage_keeps_business_hours_by_the_hosts_clock(
        helio: HelioLauncher, upstream_sse: Upstream, open_now: bool) -> None:
    instance = helio({"plugins": [plugin("business-hours", built(JS_STAGE),
                                         config=_hours_around_now(open_now), limits=LIMITS)]},
                     upstream=upstream_sse)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        deletion = call(raw, "delete_record", {"id": "r1"})
        # Unguarded tools pass either way.
        assert "result" in call(raw, "echo", {"text": "any time"})
    if open_now:
        assert "result" in deletion, deletion
    else:
        assert deletion["error"]["data"]["reason"] == "outside_business_hours", deletion
        assert deletion["error"]["data"]["retry_allowed"] is True
        assert "may only be called" in deletion["error"]["message"]


def test_a_language_stage_with_a_bad_configuration_is_refused_by_path(helio_bin: Path, tmp_path: Path) -> None:
    import subprocess

    for path, config, expected in [
        (PYTHON_STAGE, {"detect": ["email", "iban"]}, "config.detect[1]: must be one of email, ssn"),
        (JS_STAGE, {"tools": ["x"], "days": ["funday"]}, "config.days[0]: must be one of sun"),
    ]:
        checked = subprocess.run([str(helio_bin), "plugin", "check", str(built(path)), "--config", json.dumps(config)],
                                 capture_output=True, text=True, timeout=120)
        assert checked.returncode == 1 and expected in checked.stderr, checked.stderr


@pytest.mark.parametrize(
    ("fixture", "fail", "fragment"),
    [
        ("python_faults", "raise", "it trapped"),
        ("python_faults", "loop", "time limit"),
        ("python_faults", "alloc", "memory limit"),
        ("python_faults", "error", "it could not decide"),
        ("js_faults", "garbage", "it trapped"),
        ("js_faults", "loop", "time limit"),
        ("js_faults", "alloc", "memory limit"),
        ("js_faults", "error", "it could not decide"),
    ],
)
def test_a_failing_language_stage_blocks_the_call_and_helio_keeps_serving(
        helio: HelioLauncher, upstream_sse: Upstream, fixture: str, fail: str, fragment: str) -> None:
    instance = helio({"plugins": [plugin("faulty", built(FAULTS / f"{fixture}.wasm"),
                                         config={"fail": fail}, limits=LIMITS)]},
                     upstream=upstream_sse)
    marker = secrets.token_hex(6)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        for _ in range(2):
            started = time.monotonic()
            error = plugin_error(call(raw, "echo", {"text": marker}, timeout=30), "faulty")
            assert fragment in error["message"], error["message"]
            assert time.monotonic() - started < 10, "a failing stage must not hold the call"
        # The same stage (a fresh instance where the last one was discarded)
        # still lets other calls through.
        assert "result" in call(raw, "add", {"a": 1, "b": 2}, timeout=30)
    assert not upstream_sse.find(lambda r: jsonrpc_body_matches(r, "tools/call", name="echo") and marker in str(r.get("body")))
    decision = records(instance, "echo", 2)[0]["evidence_chain"]["decision"]
    assert decision["stage"] == "faulty" and decision["failure"], decision
