"""The `helio` command line: --version, --help, init, validate, start failures.

INVALID_CONFIGS below is the contract for config error wording: each entry is a
small helio.yaml and the fragments `helio validate -c` must print on stderr
(exit code non-zero). A fragment is an exact substring, or an re.Pattern that
must match somewhere in stderr. Align the Rust messages with this table (or
change the table on purpose).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import LOOPBACK, free_port, free_ports

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")

_OK_HEAD = """\
version: "1"
upstream:
  url: http://127.0.0.1:9/mcp
dashboard:
  enabled: false
"""

Fragment = str | re.Pattern[str]

# (id, helio.yaml text, fragments that must all appear on stderr)
INVALID_CONFIGS: list[tuple[str, str, list[Fragment]]] = [
    (
        "unknown-top-level-key",
        _OK_HEAD + "rules: []\n",
        ['(top level): unknown key "rules"'],
    ),
    (
        "near-miss-key-gets-did-you-mean",
        """\
version: "1"
upstream:
  url: http://127.0.0.1:9/mcp
  request_timout: 30s
dashboard:
  enabled: false
""",
        ['upstream: unknown key "request_timout"', 'did you mean "request_timeout"'],
    ),
    (
        "invalid-duration-in-a-rule",
        _OK_HEAD
        + """\
policies:
  rules:
    - name: allow-reads
      match: { annotations: { readOnlyHint: true } }
      action: allow
    - name: no-deletes
      match: { tool: "delete_*" }
      action: deny
    - name: throttle-echo
      match: { tool: echo }
      action: rate_limit
      limits: { max_calls: 5, window: 1 hour }
""",
        ['policies.rules[2].limits.window: invalid duration "1 hour"'],
    ),
    (
        # policies.rules and budgets are validated by the stages that enforce
        # them; their errors come out at the YAML path, like the host's.
        "a-rule-typo-is-reported-by-the-rules-stage",
        _OK_HEAD
        + """\
policies:
  rules:
    - match: { toool: echo }
      action: deny
""",
        ['policies.rules[0].match: unknown key "toool" (did you mean "tool"?)'],
    ),
    (
        "a-budget-problem-is-reported-by-the-budgets-stage",
        _OK_HEAD
        + """\
budgets:
  - name: travel
    limit: 100
    currency: EUR
    window: 1d
    contributors: []
""",
        ["budgets[0].contributors: a budget needs at least one contributor"],
    ),
    (
        "unset-environment-variable",
        """\
version: "1"
upstream:
  url: http://127.0.0.1:9/mcp
  headers:
    X-Api-Key: ${NOT_SET_VAR}
dashboard:
  enabled: false
""",
        ['"NOT_SET_VAR"', re.compile(r"(?i)not set")],
    ),
    (
        "port-out-of-range",
        _OK_HEAD + "listen:\n  port: 70000\n",
        ["listen.port: ", re.compile(r"(?i)out of range")],
    ),
    (
        "upstream-url-not-a-url",
        """\
version: "1"
upstream:
  url: "not a url"
dashboard:
  enabled: false
""",
        ["upstream.url: ", '"not a url"'],
    ),
    (
        "reserved-static-header",
        """\
version: "1"
upstream:
  url: http://127.0.0.1:9/mcp
  headers:
    Content-Type: text/plain
dashboard:
  enabled: false
""",
        ["upstream.headers", re.compile(r"(?i)reserved"), re.compile(r"(?i)content-type")],
    ),
    (
        "several-errors-are-all-listed",
        """\
version: "1"
upstream:
  url: http://127.0.0.1:9/mcp
  request_timeout: 5 minutes
listen:
  port: 70000
dashboard:
  enabled: false
