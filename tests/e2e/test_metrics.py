"""Prometheus metrics at `GET /metrics` on the operator port: exact counts
after a known workload, bounded labels, behind the operator's credentials
unless `dashboard.metrics_public`. The real binary, scraped over HTTP and
parsed as the exposition format."""

from __future__ import annotations

import re

import httpx

from conftest import HelioInstance, HelioLauncher, RawMcp, Upstream, wait_until

POLICIES = {"rules": [
    {"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"},
    {"name": "rehearse-payments", "match": {"tool": "create_payment"}, "action": "dry_run"},
]}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def scrape(instance: HelioInstance, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{instance.dashboard_url}/metrics", headers=headers or {}, timeout=5)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """`{(name, labels): value}` from OpenMetrics text; every line must parse."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not an exposition line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        out[(match.group(1), labels)] = float(match.group(4))
    assert text.rstrip().endswith("# EOF")
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_a_known_workload_exactly(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio({"policies": POLICIES}, upstream=upstream_sse)
    operator = {"authorization": f"Bearer {instance.api_secret}"}
    assert scrape(instance).status_code == 401, "behind the operator's credentials"
    assert wait_until(lambda: value(samples(scrape(instance, operator).text), "helio_upstream_up") == 1, timeout=10)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        for i in range(3):
            raw.call_tool("echo", {"text": f"hello {i}"}).final()
        for i in range(2):
            raw.call_tool("delete_record", {"id": f"r{i}"}).final()
        raw.call_tool("create_payment", {"amount": 5}).final()

    response = scrape(instance, operator)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    found = samples(response.text)
    assert value(found, "helio_calls_total", tool="echo", decision="allowed") == 3
    assert value(found, "helio_calls_total", tool="delete_record", decision="blocked") == 2
    assert value(found, "helio_calls_total", tool="create_payment", decision="dry_run") == 1
    assert value(found, "helio_blocks_total", reason="policy_denied") == 2
    assert value(found, "helio_governance_duration_seconds_count") == 6
    assert value(found, "helio_upstream_duration_seconds_count") == 3
    stage_counts = {dict(labels)["stage"]: v for (name, labels), v in found.items()
                    if name == "helio_stage_duration_seconds_count"}
    assert stage_counts and max(stage_counts.values()) == 6, stage_counts
    assert value(found, "helio_build_info", version="0.1.0") == 1
    assert value(found, "helio_approvals_pending") == 0
    assert value(found, "helio_state_errors_total") == 0
    assert wait_until(lambda: value(samples(scrape(instance, operator).text),
                                    "helio_writer_batch_duration_seconds_count", writer="audit") >= 1, timeout=5)
    # Never a session, agent or argument as a label.
    label_names = {key for (_, labels) in found for key, _ in labels}
    assert label_names <= {"tool", "decision", "reason", "stage", "writer", "version", "le"}, label_names
    assert "hello 0" not in response.text


def test_tool_labels_are_bounded(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio({"dashboard": {"metrics_public": True}}, upstream=upstream_sse)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        for i in range(205):
            raw.call_tool(f"tool_{i:03d}", {}).final()
    found = samples(scrape(instance).text)  # public: no credentials
    tools = {dict(labels)["tool"] for (name, labels), _ in found.items() if name == "helio_calls_total"}
    assert len(tools) == 201 and "_other" in tools
    assert sum(v for (name, _), v in found.items() if name == "helio_calls_total") == 205
