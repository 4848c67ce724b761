"""The dashboard in a real browser: Debian's Chromium driven through its
ChromeDriver by Selenium (nothing downloads a browser). An operator signs
in, watches an agent's call arrive in the live feed, approves, denies and
break-glasses held calls while the agent waits, filters the audit log and
opens a record's evidence chain, exports CSV, and signs out; an XSS attempt
through a tool name and an argument stays text; a cookie without the CSRF
header changes nothing. Every page is photographed into
target/dashboard-screenshots/ (docs/dashboard.md shows them)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from conftest import HelioInstance, HelioLauncher, RawMcp, Upstream, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path(__file__).resolve().parents[2] / "target" / "dashboard-screenshots"

# What an agent's tool name and arguments may carry into the operator's view.
XSS_TOOL = '<img src=x onerror="window.__pwned=1">'
XSS_ARGUMENT = '<script>window.__pwned=2</script><b onmouseover="window.__pwned=3">hover</b>'

ADAPTER_TOKEN = "browser-test-adapter-token-0123456789abcdef"

POLICY = {
    "policies": {
        "rules": [
            {"name": "big-charges", "match": {"tool": "charge", "input": {"amount": {"gt": 100}}},
             "action": "require_approval", "approval": {"channel": "dashboard", "timeout": "2m"}},
            {"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"},
            {"name": "echo-rate", "match": {"tool": "echo"}, "action": "rate_limit",
             "limits": {"max_calls": 50, "window": "1m"}},
        ]
    },
    "budgets": [
        {"name": "daily-pay", "limit": 1000, "currency": "USD", "window": "1d", "on_exceed": "deny",
         "contributors": [{"match": {"tool": "charge"}, "field": "$.amount"}]},
    ],
}


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("the dashboard tests need Debian's chromium and chromium-driver (scripts/test.sh installs them)")
    profile = tempfile.mkdtemp(prefix="helio-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
        "--window-size=1400,1000", f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def hook(name: str) -> str:
    return f'[data-test="{name}"]'


def find(driver: WebDriver | WebElement, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, hook(name))


def find_all(driver: WebDriver | WebElement, name: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, hook(name))


def wait_for(driver: WebDriver, name: str, timeout: float = 10, visible: bool = True) -> WebElement:
    def present(d: WebDriver) -> WebElement | bool:
        for element in find_all(d, name):
            if not visible or element.is_displayed():
                return element
        return False

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(present, f"no {name}")


def shoot(driver: WebDriver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Transient confirmations would cover the page.
    driver.execute_script("document.getElementById('toasts')?.replaceChildren()")
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def go(driver: WebDriver, instance: HelioInstance, path: str) -> None:
    driver.get(instance.dashboard_url + path)


def sign_in(driver: WebDriver, instance: HelioInstance) -> None:
    go(driver, instance, "/")
    secret = wait_for(driver, "signin-secret")
    secret.clear()
    secret.send_keys(instance.api_secret or "", Keys.ENTER)
    wait_for(driver, "feed-list", visible=False)
    WebDriverWait(driver, 10).until(
        lambda d: find(d, "connection-state").get_attribute("data-state") == "connected"
    )


def call_in_background(instance: HelioInstance, tool: str, arguments: dict[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        with RawMcp(instance.mcp_url, timeout=150) as raw:
            raw.initialize()
            outcome["reply"] = raw.call_tool(tool, arguments).final()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def pending_ticket(driver: WebDriver, amount: float) -> WebElement:
    def found(d: WebDriver) -> WebElement | bool:
        for ticket in find_all(d, "ticket"):
            if f'"amount": {amount}' in find(ticket, "ticket-arguments").text.replace("\n", " "):
                return ticket
        return False

    # The queue re-renders as tickets come and go: an element found a moment ago
    # may be gone; look again.
    wait = WebDriverWait(driver, 15, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(found, f"no ticket for {amount}")


def in_ticket(driver: WebDriver, amount: float, name: str) -> WebElement:
    """The `name` element of the pending ticket for `amount`, clicked."""

    def clicked(d: WebDriver) -> WebElement:
        element = find(pending_ticket(d, amount), name)
        element.click()
        return element

    wait = WebDriverWait(driver, 15, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(clicked, f"could not click {name} on the ticket for {amount}")


def decide_in_modal(driver: WebDriver, reason: str, *, confirm_box: bool = False) -> None:
    modal = wait_for(driver, "action-modal")
    find(modal, "modal-reason").send_keys(reason)
    if confirm_box:
        find(modal, "break-glass-confirm").click()
    confirm = find(modal, "modal-confirm")
    WebDriverWait(driver, 5).until(lambda d: confirm.is_enabled())
    confirm.click()


def close_with_escape(driver: WebDriver) -> None:
    """Escape, where the focus is (inside the open dialog), closes it."""
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    WebDriverWait(driver, 5).until(lambda d: not find_all(d, "detail-dialog"))


def session_cookies(driver: WebDriver) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def test_an_operator_works_the_dashboard_end_to_end(
    helio: HelioLauncher, upstream_sse: Upstream, browser: WebDriver, tmp_path: Path
) -> None:
    instance = helio({**POLICY, "sdk": {"enabled": True}, "audit": {"path": str(tmp_path / "helio.db")}},
                     env={"HELIO_ADAPTER_TOKEN": ADAPTER_TOKEN})
    driver = browser

    # Sign-in: a wrong secret is refused with the server's message.
    go(driver, instance, "/")
    wait_for(driver, "signin-secret").send_keys("not-the-secret", Keys.ENTER)
    error = wait_for(driver, "signin-error")
    assert "Invalid secret" in error.text
    shoot(driver, "sign-in")
    sign_in(driver, instance)
    assert "helio_session" in session_cookies(driver)
    assert find(driver, "version").text.strip() != ""

    # The live feed: a call appears within a second of the agent making it.
    with RawMcp(instance.mcp_url, headers={"x-helio-session-id": "browser-agent"}) as raw:
        raw.initialize()
        raw.call_tool("echo", {"text": "hello from the agent"}).final()
        made = time.monotonic()
        card = WebDriverWait(driver, 1.0, poll_frequency=0.02).until(
            lambda d: next((c for c in find_all(d, "feed-card") if find(c, "card-tool").text == "echo"), False),
            "the call did not reach the live feed within a second",
        )
        seen_after = time.monotonic() - made
        assert "browser-agent" in card.text
        assert find(card, "outcome-badge").text.strip().lower() in {"allow", "allowed"}

        # Hostile values render as text.
        raw.call_tool(XSS_TOOL, {"note": XSS_ARGUMENT}).final()
        raw.call_tool("delete_record", {"id": "r-1"}).final()
        hostile = WebDriverWait(driver, 5).until(
            lambda d: next((c for c in find_all(d, "feed-card") if find(c, "card-tool").text == XSS_TOOL), False)
        )
        WebDriverWait(driver, 5).until(
            lambda d: any(find(c, "card-tool").text == "delete_record" for c in find_all(d, "feed-card"))
        )
    assert driver.execute_script("return window.__pwned") is None
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-test="feed-list"] img[src="x"]')
    shoot(driver, "feed")
    hostile.find_element(By.CSS_SELECTOR, hook("card-tool")).click()
    detail = wait_for(driver, "detail-panel")
    WebDriverWait(driver, 5).until(lambda d: find(d, "detail-panel").get_attribute("aria-busy") == "false")
    assert json.dumps(XSS_ARGUMENT) in find(detail, "detail-arguments").text
    close_with_escape(driver)
    assert driver.execute_script("return window.__pwned") is None

    # Approvals: approve, deny with a reason, break-glass; the agent waits each time.
    approved_thread, approved = call_in_background(instance, "charge", {"amount": 150})
    denied_thread, denied = call_in_background(instance, "charge", {"amount": 250})
    glass_thread, glass = call_in_background(instance, "charge", {"amount": 350})
    find(driver, "nav-approvals").click()
    for amount in (150, 250, 350):
        pending_ticket(driver, amount)
    WebDriverWait(driver, 5).until(lambda d: find(d, "pending-count").text.strip() == "3")
    shoot(driver, "approvals")
    in_ticket(driver, 150, "approve")
    approved_thread.join(timeout=15)
    assert "result" in (approved.get("reply") or {}), approved

    in_ticket(driver, 250, "deny")
    decide_in_modal(driver, "over the weekly cap")
    denied_thread.join(timeout=15)
    assert "over the weekly cap" in json.dumps(denied.get("reply")), denied

    in_ticket(driver, 350, "break-glass")
    modal = wait_for(driver, "action-modal")
    find(modal, "modal-reason").send_keys("incident 42: refund the customer now")
    assert not find(modal, "modal-confirm").is_enabled(), "break-glass needs the explicit confirmation too"
    find(modal, "break-glass-confirm").click()
    WebDriverWait(driver, 5).until(lambda d: find(modal, "modal-confirm").is_enabled())
    find(modal, "modal-confirm").click()
    glass_thread.join(timeout=15)
    assert "result" in (glass.get("reply") or {}), glass
    WebDriverWait(driver, 10).until(lambda d: not find_all(d, "ticket"))
    WebDriverWait(driver, 10).until(lambda d: len(find_all(d, "history-row")) >= 3)
    statuses = {row.find_element(By.CSS_SELECTOR, hook("ticket-status")).text.lower() for row in find_all(driver, "history-row")}
    assert {"approved", "denied"} <= {s.replace(" ", "_") for s in statuses} | statuses, statuses
    shoot(driver, "approvals-history")

    # An adapter's held call waits on the same kind of ticket, which names its door.
    adapter = {"authorization": f"Bearer {ADAPTER_TOKEN}"}
    held = httpx.post(f"{instance.sdk_url}/evaluate", headers=adapter, timeout=10, json={
        "origin": "openclaw", "tool": {"name": "charge"}, "arguments": {"amount": 120}}).json()
    assert held["decision"] == "require_approval", held
    origin = WebDriverWait(driver, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: find(pending_ticket(d, 120), "ticket-origin").text.strip())
    assert origin == "adapter: openclaw"
    in_ticket(driver, 120, "approve")
    decided = httpx.get(f"{instance.sdk_url}/evaluation/{held['evaluation_id']}?wait_ms=10000", headers=adapter,
                        timeout=15).json()
    assert (decided["status"], decided["decision"]) == ("awaiting_report", "allow"), decided

    # The audit log: filter, open a record's evidence chain, export what is shown.
    find(driver, "nav-audit").click()
    tool = wait_for(driver, "filter-tool")
    tool.clear()
    tool.send_keys("charge")
    find(driver, "filter-apply").click()
    WebDriverWait(driver, 10).until(
        lambda d: find_all(d, "audit-row") and all(find(r, "row-tool").text == "charge" for r in find_all(d, "audit-row"))
    )
    assert "tool=charge" in driver.current_url
    rows = find_all(driver, "audit-row")
    assert len(rows) == 3
    rows[0].click()
    WebDriverWait(driver, 5).until(lambda d: find(d, "detail-panel").get_attribute("aria-busy") == "false")
    chain = find(driver, "evidence-chain")
    assert find_all(chain, "evidence-budgets") or find_all(chain, "evidence-approval"), chain.text
    shoot(driver, "audit-detail")
    close_with_escape(driver)
    href = find(driver, "export-csv").get_attribute("href")
    assert "format=csv" in href and "tool=charge" in href
    exported = httpx.get(href, cookies=session_cookies(driver), timeout=10)
    assert exported.status_code == 200
    table = list(csv.reader(io.StringIO(exported.text, newline="")))
    assert table[0][:3] == ["id", "timestamp", "session_id"] and len(table[0]) == 29
    assert {row[4] for row in table[1:]} == {"charge"} and len(table) == 4
    shoot(driver, "audit")

    # A cookie alone cannot change anything: the CSRF header is required.
    status = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch('/api/approvals/none/approve', {method: 'POST', headers: {'content-type': 'application/json'},
               body: JSON.stringify({approved_by: 'forged'})}).then(r => done(r.status), () => done(0));"""
    )
    assert status == 403

    # Limits, budgets, analytics.
    find(driver, "nav-limits").click()
    bar = wait_for(driver, "limit-bar")
    assert float(bar.get_attribute("aria-valuenow") or 0) >= 1
    shoot(driver, "limits")
    find(driver, "nav-budgets").click()
    budget = wait_for(driver, "budget")
    assert budget.get_attribute("data-budget-name") == "daily-pay"
    find(budget, "budget-ledger-link").click()
    WebDriverWait(driver, 10).until(lambda d: len(find_all(d, "ledger-row")) == 2)  # 150 approved, 350 break-glass
    shoot(driver, "budgets")
    find(driver, "nav-analytics").click()
    wait_for(driver, "chart-timeseries")
    WebDriverWait(driver, 10).until(
        lambda d: "6" in find(d, "tile-total").text.split(), f"total: {find(driver, 'tile-total').text!r}"
    )
    shoot(driver, "analytics")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    shoot(driver, "analytics-dark")
    find(driver, "nav-feed").click()
    wait_for(driver, "feed-card")
    shoot(driver, "feed-dark")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})

    # Sign out: the sign-in page, and the cookie no longer opens the API.
    cookie = session_cookies(driver)
    find(driver, "sign-out").click()
    wait_for(driver, "signin-form")
    assert httpx.get(f"{instance.dashboard_url}/api/audit", cookies=cookie, timeout=10).status_code == 401
    print(f"live feed latency: {seen_after * 1000:.0f} ms")


