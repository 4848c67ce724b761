"""What the synchronous and asynchronous clients share: the requests they
make, how an answer is read, and how a failure becomes a
:class:`~helio.HelioError`. The clients only send and receive."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from .errors import HelioError
from .types import CompletedTool, EvidenceEntry, EvidenceStateReport, SessionState

#: Where the gateway's SDK sideband listens by default (`sdk.host`, `sdk.port`).
DEFAULT_URL = "http://127.0.0.1:3200"
#: The environment variable holding the sideband's bearer token.
TOKEN_ENV = "HELIO_SDK_TOKEN"
#: The header that ties an MCP client's calls to an SDK session.
SESSION_HEADER = "x-helio-session-id"


def base_url(proxy_url: str) -> str:
    return proxy_url.rstrip("/")


def auth_headers(env: str = TOKEN_ENV) -> dict[str, str]:
    """The bearer from the environment, read once; an empty value is no
    token (open local development), never a malformed header."""
    token = os.environ.get(env)
    return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass(frozen=True)
class Request:
    method: str
    #: The path as sent (session ids percent-encoded).
    path: str
    #: How messages name it: ``POST /evidence``, ``GET /session/<id>/state``.
    operation: str
    body: bytes | None = None
    #: Whether a refusal's structured details go into the message.
    detailed: bool = False
    #: How long the gateway may hold the answer back (a long poll), on top
    #: of the client's timeout.
    wait: float = 0.0


def _json(operation: str, payload: dict[str, Any]) -> bytes:
    try:
        # NaN and infinities are not JSON: the gateway would refuse them.
        return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise HelioError(f"Failed to serialize {operation} payload as JSON: {exc}") from exc


def post(operation: str, path: str, payload: dict[str, Any]) -> Request:
    """A JSON POST whose refusals carry structured details."""
    return Request("POST", path, operation, _json(operation, payload), detailed=True)


def evidence(session_id: str, tool_name: str, evidence_key: str, data: Any, ttl: int) -> Request:
    operation = "POST /evidence"
    payload = {
        "session_id": session_id,
        "tool_name": tool_name,
        "evidence_key": evidence_key,
        "evidence_data": data,
        "ttl_seconds": ttl,
    }
    return Request("POST", "/evidence", operation, _json(operation, payload), detailed=True)


def context(session_id: str, key: str, value: Any) -> Request:
    operation = "POST /context"
    payload = {"session_id": session_id, "key": key, "value": value}
    return Request("POST", "/context", operation, _json(operation, payload))


def state(session_id: str) -> Request:
    return Request(
        "GET",
        f"/session/{quote(session_id, safe='')}/state",
        f"GET /session/{session_id}/state",
    )


def get(operation: str, path: str, wait: float = 0.0) -> Request:
    """A GET whose refusals carry structured details."""
    return Request("GET", path, operation, detailed=True, wait=wait)


def http_arguments(request: Request, timeout: float) -> dict[str, Any]:
    """What `httpx.Client.request` takes for `request`, with the client's
    `timeout`."""
    headers = {"content-type": "application/json"} if request.body is not None else None
    return {
        "method": request.method,
        "url": request.path,
        "content": request.body,
        "headers": headers,
        "timeout": timeout + request.wait,
    }


def failure(exc: httpx.HTTPError, request: Request, url: str) -> HelioError:
    """A request that got no answer, as the SDK reports it."""
    if isinstance(exc, httpx.ConnectError):
        return HelioError(f"Cannot connect to proxy at {url}")
    if isinstance(exc, httpx.TimeoutException):
        return HelioError(f"Proxy request timed out: {request.operation}")
    return HelioError(f"{request.operation} failed: {exc}")


def check(request: Request, status: int, body: bytes) -> None:
    """Raises the refusal, if the gateway refused."""
    if status < 400:
        return
    message = f"{request.operation} failed: HTTP {status}"
    details = _details(body) if request.detailed else None
    if details:
        message = f"{message} ({details})"
    raise HelioError(message, status_code=status)


def _details(body: bytes) -> str | None:
    """`code=…, key="…", allowed_keys=[…]` from a structured refusal."""
    try:
        raw = json.loads(body)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    if not isinstance(raw.get("code"), str):
        # The adapter API's refusals: `{error: <code>, message}`.
        if isinstance(raw.get("error"), str) and isinstance(raw.get("message"), str):
            return f"{raw['error']}: {raw['message']}"
        return None
    parts = [f"code={raw['code']}"]
    if isinstance(raw.get("key"), str):
        parts.append(f'key="{raw["key"]}"')
    allowed = raw.get("allowed_keys")
    if isinstance(allowed, list):
        shown = [k for k in allowed if isinstance(k, str)]
        count = raw.get("allowed_key_count")
        if shown and raw.get("truncated") is True and isinstance(count, int):
            parts.append(f"allowed_keys={shown} (showing {len(shown)} of {count})")
        elif shown:
            parts.append(f"allowed_keys={shown}")
    return ", ".join(parts)


def session_state(request: Request, body: bytes) -> SessionState:
    """The state answer, or a :class:`HelioError` when it is not one."""
    try:
        return _session_state(json.loads(body))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HelioError(
            f"{request.operation} returned malformed response payload", status_code=200
        ) from exc


def _session_state(raw: Any) -> SessionState:
    if not isinstance(raw, dict):
        raise ValueError("the session state is not an object")
    session_id = raw.get("session_id")
    evidence_raw = raw.get("evidence", {})
    context_raw = raw.get("context", {})
    completed_raw = raw.get("completed_tools", [])
    if not isinstance(session_id, str):
        raise ValueError("session_id is not a string")
    if not isinstance(evidence_raw, dict) or not isinstance(context_raw, dict):
        raise ValueError("evidence and context must be objects")
    if not isinstance(completed_raw, list):
        raise ValueError("completed_tools is not a list")
    evidence = {}
    for key, entry in evidence_raw.items():
        if not isinstance(entry, dict):
            raise ValueError(f"evidence {key!r} is not an object")
        evidence[key] = EvidenceEntry(**entry)
    completed = []
    for entry in completed_raw:
        if not isinstance(entry, dict):
            raise ValueError("a completed tool is not an object")
        completed.append(CompletedTool(**entry))
    return SessionState(session_id, evidence, context_raw, completed)


def report(state: SessionState, required: list[str]) -> EvidenceStateReport:
    """`state` with the required keys split into satisfied and missing."""
    return EvidenceStateReport(
        session_id=state.session_id,
        evidence=state.evidence,
        context=state.context,
        completed_tools=state.completed_tools,
        satisfied=[k for k in required if k in state.evidence],
        missing=[k for k in required if k not in state.evidence],
    )
