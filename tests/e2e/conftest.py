"""Fixtures for Helio's end-to-end tests.

Everything here runs real processes on loopback: the fixture upstream
(fixtures/upstream_server.py, an MCP SDK server on streamable HTTP) and, when
HELIO_BIN names a built binary, `helio start` in front of it.

Fixture API (see each docstring):
    free_port(), free_ports(n)           loopback ports nobody listens on right now
    upstream_launcher  (session)         .start(mode="sse"|"json", stateless=False) -> Upstream
    upstream_sse, upstream_json (session) one shared upstream of each mode
    upstream           (session, params=["sse", "json"])  runs a test once per mode
        Upstream: .url (…/mcp), .base_url, .mode, .requests() / .find(pred) (what reached
        the upstream: method, headers, JSON body, response status+headers), .reset()
    helio_bin          (session)         Path of HELIO_BIN; skips the test when unset
    helio              (function)        factory: helio(overrides, upstream=..., env=..., wait=True)
                                         -> HelioInstance; SIGTERM + "exit 0 within 15 s" at teardown
    module_helio       (module)          same factory, instances live for the whole module;
                                         .shared(upstream, overrides) reuses one per upstream
        HelioInstance: .mcp_url, .base_url, .dashboard_url, .sdk_url, .api_secret, .config,
        .config_path, .proc, .stderr / .stdout (text so far), .terminate() -> exit code
    minimal_config(upstream_url)         the config every override is deep-merged over
    mcp_session(url, ...)                async context manager: a connected SDK ClientSession
                                         with sampling/elicitation callbacks -> (session, EventLog)
    progress_recorder(events), call_tool_outcome(session, name, args, events)
    RawMcp(url)                          raw JSON-RPC over httpx (exact bytes / headers / ids)

Async tests use anyio's pytest plugin: mark them `pytest.mark.anyio`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

E2E_DIR = Path(__file__).resolve().parent
FIXTURE_SERVER = E2E_DIR / "fixtures" / "upstream_server.py"
CONFORMANCE_RUN = E2E_DIR.parent / "conformance" / "run.sh"
HELIO_BIN_ENV = "HELIO_BIN"

STARTUP_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 15.0
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- ports


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports that were free a moment ago (held open together
    while choosing, so they are distinct)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def port_accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def deep_merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Recursively merge `overrides` over a copy of `base`. Mappings merge key by
    key; any other value replaces. A value of None deletes the key."""
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _tail(path: Path, limit: int = 8000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no output file>"
    return text if len(text) <= limit else "...\n" + text[-limit:]


# ------------------------------------------------------------------------ upstream


@dataclass
class Upstream:
    """A running fixture upstream."""

    mode: str  # "sse" | "json"
    stateless: bool
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    host: str = LOOPBACK

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/mcp"

    def requests(self) -> list[dict[str, Any]]:
        """Every HTTP request that reached /mcp so far: {method, path, headers, body,
        response_headers, status}; header names lower-cased."""
        r = httpx.get(f"{self.base_url}/_test/requests", timeout=5)
        r.raise_for_status()
        return r.json()

    def find(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [req for req in self.requests() if predicate(req)]

    def reset(self) -> None:
        httpx.post(f"{self.base_url}/_test/reset", timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@contextlib.contextmanager
def conformance_fixture_server() -> Iterator[str]:
    """The conformance fixture (an "everything" server on the official TypeScript SDK
    1.x, which speaks only the handshake era); yields its /mcp URL."""
    proc = subprocess.Popen(
        [str(CONFORMANCE_RUN), "serve", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    url = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY "):
            url = line.split()[1]
            break
    assert url, "the conformance fixture did not start"
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def jsonrpc_body_matches(req: dict[str, Any], method: str, **params: Any) -> bool:
    """Whether a recorded upstream request is a JSON-RPC `method` whose params
    (or, for tools/call, arguments) contain `params`."""
    body = req.get("body")
    if not isinstance(body, dict) or body.get("method") != method:
        return False
    p = body.get("params") or {}
    for k, v in params.items():
        if p.get(k, (p.get("arguments") or {}).get(k, object())) != v:
            return False
    return True


class UpstreamLauncher:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Upstream] = []

    def start(
        self, mode: str = "sse", *, stateless: bool = False, modern_only: bool = False, tools_ttl_ms: int | None = None
    ) -> Upstream:
        assert mode in ("sse", "json"), mode
        port = free_port()
        args = [sys.executable, str(FIXTURE_SERVER), "--host", LOOPBACK, "--port", str(port)]
        if mode == "json":
            args.append("--json-response")
        if stateless:
            args.append("--stateless")
        if modern_only:
            args.append("--modern-only")
        if tools_ttl_ms is not None:
            args += ["--tools-ttl-ms", str(tools_ttl_ms)]
        log_path = self.log_dir / f"upstream-{mode}{'-stateless' if stateless else ''}-{port}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        upstream = Upstream(mode=mode, stateless=stateless, port=port, proc=proc, log_path=log_path)
        self.started.append(upstream)

        def ready() -> bool:
            if proc.poll() is not None:
                return True
            try:
                return httpx.get(f"{upstream.base_url}/ready", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_until(ready, STARTUP_TIMEOUT) or proc.poll() is not None:
            upstream.stop()
            pytest.fail(f"fixture upstream ({mode}) did not become ready:\n{_tail(log_path)}")
        return upstream

    def stop_all(self) -> None:
        for upstream in self.started:
            upstream.stop()


@pytest.fixture(scope="session")
def upstream_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamLauncher]:
    launcher = UpstreamLauncher(tmp_path_factory.mktemp("upstreams"))
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="session")
def upstream_sse(upstream_launcher: UpstreamLauncher) -> Upstream:
    return upstream_launcher.start("sse")


@pytest.fixture(scope="session")
def upstream_json(upstream_launcher: UpstreamLauncher) -> Upstream:
    return upstream_launcher.start("json")


@pytest.fixture(scope="session", params=["sse", "json"])
def upstream(request: pytest.FixtureRequest) -> Upstream:
    """The shared upstream, once per response mode (SSE and application/json)."""
    return request.getfixturevalue(f"upstream_{request.param}")


# ---------------------------------------------------------------------------- helio


@pytest.fixture(scope="session")
def helio_bin() -> Path:
    value = os.environ.get(HELIO_BIN_ENV)
    if not value:
        pytest.skip(f"{HELIO_BIN_ENV} is not set: build helio and export {HELIO_BIN_ENV}=/path/to/helio to run this test")
    path = Path(value).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{HELIO_BIN_ENV}={value} is not an executable file")
    return path


def minimal_config(upstream_url: str) -> dict[str, Any]:
    """The smallest valid helio.yaml, with fresh free ports and a random api_secret."""
    listen_port, dashboard_port, sdk_port = free_ports(3)
    return {
        "version": "1",
        "upstream": {"url": upstream_url, "request_timeout": "30s"},
        "listen": {"host": LOOPBACK, "port": listen_port},
        "dashboard": {"enabled": True, "host": LOOPBACK, "port": dashboard_port, "api_secret": secrets.token_hex(32)},
        "sdk": {"enabled": False, "host": LOOPBACK, "port": sdk_port},
    }


@dataclass
class HelioInstance:
    """One `helio start` process."""

    config: dict[str, Any]
    config_path: Path
    workdir: Path
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    stdout_path: Path
    env: dict[str, str]
    expected_exit: int | None = 0  # checked at teardown; None = don't check

    @property
    def port(self) -> int:
        return int(self.config["listen"]["port"])

    @property
    def base_url(self) -> str:
        return f"http://{self.config['listen'].get('host', LOOPBACK)}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def dashboard_url(self) -> str:
        d = self.config.get("dashboard", {})
        return f"http://{d.get('host', LOOPBACK)}:{d.get('port', 3100)}"

    @property
    def sdk_url(self) -> str:
        s = self.config.get("sdk", {})
        return f"http://{s.get('host', LOOPBACK)}:{s.get('port', 3200)}"

    @property
    def api_secret(self) -> str | None:
        return self.config.get("dashboard", {}).get("api_secret")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        if not wait_until(lambda: self.proc.poll() is not None or self.healthy(), timeout):
            pytest.fail(f"helio did not answer GET /healthz within {timeout}s; stderr:\n{_tail(self.stderr_path)}")
        if self.proc.poll() is not None:
            pytest.fail(f"helio exited with code {self.proc.returncode} during startup; stderr:\n{_tail(self.stderr_path)}")

    def terminate(self, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL and fail after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail(f"helio did not exit within {timeout}s of SIGTERM; stderr:\n{_tail(self.stderr_path)}")

    def close(self) -> None:
        """Teardown: SIGTERM and check the exit code (0 unless expected_exit says otherwise),
        then that no secret it was given reached its output."""
        code = self.terminate()
        if self.expected_exit is not None and code != self.expected_exit:
            pytest.fail(
                f"helio exited with code {code} after SIGTERM (expected {self.expected_exit}); "
                f"stderr:\n{_tail(self.stderr_path)}"
            )
        self.check_no_secret_logged()

    def secrets(self) -> dict[str, str]:
        """Every secret this instance was given, by where it came from: the operator
        secret, the sideband tokens and dashboard secret from the environment, upstream
        headers, a stdio server's environment and the trace exporter's headers. Short values (< 8 characters) are
        left out: they would match by chance."""
        found: dict[str, str] = {}
        if self.api_secret:
            found["dashboard.api_secret"] = self.api_secret
        for name in ("HELIO_SDK_TOKEN", "HELIO_ADAPTER_TOKEN", "HELIO_DASHBOARD_SECRET"):
            if self.env.get(name) and os.environ.get(name) != self.env[name]:
                found[name] = self.env[name]
        upstream = self.config.get("upstream", {})
        for section in ("headers", "env"):
            for key, value in (upstream.get(section) or {}).items():
                if isinstance(value, str):
                    found[f"upstream.{section}.{key}"] = value
        for key, value in ((self.config.get("telemetry") or {}).get("headers") or {}).items():
            if isinstance(value, str):
                found[f"telemetry.headers.{key}"] = value
        return {where: value for where, value in found.items() if len(value) >= 8 and "${" not in value}

    def check_no_secret_logged(self) -> None:
        output = self.stderr + self.stdout
        leaked = [where for where, value in self.secrets().items() if value in output]
        if leaked:
            pytest.fail(f"helio wrote secrets to its output: {', '.join(leaked)} ({self.workdir})")


class HelioLauncher:
    """Writes helio.yaml and runs `$HELIO_BIN start -c helio.yaml` in a fresh dir."""

    def __init__(self, binary: Path, base_dir: Path, default_upstream: Callable[[], Upstream]) -> None:
        self.binary = binary
        self.base_dir = base_dir
        self.default_upstream = default_upstream
        self.instances: list[HelioInstance] = []
        self._shared: dict[str, HelioInstance] = {}

    def shared(self, upstream: Upstream, overrides: dict[str, Any] | None = None) -> HelioInstance:
        """One instance per (upstream, overrides), started on first use and reused."""
        key = json.dumps([upstream.url, overrides], sort_keys=True)
        instance = self._shared.get(key)
        if instance is None or instance.proc.poll() is not None:
            instance = self._shared[key] = self(overrides, upstream=upstream)
        return instance

    def __call__(
        self,
        overrides: dict[str, Any] | None = None,
        *,
        upstream: Upstream | str | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> HelioInstance:
        """Start helio with `overrides` deep-merged over minimal_config().

        upstream: an Upstream or URL for upstream.url (default: the shared SSE upstream),
                  ignored when `overrides` sets upstream.url itself.
        env:      extra environment variables for the helio process.
        wait:     wait for GET /healthz == 200 (fails the test with helio's stderr).
        """
        if isinstance(upstream, Upstream):
            upstream_url = upstream.url
        elif isinstance(upstream, str):
            upstream_url = upstream
        elif (overrides or {}).get("upstream", {}).get("url"):
            upstream_url = overrides["upstream"]["url"]  # type: ignore[index]
        else:
            upstream_url = self.default_upstream().url
        config = deep_merge(minimal_config(upstream_url), overrides)

        workdir = self.base_dir / f"helio-{len(self.instances)}-{config['listen']['port']}"
        workdir.mkdir(parents=True)
        config_path = workdir / "helio.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        stderr_path = workdir / "stderr.log"
        stdout_path = workdir / "stdout.log"
        proc_env = {**os.environ, **(env or {})}
        proc_env.setdefault("RUST_BACKTRACE", "1")
        with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
            proc = subprocess.Popen(
                [str(self.binary), "start", "-c", str(config_path), *extra_args],
                cwd=workdir,
                env=proc_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        instance = HelioInstance(
            config=config,
            config_path=config_path,
            workdir=workdir,
            proc=proc,
            stderr_path=stderr_path,
            stdout_path=stdout_path,
            env=proc_env,
        )
        self.instances.append(instance)
        if wait:
            instance.wait_healthy()
        return instance

    def close_all(self) -> None:
        failures: list[str] = []
        for instance in self.instances:
            try:
                instance.close()
            except pytest.fail.Exception as exc:  # keep stopping the others
                failures.append(str(exc))
        if failures:
            pytest.fail("\n\n".join(failures))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _print_stderr_if_failed(request: pytest.FixtureRequest, launcher: HelioLauncher) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for instance in launcher.instances:
            print(f"--- helio stderr ({instance.workdir}) ---\n{_tail(instance.stderr_path)}")


@pytest.fixture
def helio(
    helio_bin: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[HelioLauncher]:
    """Factory: helio(overrides, upstream=..., env=..., wait=True) -> HelioInstance.
    Every instance gets SIGTERM at teardown and must exit 0 within 15 s. When the
    test failed, each instance's stderr is printed in the teardown section."""
    launcher = HelioLauncher(helio_bin, tmp_path, lambda: request.getfixturevalue("upstream_sse"))
    yield launcher
    _print_stderr_if_failed(request, launcher)
    launcher.close_all()


@pytest.fixture(scope="module")
def module_helio(
    helio_bin: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[HelioLauncher]:
    """Like `helio`, but instances live until the end of the module (cheaper for
    read-only relay tests)."""
    launcher = HelioLauncher(
        helio_bin, tmp_path_factory.mktemp("helio"), lambda: request.getfixturevalue("upstream_sse")
    )
    yield launcher
    launcher.close_all()


# --------------------------------------------------------------------- MCP clients


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Event:
    t: float  # time.monotonic()
    kind: str  # "progress" | "log" | "sampling" | "elicitation" | "result" | "error" | "notification" | custom
    data: Any = None


@dataclass
class EventLog:
    """One ordered list of everything the client saw, with arrival times."""

    events: list[Event] = field(default_factory=list)

    def add(self, kind: str, data: Any = None) -> Event:
        event = Event(time.monotonic(), kind, data)
        self.events.append(event)
        return event

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def clear(self) -> None:
        self.events.clear()


SAMPLING_REPLY_TEXT = "forty-two"
SAMPLING_MODEL = "e2e-test-model"
ELICITATION_ANSWER = "blue"


def dump_model(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


@contextlib.asynccontextmanager
async def mcp_session(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    events: EventLog | None = None,
    sampling_text: str = SAMPLING_REPLY_TEXT,
    elicitation_answer: str | None = ELICITATION_ANSWER,
    read_timeout: float = 30.0,
    initialize: bool = True,
) -> AsyncIterator[tuple[Any, EventLog]]:
    """Open an SDK ClientSession (handshake era: initialize + initialized) over
    streamable HTTP to `url`, with sampling and elicitation callbacks that answer
    deterministically and a logging/notification collector.

    Yields (session, events). Sampling replies `sampling_text` from model
    SAMPLING_MODEL; elicitation accepts with {"answer": elicitation_answer}, or
    declines when elicitation_answer is None. Every callback records an Event;
    pass `progress_callback=progress_recorder(events)` to call_tool for progress.
    """
    import httpx2
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    log = events if events is not None else EventLog()

    async def sampling_callback(context: Any, params: Any) -> Any:
        log.add("sampling", dump_model(params))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=sampling_text),
            model=SAMPLING_MODEL,
            stop_reason="endTurn",
        )

    async def elicitation_callback(context: Any, params: Any) -> Any:
        log.add("elicitation", dump_model(params))
        if elicitation_answer is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"answer": elicitation_answer})

    async def logging_callback(params: Any) -> None:
        log.add("log", dump_model(params))

    async def message_handler(message: Any) -> None:
        if isinstance(message, Exception):
            log.add("transport_error", repr(message))
        else:
            log.add("notification", getattr(message, "method", type(message).__name__))

    http_client = httpx2.AsyncClient(
        headers=headers or {}, timeout=httpx2.Timeout(read_timeout, read=max(read_timeout, 60.0))
    )
    async with http_client, streamable_http_client(url, http_client=http_client) as (read, write):
        async with ClientSession(
            read,
            write,
            read_timeout_seconds=read_timeout,
            sampling_callback=sampling_callback,
            elicitation_callback=elicitation_callback,
            logging_callback=logging_callback,
            message_handler=message_handler,
        ) as session:
            if initialize:
                await session.initialize()
            yield session, log


def progress_recorder(events: EventLog) -> Callable[..., Any]:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.add("progress", {"progress": progress, "total": total, "message": message})

    return on_progress


async def call_tool_outcome(session: Any, name: str, arguments: dict[str, Any], events: EventLog | None = None) -> dict[str, Any]:
    """call_tool, recording the outcome as an Event and returning it as plain JSON:
    {"result": CallToolResult} or {"error": {"code", "message"}}."""
    from mcp.shared.exceptions import MCPError

    kwargs: dict[str, Any] = {}
    if events is not None:
        kwargs["progress_callback"] = progress_recorder(events)
    try:
        result = await session.call_tool(name, arguments, **kwargs)
    except MCPError as exc:
        outcome = {"error": {"code": exc.code, "message": exc.message}}
        if events is not None:
            events.add("error", outcome)
        return outcome
    outcome = {"result": dump_model(result)}
    if events is not None:
        events.add("result", outcome)
    return outcome


# ------------------------------------------------------------------ raw JSON-RPC


JSON_AND_SSE = "application/json, text/event-stream"
DEFAULT_PROTOCOL_VERSION = "2025-06-18"


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE body -> list of {event, data, id} (data JSON-decoded when possible)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    data_lines: list[str] = []
    for raw_line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw_line == "":
            if data_lines or current:
                data = "\n".join(data_lines)
                with contextlib.suppress(ValueError):
                    data = json.loads(data)
                events.append({"event": current.get("event", "message"), "data": data, "id": current.get("id")})
            current, data_lines = {}, []
            continue
        if raw_line.startswith(":"):
            continue
        name, _, value = raw_line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data_lines.append(value)
        elif name in ("event", "id", "retry"):
            current[name] = value
    if data_lines:
        data = "\n".join(data_lines)
        with contextlib.suppress(ValueError):
            data = json.loads(data)
        events.append({"event": current.get("event", "message"), "data": data, "id": current.get("id")})
    return events


@dataclass
class RawReply:
    response: httpx.Response
    messages: list[dict[str, Any]]  # every JSON-RPC message in the body (1 for JSON, n for SSE)

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str:
        return self.response.headers.get("content-type", "").split(";")[0].strip().lower()

    def final(self, request_id: Any = ...) -> dict[str, Any] | None:
        """The response message (result or error) — with `request_id` if given."""
        for msg in self.messages:
            if isinstance(msg, dict) and ("result" in msg or "error" in msg):
                if request_id is ... or msg.get("id") == request_id:
                    return msg
        return None


class RawMcp:
    """Minimal hand-rolled streamable-HTTP client: every byte and header is yours.

    `post(body)` sends anything; `request(method, params, id)` sends a JSON-RPC
    request with the current session id and parses JSON or SSE replies.
    `initialize()` does the handshake (initialize + notifications/initialized)."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.client = httpx.Client(timeout=timeout)
        self._next_id = 1

    def __enter__(self) -> RawMcp:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        h = {"accept": JSON_AND_SSE, "content-type": "application/json", **self.headers}
        if self.session_id:
            h["mcp-session-id"] = self.session_id
        if self.protocol_version:
            h["mcp-protocol-version"] = self.protocol_version
        h.update(extra or {})
        return {k: v for k, v in h.items() if v is not None}

    def post(
        self, body: Any, *, headers: dict[str, str] | None = None, raw: bytes | str | None = None, timeout: float | None = None
    ) -> RawReply:
        content = raw if raw is not None else json.dumps(body)
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = timeout
        response = self.client.post(self.url, content=content, headers=self._headers(headers), **kwargs)
        return RawReply(response, self._messages(response))

    @staticmethod
    def _messages(response: httpx.Response) -> list[dict[str, Any]]:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "text/event-stream":
            return [e["data"] for e in parse_sse(response.text) if e["event"] == "message"]
        if ctype == "application/json" and response.content:
            with contextlib.suppress(ValueError):
                data = response.json()
                return data if isinstance(data, list) else [data]
        return []

    def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        id: Any = ...,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> RawReply:
        request_id = self.next_id() if id is ... else id
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            body["params"] = params
        return self.post(body, headers=headers, timeout=timeout)

    def notify(self, method: str, params: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None) -> RawReply:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            body["params"] = params
        return self.post(body, headers=headers)

    def initialize(self, protocol_version: str = DEFAULT_PROTOCOL_VERSION, capabilities: dict[str, Any] | None = None) -> RawReply:
        reply = self.request(
            "initialize",
            {
                "protocolVersion": protocol_version,
                "capabilities": capabilities or {},
                "clientInfo": {"name": "helio-e2e-raw", "version": "0.0.1"},
            },
            id=1,
        )
        assert reply.status == 200, (reply.status, reply.response.text)
        final = reply.final(1)
        assert final is not None and "result" in final, reply.response.text
        self.session_id = reply.response.headers.get("mcp-session-id")
        self.protocol_version = final["result"]["protocolVersion"]
        initialized = self.notify("notifications/initialized")
        assert initialized.status == 202, (initialized.status, initialized.response.text)
        return reply

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> RawReply:
        return self.request("tools/call", {"name": name, "arguments": arguments or {}}, **kwargs)


def rpc_result(reply: RawReply, request_id: Any = ...) -> Any:
    final = reply.final(request_id)
    assert final is not None, f"no JSON-RPC response in HTTP {reply.status}: {reply.response.text[:2000]}"
    assert "result" in final, f"JSON-RPC error: {final}"
    return final["result"]