def test_every_page_is_keyboard_reachable_and_loads_nothing_from_elsewhere(
    helio: HelioLauncher, upstream_sse: Upstream, browser: WebDriver
) -> None:
    instance = helio({"dashboard": {"api_secret": None, "allow_open_mode": True}})
    browser.get_log("browser")  # what earlier tests left
    go(browser, instance, "/")
    wait_for(browser, "feed-list", visible=False)
    # Open mode: no sign-in, no sign-out.
    assert not find_all(browser, "signin-form")
    assert not find(browser, "sign-out").is_displayed()
    # Tab from the top reaches the navigation; Enter follows a link.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(12):
        active = browser.switch_to.active_element
        if active.get_attribute("data-test") == "nav-audit":
            break
        active.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("data-test") == "nav-audit"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(browser, "audit-filters")
    assert browser.current_url.endswith("/audit")
    # Every resource the pages loaded came from Helio itself.
    for page in ("/", "/approvals", "/audit", "/limits", "/budgets", "/analytics"):
        go(browser, instance, page)
        wait_for(browser, "nav")
        time.sleep(0.3)
        origins = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)"
        )
        assert set(origins) <= {instance.dashboard_url}, (page, origins)
        paint = browser.execute_script(
            "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null"
        )
        # Measured, not asserted (timings belong in benchmarks): printed
        # for the notes; the target is 300 ms on loopback.
        assert paint is not None, page
        print(f"first contentful paint {page}: {paint:.0f} ms")
        # Nothing the page did broke its Content-Security-Policy or threw.
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, (page, errors)
