"""The operator API as a drop-in for the original's (spec §10): browser
sign-in with a cookie and CSRF token, throttled failed sign-ins, open mode,
`/api/limits` and `/api/budgets*` in the original's shapes, the live feed's
event names and ids, the audit CSV's 29 columns, JSON 404s, and the UI's
pages and protective headers. The real binary, real HTTP."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from typing import Any

import httpx
from conftest import HelioInstance, HelioLauncher, RawMcp, Upstream, wait_until

ORIGINAL_CSV_COLUMNS = [
    "id", "timestamp", "session_id", "agent_id", "tool_name", "tool_input", "policy_decision",
    "block_reason", "matched_rule", "evidence_chain", "approval_status", "approved_by",
    "upstream_response", "upstream_error", "upstream_http_status", "upstream_latency_ms",
    "total_duration_ms", "approval_wait_ms", "proxy_compute_ms", "flagged_destructive", "dry_run",
    "created_at", "environment", "matched_rule_index", "record_kind", "origin", "metadata",
    "session_source", "protocol_version",
]

LEDGER_COLUMNS = [
    "id", "budget_name", "bucket_key", "kind", "amount", "currency", "tool_name", "origin",
    "audit_record_id", "timestamp", "timestamp_ms", "created_at",
]

# Every protected route, with a method and a path that exists.
PROTECTED = [
    ("GET", "/api/audit"), ("GET", "/api/audit/export"), ("GET", "/api/audit/x"), ("GET", "/api/feed"),
    ("GET", "/api/analytics"), ("GET", "/api/approvals"), ("GET", "/api/approvals/x"),
    ("POST", "/api/approvals/x/approve"), ("POST", "/api/approvals/x/deny"),
    ("POST", "/api/approvals/x/break-glass"), ("GET", "/api/limits"), ("GET", "/api/budgets"),
    ("GET", "/api/budgets/b/events"), ("GET", "/api/budgets/b/events/export"), ("GET", "/api/adapters"),
    ("GET", "/api/evidence/s"), ("GET", "/api/events"), ("GET", "/api/tools"), ("POST", "/api/tools/accept"),
    ("GET", "/api/no-such-route"),
]

MONEY = {
    "policies": {
        "rules": [
            {"name": "charge-cap", "match": {"tool": "charge"}, "action": "spend_limit",
             "limits": {"max_spend": {"field": "amount", "limit": 100, "currency": "EUR", "window": "1h"}}},
        ]
    },
    "budgets": [
        {"name": "daily-pay", "limit": 50, "currency": "USD", "window": "1d", "on_exceed": "deny",
         "contributors": [{"match": {"tool": "charge"}, "field": "$.amount"}]},
        {"name": "idle-pot", "limit": 7.5, "currency": "GBP", "window": "session", "key": "session",
         "contributors": [{"match": {"tool": "never_called"}, "field": "$.amount"}]},
    ],
}


def call(raw: RawMcp, tool: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
    return raw.call_tool(tool, arguments).final()


def bearer(instance: HelioInstance) -> dict[str, str]:
    return {"authorization": f"Bearer {instance.api_secret}"}


def sign_in(instance: HelioInstance, client: httpx.Client) -> dict[str, Any]:
    r = client.post(f"{instance.dashboard_url}/api/auth/session", json={"secret": instance.api_secret})
    assert r.status_code == 200, r.text
    return r.json()


def test_browser_sign_in_cookie_csrf_and_sign_out(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio()
    base = instance.dashboard_url
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{base}/api/auth/session").json() == {
            "auth_required": True, "authenticated": False, "expires_at": None, "csrf_token": None,
        }
        assert client.post(f"{base}/api/auth/session", content=b"{nope").json() == {"error": "Invalid JSON"}
        missing = client.post(f"{base}/api/auth/session", json={})
        assert missing.status_code == 400 and missing.json()["error"] == "Validation error"
        wrong = client.post(f"{base}/api/auth/session", json={"secret": "not-it"})
        assert (wrong.status_code, wrong.json()) == (401, {"error": "Invalid secret"})
        assert "set-cookie" not in wrong.headers

        r = client.post(f"{base}/api/auth/session", json={"secret": instance.api_secret})
        assert r.status_code == 200
        body = r.json()
        assert body["auth_required"] and body["authenticated"] and len(body["csrf_token"]) == 64
        assert body["expires_at"].endswith("Z")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("helio_session=")
        for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=28800"):
            assert attribute in cookie, cookie
        assert "Secure" not in cookie  # plain http on loopback
        # The session, as the page sees it after a reload.
        again = client.get(f"{base}/api/auth/session").json()
        assert again["authenticated"] and again["csrf_token"] == body["csrf_token"]

        # The cookie reads; a change needs the CSRF token too.
        assert client.get(f"{base}/api/audit").status_code == 200
        refused = client.post(f"{base}/api/approvals/none/approve", json={"approved_by": "me"})
        assert (refused.status_code, refused.json()) == (403, {"error": "Invalid CSRF token"})
        forged = client.post(f"{base}/api/approvals/none/approve", json={"approved_by": "me"},
                             headers={"x-helio-csrf": "0" * 64})
        assert forged.status_code == 403
        passed = client.post(f"{base}/api/approvals/none/approve", json={"approved_by": "me"},
                             headers={"x-helio-csrf": body["csrf_token"]})
        assert (passed.status_code, passed.json()) == (404, {"error": "Ticket not found"})

        out = client.post(f"{base}/api/auth/logout")
        assert out.json() == {"ok": True} and "Max-Age=0" in out.headers["set-cookie"]
        assert client.get(f"{base}/api/audit").status_code == 401
        assert client.get(f"{base}/api/auth/session").json()["authenticated"] is False

    # Scripts: the bearer needs no CSRF token.
    with httpx.Client(timeout=10, headers=bearer(instance)) as script:
        r = script.post(f"{base}/api/approvals/none/approve", json={"approved_by": "cron"})
        assert r.status_code == 404
        assert script.get(f"{base}/api/auth/session").json()["authenticated"] is True
    # Behind a TLS-terminating proxy the cookie is Secure.
    with httpx.Client(timeout=10) as proxied:
        r = proxied.post(f"{base}/api/auth/session", json={"secret": instance.api_secret},
                         headers={"x-forwarded-proto": "https"})
        assert "; Secure" in r.headers["set-cookie"]


def test_failed_sign_ins_are_throttled_per_address(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio()
    url = f"{instance.dashboard_url}/api/auth/session"
    with httpx.Client(timeout=10) as client:
        for _ in range(5):
            assert client.post(url, json={"secret": "guess"}).status_code == 401
        throttled = client.post(url, json={"secret": instance.api_secret})
        assert throttled.status_code == 429, throttled.text
        assert 0 < int(throttled.headers["retry-after"]) <= 300
        assert "Too many failed sign-in attempts" in throttled.json()["error"]
        # Scripts with the bearer are unaffected.
        assert client.get(f"{instance.dashboard_url}/api/audit", headers=bearer(instance)).status_code == 200
    assert "operator sign-in failed" in instance.stderr
    assert instance.api_secret not in instance.stderr and "guess" not in instance.stderr


def test_every_protected_route_needs_a_credential(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio()
    with httpx.Client(base_url=instance.dashboard_url, timeout=10) as client:
        for method, path in PROTECTED:
            r = client.request(method, path)
            assert (r.status_code, r.json()) == (401, {"error": "Unauthorized"}), (method, path)
        # Open: health and sign-in.
        assert client.get("/api/health").json()["status"] == "ok"
        # Unknown /api paths are JSON, never the UI's page.
        r = client.get("/api/no-such-route", headers=bearer(instance))
        assert (r.status_code, r.json()) == (404, {"error": "Not found"})
        assert r.headers["content-type"].startswith("application/json")


def test_open_mode_serves_everything_without_auth(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio({"dashboard": {"api_secret": None, "allow_open_mode": True}})
    with httpx.Client(base_url=instance.dashboard_url, timeout=10) as client:
        assert client.get("/api/auth/session").json() == {
            "auth_required": False, "authenticated": True, "expires_at": None, "csrf_token": None,
        }
        assert client.get("/api/audit").status_code == 200
        assert client.post("/api/approvals/x/deny", json={"denied_by": "me"}).status_code == 404
        signed = client.post("/api/auth/session", json={"secret": "anything"})
        assert signed.status_code == 200 and "set-cookie" not in signed.headers


def test_the_ui_is_served_with_a_strict_policy(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio()
    with httpx.Client(base_url=instance.dashboard_url, timeout=10) as client:
        for page in ("/", "/approvals", "/audit", "/limits", "/budgets", "/analytics"):
            r = client.get(page)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), page
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
            assert "<script>" not in r.text and 'src="/ui/' in r.text
        js = client.get("/ui/js/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        cached = client.get("/ui/js/app.js", headers={"if-none-match": js.headers["etag"]})
        assert cached.status_code == 304
        assert client.get("/ui/nope.js").status_code == 404
        assert client.get("/ui/../Cargo.toml").status_code == 404
        assert client.get("/elsewhere").status_code == 404


def test_limits_budgets_and_their_ledger_in_the_originals_shapes(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    instance = helio(MONEY)
    with httpx.Client(base_url=instance.dashboard_url, headers=bearer(instance), timeout=10) as api:
        budgets = api.get("/api/budgets").json()["budgets"]
        # Configured pots are listed before anything was charged.
        assert [(b["name"], b["buckets"]) for b in budgets] == [("daily-pay", []), ("idle-pot", [])]
        assert {k: budgets[1][k] for k in ("limit", "currency", "window", "key", "on_exceed")} == {
            "limit": 7.5, "currency": "GBP", "window": "session", "key": "session", "on_exceed": "deny",
        }
        with RawMcp(instance.mcp_url) as raw:
            raw.initialize()
            assert "result" in call(raw, "charge", {"amount": 30})
            assert "result" in call(raw, "charge", {"amount": 12.5})
            refused = call(raw, "charge", {"amount": 20})  # 62.5 > 50: the budget denies
            assert "budget_exceeded" in json.dumps(refused)

        limits = api.get("/api/limits").json()
        assert limits["rate_limits"] == []
        (spend,) = limits["spend_limits"]
        assert spend["key"] == "tool:charge:rule:charge-cap"
        assert (spend["current_spend"], spend["limit"], spend["currency"]) == (42.5, 100, "EUR")
        assert spend["window_ms"] == 3_600_000 and spend["reset_at_ms"] > time.time() * 1000

        (daily, idle) = api.get("/api/budgets").json()["budgets"]
        (bucket,) = daily["buckets"]
        assert bucket["bucket_key"] == "global"
        assert (bucket["spent"], bucket["remaining"]) == (42.5, 7.5)
        assert bucket["last_activity_ms"] <= time.time() * 1000 and bucket["reset_at_ms"] is not None
        assert idle["buckets"] == []

        def ledger_complete() -> bool:
            return api.get("/api/budgets/daily-pay/events").json()["total"] == 2

        assert wait_until(ledger_complete, timeout=5)
        page = api.get("/api/budgets/daily-pay/events", params={"limit": 1}).json()
        assert (page["total"], page["limit"], page["offset"]) == (2, 1, 0)
        (newest,) = page["data"]
        assert set(newest) == set(LEDGER_COLUMNS)
        assert (newest["amount"], newest["kind"], newest["currency"], newest["tool_name"]) == (12.5, "spend", "USD", "charge")
        assert api.get(f"/api/audit/{newest['audit_record_id']}").json()["data"]["tool_input"] == {"amount": 12.5}
        assert api.get("/api/budgets/unknown/events").json() == {"data": [], "total": 0, "limit": 50, "offset": 0}
        assert api.get("/api/budgets/daily-pay/events", params={"limit": 0}).status_code == 400

        export = api.get("/api/budgets/daily-pay/events/export", params={"format": "csv"})
        assert export.status_code == 200
        assert 'filename="helio-budget-daily-pay-events.csv"' in export.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(export.text, newline="")))
        assert rows[0] == LEDGER_COLUMNS and [r[4] for r in rows[1:]] == ["12.5", "30"]
        as_json = api.get("/api/budgets/daily-pay/events/export").json()
        assert [r["amount"] for r in as_json] == [12.5, 30]

        assert api.get("/api/adapters").json() == {"adapters": []}


def test_audit_csv_has_the_originals_29_columns_unless_asked_for_all(
    helio: HelioLauncher, upstream_sse: Upstream
) -> None:
    instance = helio()
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        call(raw, "echo", {"text": "=HYPERLINK(\"x\")"})
    with httpx.Client(base_url=instance.dashboard_url, headers=bearer(instance), timeout=10) as api:
        assert wait_until(lambda: api.get("/api/audit").json()["total"] >= 1, timeout=5)
        default = list(csv.reader(io.StringIO(api.get("/api/audit/export", params={"format": "csv"}).text, newline="")))
        assert default[0] == ORIGINAL_CSV_COLUMNS and len(default[1]) == 29
        # Formula injection stays inert in the arguments' cell.
        assert default[1][5].startswith("{")
        every = list(csv.reader(io.StringIO(
            api.get("/api/audit/export", params={"format": "csv", "columns": "all"}).text, newline="")))
        assert every[0][:29] == ORIGINAL_CSV_COLUMNS and every[0][29:] == ["plugins", "response_truncated"]
        bad = api.get("/api/audit/export", params={"format": "csv", "columns": "some"})
        assert bad.status_code == 400 and bad.json()["parameter"] == "columns"


def test_the_live_feed_speaks_the_originals_events(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    config = {
        **MONEY,
        "policies": {
            "rules": [
                {"name": "echo-rate", "match": {"tool": "echo"}, "action": "rate_limit",
                 "limits": {"max_calls": 2, "window": "1m"}},
                *MONEY["policies"]["rules"],
            ]
        },
        "dashboard": {"sse_heartbeat_interval": "1s"},
    }
    instance = helio(config)
    frames: list[dict[str, Any]] = []
    subscribed = threading.Event()
    done = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{instance.dashboard_url}/api/events", headers=bearer(instance), timeout=30) as r:
            frame: dict[str, Any] = {}
            for line in r.iter_lines():
                if not line:
                    if frame:
                        frames.append(frame)
                        subscribed.set()
                    frame = {}
                    if done.is_set():
                        return
                    continue
                field, _, value = line.partition(": ")
                frame[field] = json.loads(value) if field == "data" else value

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert subscribed.wait(10)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        call(raw, "echo", {"text": "one"})
        call(raw, "echo", {"text": "two"})  # 2 of 2: a limit warning
        call(raw, "charge", {"amount": 45})  # 45 of 50: an update
        call(raw, "charge", {"amount": 10})  # over: a breach

    def seen(name: str) -> list[dict[str, Any]]:
        return [f["data"] for f in frames if f.get("event") == name]

    assert wait_until(lambda: len(seen("action")) == 4 and seen("budget_breached"), timeout=10), frames
    done.set()
    assert frames[0]["event"] == "heartbeat" and "id" not in frames[0]
    ids = [f["id"] for f in frames if f.get("event") != "heartbeat"]
    assert len(ids) == len(set(ids)) and all(f.get("id") for f in frames if f.get("event") != "heartbeat")
    action = seen("action")[0]
    assert set(action) == {
        "id", "tool_name", "policy_decision", "block_reason", "approval_status", "session_id", "session_source",
        "protocol_version", "agent_id", "environment", "timestamp", "total_duration_ms", "approval_wait_ms",
        "proxy_compute_ms", "flagged_destructive", "dry_run", "matched_rule", "matched_rule_index", "origin",
        "record_kind",
    }
    (warning,) = [w for w in seen("limit_warning") if w["type"] == "rate"]
    assert warning == {"key": "tool:echo:rule:echo-rate", "type": "rate", "current": 2, "limit": 2, "utilization": 1.0}
    (update,) = seen("budget_update")
    assert update == {"name": "daily-pay", "bucket_key": "global", "kind": "spend", "amount": 45, "spent": 45,
                      "remaining": 5, "limit": 50, "currency": "USD", "utilization": 0.9}
    (breach,) = seen("budget_breached")
    assert breach == {"name": "daily-pay", "bucket_key": "global", "on_exceed": "deny", "attempted_amount": 10,
                      "spent": 45, "limit": 50, "currency": "USD"}


def test_hostile_sign_ins_and_cookies_are_refused_cleanly(helio: HelioLauncher, upstream_sse: Upstream) -> None:
    instance = helio()
    base = instance.dashboard_url
    with httpx.Client(timeout=20) as client:
        huge = client.post(f"{base}/api/auth/session", content=b'{"secret":"' + b"a" * 3_000_000 + b'"}',
                           headers={"content-type": "application/json"})
        assert huge.status_code == 413
        for body in (b"[]", b'{"secret": 7}', b'{"secret": ""}', b"\xff\xfe", b'{"secret":"x","secret":"y"}'):
            r = client.post(f"{base}/api/auth/session", content=body)
            assert r.status_code in (400, 401), (body, r.status_code, r.text)
            assert "set-cookie" not in r.headers
        # Cookies that are not ours, not text, or far too many: no session.
        for cookie in (b"helio_session=", b"helio_session=\xff\xfe", b"; ".join([b"a=b"] * 500),
                       b"helio_session=" + b"f" * 64 + b"; helio_session=" + b"0" * 64):
            r = client.get(f"{base}/api/audit", headers={"cookie": cookie})
            assert r.status_code == 401, cookie[:40]
        token = sign_in(instance, client)["csrf_token"]
        for csrf in (b"", b"\xff" * 64, token[:-1].encode(), token.encode() + b"0"):
            r = client.post(f"{base}/api/tools/accept", json={"accepted_by": "x"}, headers={"x-helio-csrf": csrf})
            assert r.status_code == 403, csrf
        # The operator API still answers.
        assert client.get(f"{base}/api/health").status_code == 200
