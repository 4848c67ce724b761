"""The official MCP conformance suite's server scenarios, direct and through Helio.

The yardstick for a transparent relay: every scenario that passes against the
fixture server directly must pass, with the same result, when the suite talks to
Helio in front of that same fixture. The suite's pre-release line (0.2.x) checks
the scenarios MCP 2026-07-28 requires: the same rule holds, and since the fixture
speaks only the handshake era, Helio's era bridge is what lets them pass at all.
`tests/conformance/run.sh` installs the suite (`@modelcontextprotocol/conformance`,
run on the `node@22` npm package) and the fixture on first use.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import CONFORMANCE_RUN as RUN
from conftest import LOOPBACK, conformance_fixture_server, free_port, wait_until


def _summary(path: Path) -> dict[str, str]:
    lines = [line.split(": ") for line in path.read_text().splitlines() if line.strip()]
    return {name: outcome for name, outcome in lines}


def _run_suite(args: list[str], out: Path) -> dict[str, str]:
    proc = subprocess.run(
        [str(RUN), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.exists(), f"run.sh wrote no summary (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return _summary(out)


@pytest.fixture
def fixture_server() -> Iterator[str]:
    with conformance_fixture_server() as url:
        yield url


def test_server_scenarios_pass_through_helio_as_they_pass_directly(helio, fixture_server, tmp_path):
    direct = _run_suite(["direct"], tmp_path / "direct.txt")
    assert direct, "no scenarios ran directly"
    assert all(outcome == "pass" for outcome in direct.values()), f"fixture fails directly: {direct}"

    # The suite's DNS-rebinding scenario sends a same-origin request (Origin equal
    # to the server's own address) and expects it to be served; an operator who
    # serves browser-based MCP clients from Helio's own origin allowlists it.
    port = free_port()
    instance = helio(
        {
            "upstream": {"url": fixture_server},
            "listen": {"port": port, "allowed_origins": [f"http://{LOOPBACK}:{port}", f"http://localhost:{port}"]},
        }
    )
    proxied = _run_suite(["--url", instance.mcp_url], tmp_path / "proxied.txt")
    assert proxied == direct


# The revision's core scenarios: directly, the handshake-era fixture fails them
# (a sessionless request is refused); through Helio's era bridge they pass.
BRIDGED = {
    "tools-list", "tools-call-simple-text", "tools-call-image", "tools-call-audio",
    "tools-call-embedded-resource", "tools-call-mixed-content", "tools-call-error",
    "tools-call-with-progress", "resources-list", "resources-read-text", "resources-read-binary",
    "resources-templates-read", "prompts-list", "prompts-get-simple", "prompts-get-with-args",
    "prompts-get-embedded-resource", "prompts-get-with-image", "completion-complete",
    "caching", "http-header-validation", "server-sse-multiple-streams", "dns-rebinding-protection",
}


def test_the_2026_07_28_scenarios_pass_through_helio_as_they_do_directly_and_more(helio, fixture_server, tmp_path):
    direct = _run_suite(["direct", "--next"], tmp_path / "next-direct.txt")
    assert direct, "no 2026-07-28 scenarios ran directly"
    port = free_port()
    instance = helio(
        {
            "upstream": {"url": fixture_server},
            "listen": {"port": port, "allowed_origins": [f"http://{LOOPBACK}:{port}", f"http://localhost:{port}"]},
        }
    )
    assert wait_until(lambda: "annotation cache primed" in instance.stderr, 15), instance.stderr
    proxied = _run_suite(["--url", instance.mcp_url, "--next"], tmp_path / "next-proxied.txt")
    passed_direct = {name for name, outcome in direct.items() if outcome == "pass"}
    passed_proxied = {name for name, outcome in proxied.items() if outcome == "pass"}
    assert passed_direct <= passed_proxied, passed_direct - passed_proxied
    assert not BRIDGED & passed_direct, "the fixture was meant to speak only the handshake era"
    assert BRIDGED <= passed_proxied, BRIDGED - passed_proxied
