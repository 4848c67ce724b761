"""The container image, built from `scratch` with buildah (scripts/image.sh,
the Dockerfile's runtime stage) and run with podman: small, non-root, the
binary alone; healthy by its own HEALTHCHECK; governs an MCP call; stops
cleanly on SIGTERM with the audit trail on its /data volume.

This machine's sandbox needs two podman flags a normal host does not:
`--runtime runc` (crun refuses the host's hybrid cgroup layout) and explicit
`--ulimit`s (podman's rootful defaults exceed the sandbox's hard limits, and
raising them needs CAP_SYS_RESOURCE, which the sandbox does not grant)."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import RawMcp, Upstream, free_ports, wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = secrets.token_hex(32)
PODMAN_RUN = ["podman", "--runtime", "runc", "run", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def sh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    """The image under test: $HELIO_IMAGE (scripts/test.sh builds it), or built now."""
    tag = os.environ.get("HELIO_IMAGE")
    if not tag:
        tag = "localhost/helio:e2e"
        built = sh(str(ROOT / "scripts/image.sh"), tag, timeout=1800)
        assert built.returncode == 0, built.stdout + built.stderr
    return tag


def inspect(image: str) -> dict[str, Any]:
    found = sh("podman", "image", "inspect", image)
    assert found.returncode == 0, found.stderr
    return json.loads(found.stdout)[0]


def test_the_image_is_small_non_root_and_holds_the_binary_alone(image: str) -> None:
    info = inspect(image)
    assert info["Size"] < 40 * 1024 * 1024, f"{info['Size'] / 2**20:.1f} MiB"
    config = info["Config"]
    assert config["User"] == "65532:65532"
    assert set(config["ExposedPorts"]) == {"3000/tcp", "3100/tcp", "3200/tcp"}
    assert set(config["Volumes"]) == {"/config", "/data"}
    assert config["Entrypoint"] == ["/helio"] and config["Cmd"] == ["start", "-c", "/config/helio.yaml"]
    assert info["Healthcheck"]["Test"] == ["CMD", "/helio", "healthcheck"]
    # One layer of files from scratch: the binary, CA certificates, empty dirs.
    listing = sh(*PODMAN_RUN, "--rm", image, "--version")
    assert listing.returncode == 0 and listing.stdout.startswith("helio "), listing.stdout + listing.stderr
    shell = sh(*PODMAN_RUN, "--rm", "--entrypoint", "/bin/sh", image, "-c", "true")
    assert shell.returncode != 0, "no shell in the image"


@pytest.fixture
def container(image: str, upstream_sse: Upstream, tmp_path: Path) -> Iterator[dict[str, Any]]:
    mcp, dashboard, sdk = free_ports(3)
    config = {
        "version": "1",
        "upstream": {"url": upstream_sse.url},
        "listen": {"host": "127.0.0.1", "port": mcp},
        "dashboard": {"enabled": True, "host": "127.0.0.1", "port": dashboard,
                      "api_secret": "${HELIO_DASHBOARD_SECRET}"},
        "sdk": {"enabled": False, "port": sdk},
        "policies": {"rules": [{"name": "no-deletes", "match": {"tool": "delete_record"}, "action": "deny"}]},
        "audit": {"path": "/data/helio.db"},
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "config/helio.yaml").write_text(yaml.safe_dump(config))
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 65532, 65532)
    name = f"helio-e2e-{mcp}"
    # The host's network: the upstream under test listens on the host's loopback.
    started = sh(*PODMAN_RUN, "-d", "--name", name, "--network", "host",
                 "-e", f"HELIO_DASHBOARD_SECRET={SECRET}",
                 "-v", f"{tmp_path / 'config'}:/config:ro", "-v", f"{data}:/data",
                 # The image's own check, at this test's port (its default is 3000).
                 "--health-cmd", json.dumps(["/helio", "healthcheck", "--url", f"http://127.0.0.1:{mcp}/healthz"]),
                 "--health-interval", "0", image)
    assert started.returncode == 0, started.stderr
    try:
        yield {"name": name, "mcp": f"http://127.0.0.1:{mcp}/mcp", "data": data}
    finally:
        sh("podman", "rm", "-f", name)


def test_the_container_governs_calls_and_stops_cleanly(container: dict[str, Any]) -> None:
    name = container["name"]
    # Its own HEALTHCHECK (`/helio healthcheck`, no shell) passes once it serves.
    assert wait_until(lambda: sh("podman", "healthcheck", "run", name).returncode == 0, timeout=30), \
        sh("podman", "logs", name).stderr
    with RawMcp(container["mcp"]) as raw:
        raw.initialize()
        assert "result" in raw.call_tool("echo", {"text": "from the container"}).final()
        assert "policy_denied" in json.dumps(raw.call_tool("delete_record", {"id": "r1"}).final())
    stopped = sh("podman", "stop", "-t", "15", name, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    code = sh("podman", "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert code == "0", sh("podman", "logs", name).stderr
    with sqlite3.connect(container["data"] / "helio.db") as db:
        rows = db.execute("SELECT tool_name, block_reason FROM audit_records ORDER BY created_at").fetchall()
    assert rows == [("echo", None), ("delete_record", "policy_denied")]
    assert SECRET not in sh("podman", "logs", name).stderr


def test_the_compose_demo_is_a_sidecar_with_loopback_ports_and_a_required_secret() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    helio, upstream = compose["services"]["helio"], compose["services"]["demo-mcp"]
    assert compose["networks"]["internal"] == {"internal": True}
    assert set(helio["networks"]) == {"edge", "internal"} and upstream["networks"] == ["internal"]
    assert "ports" not in upstream, "the tool server is reachable through Helio only"
    assert all(port.startswith("127.0.0.1:") for port in helio["ports"])
    assert helio["environment"]["HELIO_DASHBOARD_SECRET"].startswith("${HELIO_DASHBOARD_SECRET:?")
    assert "helio-data:/data" in helio["volumes"] and "helio-data" in compose["volumes"]
    config = yaml.safe_load((ROOT / "examples/compose/helio.yaml").read_text())
    assert config["upstream"]["url"] == "http://demo-mcp:8080/mcp" and config["audit"]["path"].startswith("/data/")


def test_healthcheck_answers_by_exit_code(helio_bin: Path, helio: Any, upstream_sse: Upstream) -> None:
    instance = helio(upstream=upstream_sse)
    ok = sh(str(helio_bin), "healthcheck", "--url", f"{instance.base_url}/healthz")
    assert ok.returncode == 0, ok.stderr
    (closed,) = free_ports(1)
    down = sh(str(helio_bin), "healthcheck", "--url", f"http://127.0.0.1:{closed}/healthz")
    assert down.returncode == 1 and "nothing answers" in down.stderr
    missing = sh(str(helio_bin), "healthcheck", "--url", f"{instance.base_url}/nope")
    assert missing.returncode == 1 and "answered 404" in missing.stderr
    tls = sh(str(helio_bin), "healthcheck", "--url", "https://127.0.0.1/healthz")
    assert tls.returncode == 1 and "plain http" in tls.stderr


def test_the_sidecar_pattern_leaves_the_agent_no_route_but_helio(image: str, tmp_path: Path) -> None:
    """docker-compose.yml's topology, made with podman directly: the tool server on an
    internal network, Helio on it and on the agent's; the verification recipe of
    docs/deployment.md, run from the agent's network (Helio's own binary is the probe:
    the image has no curl)."""
    tag = secrets.token_hex(4)
    internal, edge = f"helio-internal-{tag}", f"helio-edge-{tag}"
    mcp_name, helio_name = f"demo-mcp-{tag}", f"helio-{tag}"
    config = yaml.safe_load((ROOT / "examples/compose/helio.yaml").read_text())
    config["upstream"]["url"] = f"http://{mcp_name}:8080/mcp"
    (tmp_path / "config").mkdir()
    (tmp_path / "config/helio.yaml").write_text(yaml.safe_dump(config))
    (host_port,) = free_ports(1)
    created: list[list[str]] = []
    try:
        for net, internal_only in ((internal, True), (edge, False)):
            made = sh("podman", "network", "create", *(["--internal"] if internal_only else []), net)
            assert made.returncode == 0, made.stderr
            created.append(["podman", "network", "rm", "-f", net])
        created.insert(0, ["podman", "rm", "-f", mcp_name, helio_name])
        started = sh(*PODMAN_RUN, "-d", "--name", mcp_name, "--network", internal, "--entrypoint", "/helio",
                     image, "demo-server", "--listen", "0.0.0.0:8080")
        assert started.returncode == 0, started.stderr
        started = sh(*PODMAN_RUN, "-d", "--name", helio_name, "--network", edge, "--network", internal,
                     "-p", f"127.0.0.1:{host_port}:3000", "-e", f"HELIO_DASHBOARD_SECRET={SECRET}",
                     "-v", f"{tmp_path / 'config'}:/config:ro", image)
        assert started.returncode == 0, started.stderr

        def probe(url: str) -> subprocess.CompletedProcess[str]:
            return sh(*PODMAN_RUN, "--rm", "--network", edge, image, "healthcheck", "--url", url)

        assert wait_until(lambda: probe(f"http://{helio_name}:3000/healthz").returncode == 0, timeout=30), \
            sh("podman", "logs", helio_name).stderr
        direct = probe(f"http://{mcp_name}:8080/mcp")
        assert direct.returncode == 1 and "cannot resolve" in direct.stderr, direct.stderr
        address = sh("podman", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{internal}").IPAddress}}}}',
                     mcp_name).stdout.strip()
        by_address = probe(f"http://{address}:8080/mcp")
        assert by_address.returncode == 1 and "nothing answers" in by_address.stderr, by_address.stderr
        # Through Helio, published on the host's loopback, the tools answer — governed.
        with RawMcp(f"http://127.0.0.1:{host_port}/mcp") as raw:
            raw.initialize()
            assert "result" in raw.call_tool("lookup_order", {"order_id": "ORD-1001"}).final()
            denied = raw.call_tool("delete_record", {"record_type": "customer", "record_id": "c1"}).final()
            assert "Deleting records is disabled for agents." in json.dumps(denied)
    finally:
        for command in created:
            sh(*command)
