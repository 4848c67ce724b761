"""Every example under examples/ is a working configuration: each `helio.yaml`
passes `helio validate`, and the examples that need no outside service
(Slack) run as their READMEs say, against Helio's own demo server over stdio.
(examples/adapter-loop runs in test_adapter_api.py.)"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import RawMcp, free_ports, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CONFIGS = sorted(EXAMPLES.glob("*/helio.yaml"))
SECRET = secrets.token_hex(32)
# What the examples take from the environment.
ENV = {
    "HELIO_DASHBOARD_SECRET": SECRET,
    "HELIO_DEMO_API_SECRET": SECRET,
    "HELIO_DEMO_UPSTREAM_URL": "http://127.0.0.1:9/mcp",
    "HELIO_ADAPTER_TOKEN": secrets.token_hex(32),
    "SLACK_BOT_TOKEN": "xoxb-example-test",
    "SLACK_SIGNING_SECRET": secrets.token_hex(16),
    "SLACK_FINANCE_APPROVER": "U0FINANCE",
    "SLACK_SUPPORT_LEAD": "U0SUPPORT",
}


def environment(helio_bin: Path) -> dict[str, str]:
    return {**os.environ, **ENV, "PATH": f"{helio_bin.parent}:{os.environ['PATH']}"}


def test_every_example_has_a_readme_and_a_config() -> None:
    names = {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    assert {"basic", "spend-limits", "budgets", "slack-approvals", "finance-router", "card-guard"} <= names
    for name in names:
        assert (EXAMPLES / name / "README.md").is_file() or name == "demo", name
        assert (EXAMPLES / name / "helio.yaml").is_file(), name


@pytest.mark.parametrize("config", CONFIGS, ids=[c.parent.name for c in CONFIGS])
def test_every_example_config_is_valid(helio_bin: Path, config: Path) -> None:
    run = subprocess.run([str(helio_bin), "validate", "-c", str(config.relative_to(ROOT))], cwd=ROOT,
                         env=environment(helio_bin), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Config is valid" in run.stdout + run.stderr


@contextmanager
def running(helio_bin: Path, tmp_path: Path, name: str) -> Iterator[dict[str, str]]:
    """The example's helio.yaml, started from a copy with free ports, its
    database in `tmp_path` and its plugin paths made absolute."""
    example = EXAMPLES / name
    config: dict[str, Any] = yaml.safe_load((example / "helio.yaml").read_text())
    mcp, dashboard = free_ports(2)
    config["listen"]["port"], config["dashboard"]["port"] = mcp, dashboard
    for plugin in [*config.get("plugins", []), *config.get("extractors", [])]:
        plugin["path"] = str(example / plugin["path"])
    (tmp_path / "helio.yaml").write_text(yaml.safe_dump(config))
    with open(tmp_path / "helio.log", "wb") as log:
        proc = subprocess.Popen([str(helio_bin), "start", "-c", "helio.yaml"], cwd=tmp_path,
                                env=environment(helio_bin), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    urls = {"mcp": f"http://127.0.0.1:{mcp}/mcp", "api": f"http://127.0.0.1:{dashboard}/api"}
    try:
        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{mcp}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(up, timeout=20), (tmp_path / "helio.log").read_text()
        yield urls
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0, (tmp_path / "helio.log").read_text()


def call(raw: RawMcp, tool: str, arguments: dict[str, Any]) -> str:
    return json.dumps(raw.call_tool(tool, arguments).final())


def test_basic_reads_and_refuses_to_destroy(helio_bin: Path, tmp_path: Path) -> None:
    with running(helio_bin, tmp_path, "basic") as urls, RawMcp(urls["mcp"]) as raw:
        raw.initialize()
        assert '"result"' in call(raw, "lookup_order", {"order_id": "ORD-1001"})
        denied = call(raw, "delete_record", {"record_type": "customer", "record_id": "c1"})
        assert "Destructive tools are disabled for agents." in denied and "no-destructive-tools" in denied


def test_spend_limits_per_tool_and_per_session(helio_bin: Path, tmp_path: Path) -> None:
    with running(helio_bin, tmp_path, "spend-limits") as urls:
        with RawMcp(urls["mcp"], headers={"x-helio-session-id": "s1"}) as raw:
            raw.initialize()
            pay = {"currency": "USD", "recipient": "acme"}
            assert '"result"' in call(raw, "create_payment", {**pay, "amount": 150})
            assert "spend_limited" in call(raw, "create_payment", {**pay, "amount": 60})
            assert '"result"' in call(raw, "process_refund", {"order_id": "ORD-1001", "amount": 80})
            assert "spend_limited" in call(raw, "process_refund", {"order_id": "ORD-1001", "amount": 30})
        with RawMcp(urls["mcp"], headers={"x-helio-session-id": "s2"}) as raw:
            raw.initialize()
            # Another session has its own refund allowance.
            assert '"result"' in call(raw, "process_refund", {"order_id": "ORD-1001", "amount": 30})


def test_budgets_hold_past_the_session_pot_and_cap_a_category(helio_bin: Path, tmp_path: Path) -> None:
    operator = {"authorization": f"Bearer {SECRET}"}
    with running(helio_bin, tmp_path, "budgets") as urls:
        with RawMcp(urls["mcp"], headers={"x-helio-session-id": "s1"}) as raw:
            raw.initialize()
            assert '"result"' in call(raw, "create_payment", {"amount": 250, "currency": "USD", "recipient": "acme"})
            # Past the session's 300: held on a budget ticket; the operator approves.
            pending: list[dict[str, Any]] = []

            def held() -> bool:
                pending[:] = httpx.get(f"{urls['api']}/approvals?status=pending", headers=operator,
                                       timeout=5).json()["data"]
                return bool(pending)

            answers: list[str] = []
            payment = threading.Thread(target=lambda: answers.append(call(raw, "create_payment", {
                "amount": 100, "currency": "USD", "recipient": "supplier-acme"})))
            payment.start()
            assert wait_until(held, timeout=10)
            assert pending[0]["breached_budgets"][0]["name"] == "session-spend"
            httpx.post(f"{urls['api']}/approvals/{pending[0]['id']}/approve", json={"approved_by": "ops"},
                       headers=operator, timeout=5).raise_for_status()
            payment.join(timeout=15)
            assert '"result"' in answers[0], answers
        with RawMcp(urls["mcp"], headers={"x-helio-session-id": "s2"}) as raw:
            raw.initialize()
            # The supplier cap is across sessions and denies outright.
            refused = call(raw, "create_payment", {"amount": 950, "currency": "USD", "recipient": "supplier-x"})
            assert "budget_exceeded" in refused and "supplier-payments" in refused
        budgets = httpx.get(f"{urls['api']}/budgets", headers=operator, timeout=5).json()
        assert {b["name"] for b in budgets["budgets"]} >= {"session-spend", "supplier-payments"}


def test_card_guard_keeps_card_numbers_from_the_upstream(helio_bin: Path, tmp_path: Path) -> None:
    if not (EXAMPLES / "card-guard/target/wasm32-wasip2/release/card_guard.wasm").is_file():
        pytest.fail("examples/card-guard is not built (scripts/test.sh builds it)")
    with running(helio_bin, tmp_path, "card-guard") as urls, RawMcp(urls["mcp"]) as raw:
        raw.initialize()
        blocked = call(raw, "create_payment", {"amount": 5, "currency": "USD", "recipient": "acme",
                                               "card": "4111 1111 1111 1111"})
        assert "card_number_detected" in blocked
        assert '"result"' in call(raw, "create_payment", {"amount": 5, "currency": "USD", "recipient": "acme"})


def test_pii_guard_keeps_pii_from_the_upstream_and_the_audit_trail(helio_bin: Path, tmp_path: Path) -> None:
    """The SDK example (contract 0.2): blocks a call carrying an e-mail
    address anywhere in its arguments, and the record keeps none of it."""
    if not (EXAMPLES / "pii-guard/target/wasm32-wasip2/release/pii_guard.wasm").is_file():
        pytest.fail("examples/pii-guard is not built (scripts/test.sh builds it)")
    address = "someone.private@example.com"
    with running(helio_bin, tmp_path, "pii-guard") as urls, RawMcp(urls["mcp"]) as raw:
        raw.initialize()
        blocked = call(raw, "create_payment", {"amount": 5, "currency": "USD", "recipient": "acme",
                                               "notify": {"contacts": [{"email": address}]}})
        assert "pii_detected" in blocked and "$.notify.contacts.0.email" in blocked, blocked
        assert address not in blocked
        assert '"result"' in call(raw, "create_payment", {"amount": 5, "currency": "USD", "recipient": "acme"})
        # Arguments with more values than a stage may be shown at once are
        # refused, never judged on the part that fit.
        padded = call(raw, "create_payment", {"amount": 5, "currency": "USD", "recipient": "acme",
                                              "pad": [0] * 10_001, "note": "pad.person@example.com"})
        assert "plugin_error" in padded and "pad.person" not in padded, padded
        records: list[dict[str, Any]] = []

        def recorded() -> bool:
            records[:] = httpx.get(f"{urls['api']}/audit", params={"tool": "create_payment"}, timeout=5).json()["data"]
            return len(records) >= 3
        assert wait_until(recorded, timeout=5), records
    assert address not in json.dumps(records)
    denied = next(r for r in records if r["policy_decision"] == "deny" and "notify" in r["tool_input"])
    assert denied["tool_input"]["notify"]["contacts"][0]["email"] == "[REDACTED]"
    assert denied["evidence_chain"]["decision"]["stage"] == "pii-guard"


def test_spend_extractor_counts_line_items_in_the_limit_and_the_budget(helio_bin: Path, tmp_path: Path) -> None:
    """A spend limit and a budget read the amount through an extractor
    component (line items in cents, the currency in another field)."""
    if not (EXAMPLES / "spend-extractor/target/wasm32-wasip2/release/spend_extractor.wasm").is_file():
        pytest.fail("examples/spend-extractor is not built (scripts/test.sh builds it)")

    def payment(items: list[dict[str, Any]], currency: str = "usd") -> dict[str, Any]:
        return {"amount": 1, "currency": currency, "recipient": "acme", "items": items}

    with running(helio_bin, tmp_path, "spend-extractor") as urls, RawMcp(urls["mcp"]) as raw:
        raw.initialize()
        # 3 × 19.99 + 0.01 = 59.98 of the 100 USD an hour.
        assert '"result"' in call(raw, "create_payment", payment([{"unit_cents": 1999, "qty": 3}, {"unit_cents": 1}]))
        over = call(raw, "create_payment", payment([{"unit_cents": 5000}]))
        assert "spend_limited" in over and "59.98 of 100 USD" in over, over
        # Another currency is never counted as dollars.
        euros = call(raw, "create_payment", payment([{"unit_cents": 100}], currency="eur"))
        assert 'invalid amount for spend extractor \\"line-items\\"' in euros, euros
        assert "EUR" not in json.loads(euros)["error"]["message"]
        # An amount the extractor cannot read blocks the call.
        fraction = call(raw, "create_payment", payment([{"unit_cents": 12.5}]))
        assert "invalid amount for spend extractor" in fraction
        # No line items: nothing spent, nothing counted.
        assert '"result"' in call(raw, "create_payment", {"amount": 1, "currency": "usd", "recipient": "acme"})
        budgets = httpx.get(f"{urls['api']}/budgets", timeout=5).json()["budgets"]
        monthly = next(b for b in budgets if b["name"] == "monthly-payments")
        assert "59.98" in json.dumps(monthly), monthly
        records: list[dict[str, Any]] = []

        def recorded() -> bool:
            records[:] = httpx.get(f"{urls['api']}/audit", params={"tool": "create_payment"}, timeout=5).json()["data"]
            return len(records) >= 5
        assert wait_until(recorded, timeout=5), records
    reasons = json.dumps([r["evidence_chain"] for r in records if r["policy_decision"] != "allow"])
    assert "the call's amount is in EUR; this limit counts USD" in reasons, reasons
    assert "is not a whole, non-negative number" in reasons, reasons
