"""`helio plugin new`: a stranger's first stage. The scaffold must build for
wasm32-wasip2 and pass its own unit test with nothing but the helio binary and
cargo (the SDK comes with it), load in Helio, and govern a real call."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import HelioLauncher, RawMcp, Upstream
from test_plugins import call, plugin

ROOT = Path(__file__).resolve().parents[2]
# The component workspaces' target directory (scripts/test.sh builds them
# there first), so the SDK's dependencies are already compiled.
TARGET = ROOT / "target" / "components"


def cargo(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARGO_TARGET_DIR": str(TARGET)}
    return subprocess.run(["cargo", *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_a_scaffolded_rust_stage_builds_passes_its_test_and_governs_calls(
        helio_bin: Path, tmp_path: Path, helio: HelioLauncher, upstream_sse: Upstream) -> None:
    created = subprocess.run([str(helio_bin), "plugin", "new", "no-deletes", "--lang", "rust", "--dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "no-deletes"
    assert "cargo build --target wasm32-wasip2 --release" in created.stdout
    assert (project / "helio-plugin" / "wit" / "governance.wit").is_file()
    again = subprocess.run([str(helio_bin), "plugin", "new", "no-deletes", "--dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr

    tested = cargo(project, "test", "--quiet")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout, tested.stdout
    built = cargo(project, "build", "--release", "--target", "wasm32-wasip2")
    assert built.returncode == 0, built.stderr
    component = TARGET / "wasm32-wasip2" / "release" / "no_deletes.wasm"

    config = {"blocked_tools": ["delete_record"]}
    checked = subprocess.run([str(helio_bin), "plugin", "check", str(component), "--config", json.dumps(config)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert "helio:governance@0.2.0 observing-policy-stage" in checked.stdout

    instance = helio({"plugins": [plugin("no-deletes", component, config=config)]}, upstream=upstream_sse)
    with RawMcp(instance.mcp_url) as raw:
        raw.initialize()
        blocked = call(raw, "delete_record", {"id": "r1"})
        assert blocked["error"]["data"]["reason"] == "tool_blocked", blocked
        assert "result" in call(raw, "echo", {"text": "fine"})


@pytest.mark.parametrize("lang", ["python", "js"])
def test_a_scaffolded_python_or_js_stage_builds_passes_its_tests_and_loads(
        helio_bin: Path, tmp_path: Path, lang: str) -> None:
    created = subprocess.run([str(helio_bin), "plugin", "new", "tool-gate", "--lang", lang, "--dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "tool-gate"
    assert (project / "wit" / "governance.wit").read_text().startswith("/// The contract between Helio")
    if lang == "python":
        steps = [["./build.sh"]]
    else:
        steps = [["npm", "install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
                 ["npm", "test"], ["npm", "run", "build"]]
    for step in steps:
        done = subprocess.run(step, cwd=project, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{step}: {done.stdout}\n{done.stderr}"
    component = project / "tool_gate.wasm"
    config = json.dumps({"blocked_tools": ["delete_record"]})
    evaluated = subprocess.run([str(helio_bin), "plugin", "eval", str(component), "--config", config,
                                "--call", '{"tool": "delete_record"}'], capture_output=True, text=True, timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr
    verdict = json.loads(evaluated.stdout)
    assert verdict["verdict"] == "deny" and verdict["feedback"]["reason"] == "tool_blocked", verdict
    refused = subprocess.run([str(helio_bin), "plugin", "check", str(component), "--config", '{"blocked_tool": []}'],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "config.blocked_tool: unknown key" in refused.stderr, refused.stderr