rules: []
""",
        [
            '(top level): unknown key "rules"',
            'upstream.request_timeout: invalid duration "5 minutes"',
            "listen.port: ",
        ],
    ),
    (
        "yaml-syntax-error",
        'version: "1"\nupstream:\n  url: [unclosed\n',
        [re.compile(r"(?i)yaml")],
    ),
]


def run_helio(binary: Path, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args],
        cwd=cwd,
        env=env if env is not None else os.environ.copy(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_fragments(stderr: str, fragments: list[Fragment]) -> None:
    for fragment in fragments:
        if isinstance(fragment, re.Pattern):
            assert fragment.search(stderr), f"stderr does not match {fragment.pattern!r}:\n{stderr}"
        else:
            assert fragment in stderr, f"stderr lacks {fragment!r}:\n{stderr}"


def scaffold_secret(path: Path) -> str:
    config = yaml.safe_load(path.read_text())
    secret = str(config["dashboard"]["api_secret"])
    assert HEX64.fullmatch(secret), secret
    return secret


# --------------------------------------------------------------------- basics


def test_version(helio_bin: Path, tmp_path: Path) -> None:
    result = run_helio(helio_bin, "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\d+\.\d+\.\d+", result.stdout + result.stderr)


def test_help_lists_the_commands(helio_bin: Path, tmp_path: Path) -> None:
    result = run_helio(helio_bin, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("init", "validate", "start"):
        assert command in result.stdout, result.stdout


# ----------------------------------------------------------------------- init


def test_init_writes_a_scaffold_and_prints_the_secret_once(helio_bin: Path, tmp_path: Path) -> None:
    result = run_helio(helio_bin, "init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config_path = tmp_path / "helio.yaml"
    assert config_path.is_file()
    secret = scaffold_secret(config_path)
    assert result.stderr.count(secret) == 1, result.stderr
    assert secret not in result.stdout

    validated = run_helio(helio_bin, "validate", "-c", str(config_path), cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr


def test_init_refuses_to_overwrite_without_force(helio_bin: Path, tmp_path: Path) -> None:
    assert run_helio(helio_bin, "init", cwd=tmp_path).returncode == 0
    config_path = tmp_path / "helio.yaml"
    before = config_path.read_bytes()
    again = run_helio(helio_bin, "init", cwd=tmp_path)
    assert again.returncode != 0
    assert config_path.read_bytes() == before
    assert "helio.yaml" in again.stderr, again.stderr

    secrets_seen = {scaffold_secret(config_path)}
    for flag in ("--force", "-f"):
        forced = run_helio(helio_bin, "init", flag, cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr
        secret = scaffold_secret(config_path)
        assert secret not in secrets_seen, "overwrite must generate a new secret"
        assert forced.stderr.count(secret) == 1
        secrets_seen.add(secret)


def test_init_output_path(helio_bin: Path, tmp_path: Path) -> None:
    result = run_helio(helio_bin, "init", "-o", "other.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "other.yaml").is_file()
    assert not (tmp_path / "helio.yaml").exists()
    scaffold_secret(tmp_path / "other.yaml")
    long_form = run_helio(helio_bin, "init", "--output", str(tmp_path / "nested-other.yaml"), cwd=tmp_path)
    assert long_form.returncode == 0, long_form.stderr
    assert (tmp_path / "nested-other.yaml").is_file()


# ------------------------------------------------------------------- validate


def test_validate_accepts_a_minimal_config(helio_bin: Path, tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(_OK_HEAD)
    result = run_helio(helio_bin, "validate", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("text", "fragments"), [(t, f) for _, t, f in INVALID_CONFIGS], ids=[i for i, _, _ in INVALID_CONFIGS])
def test_validate_rejects(helio_bin: Path, tmp_path: Path, text: str, fragments: list[Fragment]) -> None:
    path = tmp_path / "helio.yaml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "NOT_SET_VAR"}
    result = run_helio(helio_bin, "validate", "-c", str(path), cwd=tmp_path, env=env)
    assert result.returncode != 0, f"accepted an invalid config:\n{text}\nstdout:\n{result.stdout}"
    assert_fragments(result.stderr, fragments)


def test_start_rejects_an_invalid_config_with_the_same_message(helio_bin: Path, tmp_path: Path) -> None:
    _, text, fragments = INVALID_CONFIGS[0]
    path = tmp_path / "helio.yaml"
    path.write_text(text)
    result = run_helio(helio_bin, "start", "-c", str(path), cwd=tmp_path, timeout=15)
    assert result.returncode != 0
    assert_fragments(result.stderr, fragments)


# ---------------------------------------------------------------------- start


def test_start_fails_when_the_port_is_taken(helio_bin: Path, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        dashboard_port, sdk_port = free_ports(2)
        config = {
            "version": "1",
            "upstream": {"url": f"http://{LOOPBACK}:{free_port()}/mcp", "request_timeout": "30s"},
            "listen": {"host": LOOPBACK, "port": port},
            "dashboard": {"enabled": True, "host": LOOPBACK, "port": dashboard_port, "api_secret": secrets.token_hex(32)},
            "sdk": {"enabled": False, "host": LOOPBACK, "port": sdk_port},
        }
        path = tmp_path / "helio.yaml"
        path.write_text(yaml.safe_dump(config))
        try:
            result = run_helio(helio_bin, "start", "-c", str(path), cwd=tmp_path, timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"helio start kept running although 127.0.0.1:{port} is taken")
    assert result.returncode != 0
    assert str(port) in result.stderr, result.stderr
    assert re.search(r"(?i)in use", result.stderr), result.stderr
