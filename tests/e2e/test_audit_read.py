"""The audit trail's read side through the real binary: the operator API
(`/api/audit`, `/api/audit/{id}`, `/api/audit/export`, `/api/feed`,
`/api/analytics`) and `helio export`.

Records are inserted straight into the database (audit.path) with Python's
sqlite3, using the table definition from host/src/audit/schema.rs, before Helio
starts: the database is one an earlier Helio left, without rollups or a search
index, so Helio upgrades it while it serves (indexing the records between its
writer's batches). The answers are the same before and after; the last tests
wait for the upgrade and check what it adds. Exports are parsed back with the
json and csv modules.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import HelioInstance, HelioLauncher, minimal_config

SCHEMA_RS = Path(__file__).resolve().parents[2] / "host" / "src" / "audit" / "schema.rs"


def schema_sql() -> str:
    text = SCHEMA_RS.read_text()
    match = re.search(r'pub const SCHEMA: &str = "(.*?)";', text, re.S)
    assert match, "SCHEMA not found in schema.rs"
    return match.group(1)


def schema_columns() -> list[str]:
    text = SCHEMA_RS.read_text()
    match = re.search(r"pub const COLUMNS: &\[&str\] = &\[(.*?)\];", text, re.S)
    assert match, "COLUMNS not found in schema.rs"
    return re.findall(r'"(\w+)"', match.group(1))


COLUMNS = schema_columns()
JSON_COLUMNS = {"tool_input", "evidence_chain", "upstream_response", "metadata", "plugins"}

DEFAULTS: dict[str, Any] = {
    "timestamp": "2025-03-01T00:00:00.000Z",
    "tool_input": {},
    "policy_decision": "allow",
    "total_duration_ms": 2.5,
    "proxy_compute_ms": 0.5,
}

TRICKY_INPUT = {
    "note": 'a,b "quoted"\nnext line\r\nand more',
    "formula": "=1+1",
    "at": "@home",
    "neg": "-5",
    "plus": "+1",
    "tab": "\tx",
}

SAMPLES: list[dict[str, Any]] = [
    {"id": "rec-01", "tool_name": "send_email", "session_id": "sess-a", "created_at": "2025-03-01T10:00:00.000Z",
     "upstream_http_status": 200, "tool_input": {"to": "ops@example.com"}, "plugins": ["rules"]},
    {"id": "rec-02", "tool_name": "delete_record", "policy_decision": "deny", "block_reason": "policy_denied",
     "matched_rule": "no-deletes", "matched_rule_index": 0, "created_at": "2025-03-01T10:30:00.000Z",
     "flagged_destructive": 1, "evidence_chain": {"blocked": True}},
    {"id": "rec-03", "tool_name": "charge", "policy_decision": "spend_limit", "block_reason": "spend_limit_exceeded",
     "session_id": "sess-b", "created_at": "2025-03-01T11:15:00.000Z"},
    {"id": "rec-04", "tool_name": "add", "policy_decision": "dry_run", "dry_run": 1,
     "created_at": "2025-03-02T09:00:00.000Z"},
    {"id": "rec-05", "tool_name": "fail", "upstream_error": "Upstream exploded", "upstream_http_status": 502,
     "upstream_latency_ms": 12.75, "created_at": "2025-03-02T09:00:00.000Z"},
    {"id": "rec-06", "tool_name": "=cmd|' /C calc'!A0", "tool_input": TRICKY_INPUT,
     "matched_rule": "rule, with comma", "created_at": "2025-03-03T00:00:00.000Z", "origin": "adapter-x",
     "session_id": "-1+1"},
]
BULK = 1200  # crosses the export's 500-row chunks
TOTAL = len(SAMPLES) + BULK


def bulk_rows() -> list[dict[str, Any]]:
    start = datetime(2025, 2, 1, tzinfo=timezone.utc)
    return [
        {"id": f"bulk-{i:05d}", "tool_name": "bulk_tool", "created_at": iso(start + timedelta(seconds=i))}
        for i in range(BULK)
    ]


def iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def iso_ms(ms: int) -> str:
    return iso(datetime.fromtimestamp(ms // 1000, timezone.utc).replace(microsecond=(ms % 1000) * 1000))


def insert(db: Path, rows: list[dict[str, Any]]) -> None:
    with sqlite3.connect(db, timeout=10) as conn:
        conn.executescript(schema_sql())
        for row in rows:
            full = {**DEFAULTS, "timestamp": row.get("created_at", DEFAULTS["timestamp"]), **row}
            values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in full.items()]
            conn.execute(
                f"INSERT INTO audit_records ({', '.join(full)}) VALUES ({', '.join('?' * len(full))})",
                values,
            )


@dataclass
class Trail:
    instance: HelioInstance
    db: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.instance.api_secret}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        # httpx replaces a URL's own query with `params` even when it is empty.
        return httpx.get(
            f"{self.instance.dashboard_url}{path}", params=params or None, headers=self.headers, timeout=30
        )

    def ok(self, path: str, **params: Any) -> Any:
        r = self.get(path, **params)
        assert r.status_code == 200, r.text[:500]
        return r.json()

    def ids(self, **params: Any) -> list[str]:
        return [record["id"] for record in self.ok("/api/audit", **params)["data"]]


@pytest.fixture(scope="module")
def trail(module_helio: HelioLauncher, tmp_path_factory: pytest.TempPathFactory) -> Trail:
    db = tmp_path_factory.mktemp("audit-read") / "audit.db"
    insert(db, SAMPLES + bulk_rows())
    # The samples are from 2025: a retention that keeps them.
    instance = module_helio({"audit": {"path": str(db), "retention": "3650d"}})
    return Trail(instance, db)


# ------------------------------------------------------------------------- auth

ROUTES = [
    "/api/audit",
    "/api/audit?tool=send",
    "/api/audit/rec-01",
    "/api/audit/export",
    "/api/audit/export?format=csv",
    "/api/feed",
    "/api/analytics",
]


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_requires_the_secret(trail: Trail, path: str) -> None:
    url = f"{trail.instance.dashboard_url}{path}"
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": trail.instance.api_secret or ""}):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json() == {"error": "Unauthorized"}
    assert httpx.get(url, headers=trail.headers).status_code == 200


# ---------------------------------------------------------------------- listing


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tool": "send_"}, ["rec-01"]),
        ({"tool": "CHARGE"}, ["rec-03"]),
        ({"decision": "deny"}, ["rec-02"]),
        ({"reason": "spend_limit_exceeded"}, ["rec-03"]),
        ({"blocked": "true"}, ["rec-03", "rec-02"]),
        ({"blocked": "false", "from": "2025-03-01"}, ["rec-06", "rec-05", "rec-04", "rec-01"]),
        ({"session": "sess-a"}, ["rec-01"]),
        ({"from": "2025-03-02", "to": "2025-03-02"}, ["rec-05", "rec-04"]),
        ({"from": "2025-03-01T10:30:00.000Z", "to": "2025-03-01T11:15:00.000Z"}, ["rec-03", "rec-02"]),
        ({"from": "2025-03-01T11:30:00+01:00", "to": "2025-03-01T12:15:00+01:00"}, ["rec-03", "rec-02"]),
        ({"q": "ops@example"}, ["rec-01"]),
        ({"q": "exploded"}, ["rec-05"]),
        ({"q": "no-deletes"}, ["rec-02"]),
        ({"origin": "adapter"}, ["rec-06"]),
        ({"record_kind": "tool_call", "from": "2025-03-03"}, ["rec-06"]),
        ({"dry_run": "true"}, ["rec-04"]),
        ({"destructive": "1"}, ["rec-02"]),
        ({"upstream_status_min": "500"}, ["rec-05"]),
        ({"upstream_status_min": "200", "upstream_status_max": "299"}, ["rec-01"]),
        ({"tool": "nothing-like-this"}, []),
    ],
)
def test_filters(trail: Trail, params: dict[str, str], expected: list[str]) -> None:
    body = trail.ok("/api/audit", **params)
    assert [r["id"] for r in body["data"]] == expected
    assert body["total"] == len(expected)


def test_pagination_envelope_and_order(trail: Trail) -> None:
    first = trail.ok("/api/audit")
    assert (first["total"], first["limit"], first["offset"], len(first["data"])) == (TOTAL, 50, 0, 50)
    assert [r["id"] for r in first["data"][:2]] == ["rec-06", "rec-05"]
    seen: list[dict[str, Any]] = []
    for offset in range(0, TOTAL, 1000):
        page = trail.ok("/api/audit", limit=1000, offset=offset)
        assert (page["limit"], page["offset"], page["total"]) == (1000, offset, TOTAL)
        seen += page["data"]
    assert len({r["id"] for r in seen}) == TOTAL
    keys = [(r["created_at"], r["id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    past = trail.ok("/api/audit", offset=TOTAL)
    assert (past["data"], past["total"]) == ([], TOTAL)


def test_one_record_and_unknown_ids(trail: Trail) -> None:
    record = trail.ok("/api/audit/rec-02")["data"]
    assert set(record) == set(COLUMNS)
    assert record["evidence_chain"] == {"blocked": True}
    assert (record["flagged_destructive"], record["dry_run"]) == (True, False)
    assert (record["matched_rule"], record["matched_rule_index"]) == ("no-deletes", 0)
    assert trail.ok("/api/audit/rec-06")["data"]["tool_input"] == TRICKY_INPUT
    for unknown in ("nope", "rec-01%27%20OR%201%3D1"):
        r = trail.get(f"/api/audit/{unknown}")
        assert r.status_code == 404
        assert r.json() == {"error": "Record not found", "code": "not_found"}


def test_feed_is_the_latest_records(trail: Trail) -> None:
    feed = trail.ok("/api/feed")
    assert (feed["total"], feed["limit"], len(feed["data"])) == (TOTAL, 50, 50)
    assert feed["data"][0]["id"] == "rec-06"
    assert [r["id"] for r in trail.ok("/api/feed", limit=2, offset=1)["data"]] == ["rec-05", "rec-04"]


BAD_PARAMETERS = [
    ("/api/audit", {"limit": "0"}, "limit"),
    ("/api/audit", {"limit": "1001"}, "limit"),
    ("/api/audit", {"limit": "abc"}, "limit"),
    ("/api/audit", {"limit": "1e3"}, "limit"),
    ("/api/audit", {"offset": "-1"}, "offset"),
    ("/api/audit", {"blocked": "maybe"}, "blocked"),
    ("/api/audit", {"dry_run": "yes"}, "dry_run"),
    ("/api/audit", {"destructive": "2"}, "destructive"),
    ("/api/audit", {"from": "yesterday"}, "from"),
    ("/api/audit", {"to": "2025-02-30"}, "to"),
    ("/api/audit", {"from": "2025-03-02", "to": "2025-03-01"}, "from"),
    ("/api/audit", {"upstream_status_min": "99"}, "upstream_status_min"),
    ("/api/audit", {"upstream_status_max": "abc"}, "upstream_status_max"),
    ("/api/audit", {"decision": "a b"}, "decision"),
    ("/api/audit", {"tool": "x" * 1025}, "tool"),
    ("/api/audit", {"tol": "send"}, "tol"),
    ("/api/audit?tool=a&tool=b", {}, "tool"),
    ("/api/audit/rec-01", {"x": "1"}, "x"),
    ("/api/feed", {"limit": "201"}, "limit"),
    ("/api/feed", {"tool": "send"}, "tool"),
    ("/api/audit/export", {"format": "xml"}, "format"),
    ("/api/audit/export", {"limit": "100001"}, "limit"),
    ("/api/audit/export", {"from": "2025-13-01"}, "from"),
    ("/api/analytics", {"bucket": "day"}, "bucket"),
    ("/api/analytics", {"top": "0"}, "top"),
    ("/api/analytics", {"from": "2020-01-01", "to": "2025-01-01", "bucket": "minute"}, "bucket"),
]


@pytest.mark.parametrize(("path", "params", "parameter"), BAD_PARAMETERS)
def test_bad_parameters_are_400_with_a_message(trail: Trail, path: str, params: dict[str, str], parameter: str) -> None:
    r = trail.get(path, **params)
    assert r.status_code == 400, r.text[:500]
    body = r.json()
    assert (body["code"], body["parameter"]) == ("bad_parameter", parameter)
    assert body["error"].startswith(f"{parameter}: "), body


# ----------------------------------------------------------------------- export


def test_json_export_is_oldest_first_and_streamed(trail: Trail) -> None:
    with httpx.stream(
        "GET", f"{trail.instance.dashboard_url}/api/audit/export", headers=trail.headers, timeout=60
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.headers["content-disposition"] == 'attachment; filename="helio-audit-export.json"'
        # Streamed: no length known up front.
        assert "content-length" not in r.headers
        assert r.headers.get("transfer-encoding") == "chunked"
        body = json.loads(r.read())
    assert len(body) == TOTAL
    assert [r["id"] for r in body[:2]] == ["bulk-00000", "bulk-00001"]
    # rec-04 and rec-05 share a created_at: the id breaks the tie.
    assert [r["id"] for r in body[-3:]] == ["rec-04", "rec-05", "rec-06"]
    keys = [(r["created_at"], r["id"]) for r in body]
    assert keys == sorted(keys)
    assert body[-1]["tool_input"] == TRICKY_INPUT


def test_export_filters_and_limit(trail: Trail) -> None:
    assert [r["id"] for r in trail.ok("/api/audit/export", blocked="true")] == ["rec-02", "rec-03"]
    assert len(trail.ok("/api/audit/export", limit=700)) == 700
    assert trail.ok("/api/audit/export", tool="nothing-like-this") == []
    r = trail.get("/api/audit/export", format="csv", columns="all", tool="nothing-like-this")
    assert list(csv.reader(io.StringIO(r.text))) == [COLUMNS]


def test_csv_export_round_trips_through_a_real_parser(trail: Trail) -> None:
    r = trail.get("/api/audit/export", format="csv", columns="all")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="helio-audit-export.csv"'
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert rows[0] == COLUMNS
    assert len(rows) == TOTAL + 1
    by_id = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]}
    tricky = by_id["rec-06"]
    # Formula-looking text is neutralised with a leading quote, nothing else changes.
    assert tricky["tool_name"] == "'=cmd|' /C calc'!A0"
    assert tricky["session_id"] == "'-1+1"
    assert tricky["matched_rule"] == "rule, with comma"
    assert json.loads(tricky["tool_input"]) == TRICKY_INPUT
    assert tricky["plugins"] == "" and tricky["upstream_http_status"] == ""
    assert (tricky["flagged_destructive"], tricky["dry_run"]) == ("false", "false")
    assert by_id["rec-02"]["flagged_destructive"] == "true"
    assert json.loads(by_id["rec-02"]["evidence_chain"]) == {"blocked": True}
    assert by_id["rec-01"]["plugins"] == '["rules"]'
    assert (by_id["rec-05"]["upstream_latency_ms"], by_id["rec-05"]["upstream_http_status"]) == ("12.75", "502")


# -------------------------------------------------------------------- analytics


def test_analytics_counts_and_series(trail: Trail) -> None:
    body = trail.ok("/api/analytics", **{"from": "2025-03-01", "to": "2025-03-03T23:59:59Z"})
    assert (body["from"], body["to"], body["bucket"]) == ("2025-03-01T00:00:00.000Z", "2025-03-03T23:59:59.999Z", "hour")
    assert (body["total"], body["blocked_total"], body["dry_run_total"], body["allowed_total"]) == (6, 2, 1, 3)
    assert {d["decision"]: d["count"] for d in body["by_decision"]} == {"allow": 3, "deny": 1, "spend_limit": 1, "dry_run": 1}
    assert {d["reason"]: d["count"] for d in body["by_block_reason"]} == {"policy_denied": 1, "spend_limit_exceeded": 1}
    assert len(body["top_tools"]) == 6
    assert len(body["series"]) == 72
    counts = {p["bucket"]: p["count"] for p in body["series"] if p["count"]}
    assert counts == {
        "2025-03-01T10:00:00.000Z": 2,
        "2025-03-01T11:00:00.000Z": 1,
        "2025-03-02T09:00:00.000Z": 2,
        "2025-03-03T00:00:00.000Z": 1,
    }
    minutes = trail.ok("/api/analytics", bucket="minute", top=1, **{"from": "2025-03-01T10:00", "to": "2025-03-01T10:59"})
    assert len(minutes["series"]) == 60 and minutes["series"][0] == {"bucket": "2025-03-01T10:00:00.000Z", "count": 1}
    # A tie in count is broken by name.
    assert minutes["top_tools"] == [{"tool_name": "delete_record", "count": 1}]
    default = trail.ok("/api/analytics")
    assert (default["bucket"], len(default["series"])) == ("hour", 25)


# -------------------------------------------------------------------------- CLI


def run_export(helio_bin: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helio_bin), "export", "-c", str(config), *args],
        cwd=config.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def exported_ids(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [r["id"] for r in json.loads(result.stdout)]


def test_cli_export_while_the_proxy_runs(helio_bin: Path, trail: Trail, tmp_path: Path) -> None:
    config = trail.instance.config_path
    everything = run_export(helio_bin, config)
    assert len(exported_ids(everything)) == TOTAL
    assert f"Exported {TOTAL} of {TOTAL} records" in everything.stderr
    cases: list[tuple[tuple[str, ...], list[str]]] = [
        (("--tool", "send"), ["rec-01"]),
        (("--decision", "deny"), ["rec-02"]),
        (("--reason", "spend_limit_exceeded"), ["rec-03"]),
        (("--session", "sess-b"), ["rec-03"]),
        (("--from", "2025-03-02", "--to", "2025-03-02"), ["rec-04", "rec-05"]),
        (("-f", "json", "--from", "2025-03-01T11:00:00Z", "--limit", "2"), ["rec-03", "rec-04"]),
        (("--since", "1h"), []),
    ]
    for args, expected in cases:
        assert exported_ids(run_export(helio_bin, config, *args)) == expected, args
    limited = run_export(helio_bin, config, "--limit", "3")
    assert len(exported_ids(limited)) == 3 and f"Exported 3 of {TOTAL} records" in limited.stderr

    out = tmp_path / "export.csv"
    to_file = run_export(helio_bin, config, "--format", "csv", "--tool", "=cmd", "--out", str(out))
    assert to_file.returncode == 0, to_file.stderr
    assert to_file.stdout == ""
    assert "Exported 1 of 1 records" in to_file.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    rows = list(csv.reader(io.StringIO(out.read_text(), newline="")))
    # The original's 29 columns by default; --columns all adds Helio's own.
    assert rows[0] == COLUMNS[:29] and len(rows) == 2
    assert json.loads(dict(zip(COLUMNS, rows[1], strict=False))["tool_input"]) == TRICKY_INPUT
    every = run_export(helio_bin, config, "--format", "csv", "--tool", "=cmd", "--columns", "all")
    assert next(csv.reader(io.StringIO(every.stdout, newline=""))) == COLUMNS


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--limit", "0"), "--limit: must be a whole number from 1 to 100000"),
        (("--limit", "1e3"), "--limit:"),
        (("--format", "xml"), "--format: must be json or csv"),
        (("--from", "last tuesday"), "--from: must be an ISO-8601"),
        (("--since", "5x"), "--since: must be a duration"),
        (("--since", "1h", "--from", "2025-01-01"), "--since and --from"),
        (("--decision", "not a word"), "--decision:"),
        (("--budgets", "pay", "--tool", "x"), "takes no audit filters such as --tool"),
        (("--budgets", "a:b"), "--budgets:"),
    ],
)
def test_cli_export_rejects_bad_flags(helio_bin: Path, trail: Trail, args: tuple[str, ...], fragment: str) -> None:
    result = run_export(helio_bin, trail.instance.config_path, *args)
    assert result.returncode == 1, result
    assert fragment in result.stderr, result.stderr
    assert result.stdout == ""


def offline_config(tmp_path: Path, db: Path) -> Path:
    config = minimal_config("http://127.0.0.1:9/mcp")
    config["audit"] = {"path": str(db)}
    path = tmp_path / "helio.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_export_since_and_a_missing_database(helio_bin: Path, tmp_path: Path) -> None:
    db = tmp_path / "recent.db"
    config = offline_config(tmp_path, db)
    missing = run_export(helio_bin, config)
    assert missing.returncode == 1 and "no audit database at" in missing.stderr
    now = datetime.now(timezone.utc)
    insert(db, [
        {"id": "old", "tool_name": "t", "created_at": iso(now - timedelta(hours=3))},
        {"id": "new", "tool_name": "t", "created_at": iso(now - timedelta(minutes=5))},
    ])
    assert exported_ids(run_export(helio_bin, config, "--since", "1h")) == ["new"]
    assert exported_ids(run_export(helio_bin, config, "--since", "1d")) == ["old", "new"]


LEDGER_COLUMNS = [
    "id", "budget_name", "bucket_key", "kind", "amount", "currency", "tool_name", "origin",
    "audit_record_id", "timestamp", "timestamp_ms", "created_at",
]


def budget_charge(name: str, bucket: str, amount: float, allowed: bool = True) -> dict[str, Any]:
    return {"name": name, "stage": "budgets", "bucket": bucket, "amount": amount, "allowed": allowed,
            "spent": amount, "limit": 100, "window_ms": None, "reset_at_ms": None}


def test_cli_exports_a_budgets_ledger(helio_bin: Path, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    config = offline_config(tmp_path, db)
    now_ms = int(time.time() * 1000)
    insert(db, [
        {"id": "r1", "tool_name": "stripe", "created_at": iso_ms(now_ms - 2000),
         "evidence_chain": {"budgets": [budget_charge("pay", "global", 10.25)]}},
        {"id": "r2", "tool_name": "paypal", "created_at": iso_ms(now_ms - 1000),
         "evidence_chain": {"budgets": [budget_charge("payroll", "global", 99),
                                        budget_charge("pay", "session:s1", 0.1)]}},
        # Blocked: charged nothing.
        {"id": "r3", "tool_name": "stripe", "created_at": iso_ms(now_ms), "block_reason": "budget_exceeded",
         "evidence_chain": {"budgets": [budget_charge("pay", "global", 500, allowed=False)]}},
    ])
    result = run_export(helio_bin, config, "--budgets", "pay")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["id"], r["bucket_key"], r["amount"], r["tool_name"]) for r in rows] == [
        ("r2:1", "session:s1", 0.1, "paypal"),
        ("r1:0", "global", 10.25, "stripe"),
    ]
    assert set(rows[0]) == set(LEDGER_COLUMNS)
    assert rows[0]["created_at"] == iso_ms(now_ms - 1000) and rows[0]["timestamp_ms"] == now_ms - 1000
    assert rows[0]["audit_record_id"] == "r2" and rows[0]["kind"] == "spend"
    assert "Exported 2 of 2 ledger rows of budget pay" in result.stderr
    assert 'no budget named "pay"' in result.stderr
    as_csv = run_export(helio_bin, config, "--budgets", "pay", "-f", "csv", "--limit", "1")
    assert as_csv.returncode == 0, as_csv.stderr
    parsed = list(csv.reader(io.StringIO(as_csv.stdout, newline="")))
    assert parsed[0] == LEDGER_COLUMNS
    assert parsed[1][1:5] == ["pay", "session:s1", "spend", "0.1"] and len(parsed) == 2


# ---------------------------------------------------------------- the upgrade


def upgraded(db: Path) -> bool:
    with sqlite3.connect(db, timeout=10) as conn:
        row = conn.execute("SELECT value FROM audit_meta WHERE key = 'indexes_built'").fetchone()
        pending = conn.execute("SELECT value FROM audit_meta WHERE key = 'pending_below'").fetchone()
    return row == (1,) and pending == (0,)


def test_the_upgrade_indexes_the_old_records_and_answers_the_same(trail: Trail) -> None:
    deadline = time.monotonic() + 30
    while not upgraded(trail.db):
        assert time.monotonic() < deadline, "the old records were not indexed in 30 s"
        time.sleep(0.2)
    with sqlite3.connect(trail.db) as conn:
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        rolled = conn.execute("SELECT sum(count) FROM audit_rollup_day").fetchone()[0]
    assert {"audit_tool_created", "audit_decision_created"} <= indexes
    assert rolled == TOTAL
    # The same answers as before the upgrade (test_filters ran before it).
    assert trail.ids(tool="send_") == ["rec-01"]
    assert (trail.ok("/api/audit", blocked="true")["total"], trail.ok("/api/audit")["total"]) == (2, TOTAL)
    assert trail.ok("/api/analytics", **{"from": "2025-03-01", "to": "2025-03-03"})["total"] == len(SAMPLES)
    # A search finds whole words, or starts of words written with a *, in
    # any field.
    assert trail.ids(q="explo*") == ["rec-05"]
    assert trail.ids(q="explo") == []
    assert trail.ids(q="example ops") == ["rec-01"]
    assert trail.ids(q="sess*") == ["rec-03", "rec-01"]
    assert trail.ids(q="ploded*") == []
    # Cursors page through everything once, newest first.
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        page = trail.ok("/api/audit", **params)
        seen += [r["id"] for r in page["data"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": 500, "cursor": page["next_cursor"]}
    assert len(seen) == len(set(seen)) == TOTAL
    assert seen[:2] == ["rec-06", "rec-05"]
    # A deep offset lands where the cursor does.
    assert trail.ids(limit=3, offset=1000) == seen[1000:1003]


def test_bad_searches_and_cursors_are_400(trail: Trail) -> None:
    for params, parameter in (
        ({"q": "%%"}, "q"),
        ({"q": " ".join(["w"] * 17)}, "q"),
        ({"cursor": "nonsense"}, "cursor"),
        ({"cursor": "2025-03-01T00:00:00.000Z~1", "offset": "5"}, "cursor"),
    ):
        r = trail.get("/api/audit", **params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["parameter"] == parameter
