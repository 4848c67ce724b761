"""The official MCP conformance suite's server scenarios, direct and through Helio.

The yardstick for a transparent relay: every scenario that passes against the
fixture server directly must pass, with the same result, when the suite talks to
Helio in front of that same fixture. `tests/conformance/run.sh` installs the suite
(`@modelcontextprotocol/conformance`, run on the `node@22` npm package) and the
fixture on first use.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import LOOPBACK, free_port

RUN = Path(__file__).resolve().parent.parent / "conformance" / "run.sh"


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
def fixture_server(tmp_path: Path):
    proc = subprocess.Popen(
        [str(RUN), "serve", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY "):
            url = line.split()[1]
            break
    assert url, "the conformance fixture did not start"
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


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
