"""The adapter API: for agent frameworks that run tools in-process and use
Helio as their policy decision point. Ask before running a tool
(:meth:`AdapterClient.evaluate`), run it only if allowed, then report what
happened (:meth:`AdapterClient.report`). See docs/adapter-api.md.

Fail closed: an error talking to Helio (:class:`~helio.HelioError`) or a
decision this SDK does not know means the tool must not run —
:attr:`Evaluation.allowed` is true only for ``allow``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import _wire
from ._transport import AsyncTransport, SyncTransport
from .errors import HelioError

__all__ = ["AdapterClient", "AsyncAdapterClient", "Evaluation", "Reported", "TOKEN_ENV"]

#: The environment variable holding the adapter API's bearer token.
TOKEN_ENV = "HELIO_ADAPTER_TOKEN"


@dataclass(frozen=True)
class Evaluation:
    """Helio's answer to ``POST /evaluate``."""

    evaluation_id: str
    #: ``allow``, ``deny``, ``rate_limited``, ``spend_limited``,
    #: ``budget_exceeded`` or ``dry_run``.
    decision: str
    reason: str | None = None
    matched_rule: str | None = None
    matched_rule_index: int | None = None
    #: For a blocked call: what to tell the model (``message``,
    #: ``suggestion``, ``retry_allowed`` and the limit's details).
    feedback: dict[str, Any] | None = None
    #: For a dry run: what would have happened.
    dry_run: Any = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def allowed(self) -> bool:
        """Whether the tool may run. Anything but ``allow`` — including a
        decision a newer Helio invents — means no."""
        return self.decision == "allow"

    def feedback_text(self) -> str:
        """The self-repair feedback as one line for the model."""
        if not self.feedback:
            return f"Blocked by policy ({self.reason or self.decision})."
        parts = [str(self.feedback.get("message") or f"Blocked ({self.reason})")]
        if self.feedback.get("suggestion"):
            parts.append(str(self.feedback["suggestion"]))
        return " ".join(parts)


@dataclass(frozen=True)
class Reported:
    """Helio's answer to ``POST /audit``."""

    audit_record_id: str | None
    #: This report had been made before (a retry): nothing changed.
    already_finalized: bool = False
    #: The evaluation ended at ``/evaluate`` (blocked or simulated).
    finalized_by_evaluate: bool = False
    #: Per reported evidence entry: ``{evidence_key, stored, reason?}``.
    evidence: list[dict[str, Any]] = field(default_factory=list)


def _evaluation(operation: str, body: bytes) -> Evaluation:
    try:
        raw = json.loads(body)
        return Evaluation(
            evaluation_id=str(raw["evaluation_id"]),
            decision=str(raw["decision"]),
            reason=raw.get("reason"),
            matched_rule=raw.get("matched_rule"),
            matched_rule_index=raw.get("matched_rule_index"),
            feedback=raw.get("feedback"),
            dry_run=raw.get("dry_run"),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise HelioError(f"{operation} returned malformed response payload", status_code=200) from exc


def _reported(operation: str, body: bytes) -> Reported:
    try:
        raw = json.loads(body)
        return Reported(
            audit_record_id=raw.get("audit_record_id"),
            already_finalized=bool(raw.get("already_finalized", False)),
            finalized_by_evaluate=raw.get("finalized_by") == "evaluate",
            evidence=list(raw.get("evidence") or []),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise HelioError(f"{operation} returned malformed response payload", status_code=200) from exc


def _present(**fields: Any) -> dict[str, Any]:
    """The fields that are set (a request leaves the others out)."""
    return {key: value for key, value in fields.items() if value is not None}


def _evaluate_request(
    origin: str,
    adapter_version: str | None,
    agent_id: str | None,
    tool_name: str,
    arguments: dict[str, Any] | None,
    session_id: str | None,
    annotations: dict[str, bool] | None,
    metadata: dict[str, Any] | None,
) -> _wire.Request:
    tool = _present(name=tool_name, annotations=annotations)
    payload = _present(
        origin=origin,
        tool=tool,
        adapter_version=adapter_version,
        agent_id=agent_id,
        session_id=session_id,
        arguments=arguments,
        metadata=metadata,
    )
    return _wire.post("POST /evaluate", "/evaluate", payload)


def _install_request(
    origin: str,
    adapter_version: str | None,
    agent_id: str | None,
    package: dict[str, Any],
    session_id: str | None,
    metadata: dict[str, Any] | None,
) -> _wire.Request:
    payload = _present(
        origin=origin,
        package=package,
        adapter_version=adapter_version,
        agent_id=agent_id,
        session_id=session_id,
        metadata=metadata,
    )
    return _wire.post("POST /install-scan", "/install-scan", payload)


def _report_request(
    evaluation: Evaluation | str,
    status: str,
    result: Any,
    error: str | None,
    duration_ms: float | None,
    evidence: list[dict[str, Any]] | None,
) -> _wire.Request:
    if status not in ("success", "error", "not_executed"):
        raise HelioError(f"status must be success, error or not_executed, not {status!r}")
    evaluation_id = evaluation.evaluation_id if isinstance(evaluation, Evaluation) else evaluation
    payload = _present(
        evaluation_id=evaluation_id,
        status=status,
        result=result,
        error=error,
        duration_ms=duration_ms,
        evidence=evidence,
    )
    return _wire.post("POST /audit", "/audit", payload)


class AdapterClient(SyncTransport):
    """The adapter API for one framework (its ``origin`` slug, e.g.
    ``"my-agent"``). The token is read from ``HELIO_ADAPTER_TOKEN`` when
    the client is built."""

    def __init__(
        self,
        proxy_url: str = _wire.DEFAULT_URL,
        origin: str = "sideband",
        *,
        adapter_version: str | None = None,
        agent_id: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(proxy_url, TOKEN_ENV, timeout)
        self.origin = origin
        self.adapter_version = adapter_version
        self.agent_id = agent_id

    def evaluate(
        self,
        tool_name: str,
        arguments: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        annotations: dict[str, bool] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Evaluation:
        """Asks whether ``tool_name`` may run with ``arguments``. An allowed
        evaluation reserves its limits until :meth:`report`."""
        request = _evaluate_request(
            self.origin, self.adapter_version, self.agent_id, tool_name, arguments, session_id, annotations, metadata
        )
        return _evaluation(request.operation, self._send(request))

    def report(
        self,
        evaluation: Evaluation | str,
        status: str,
        *,
        result: Any = None,
        error: str | None = None,
        duration_ms: float | None = None,
        evidence: list[dict[str, Any]] | None = None,
    ) -> Reported:
        """Reports what happened to an evaluated call: ``success`` or
        ``error`` (it ran) or ``not_executed``. Safe to retry."""
        request = _report_request(evaluation, status, result, error, duration_ms, evidence)
        return _reported(request.operation, self._send(request))

    def install_scan(
        self,
        package: dict[str, Any],
        *,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Evaluation:
        """Asks install-time policy whether ``package`` (``{name, version?,
        source?, spec?, url?}``) may be installed; nothing to report after."""
        request = _install_request(
            self.origin, self.adapter_version, self.agent_id, package, session_id, metadata
        )
        return _evaluation(request.operation, self._send(request))


class AsyncAdapterClient(AsyncTransport):
    """:class:`AdapterClient` for asyncio: the same methods, as coroutines."""

    def __init__(
        self,
        proxy_url: str = _wire.DEFAULT_URL,
        origin: str = "sideband",
        *,
        adapter_version: str | None = None,
        agent_id: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(proxy_url, TOKEN_ENV, timeout)
        self.origin = origin
        self.adapter_version = adapter_version
        self.agent_id = agent_id

    async def evaluate(
        self,
        tool_name: str,
        arguments: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        annotations: dict[str, bool] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Evaluation:
        request = _evaluate_request(
            self.origin, self.adapter_version, self.agent_id, tool_name, arguments, session_id, annotations, metadata
        )
        return _evaluation(request.operation, await self._send(request))

    async def report(
        self,
        evaluation: Evaluation | str,
        status: str,
        *,
        result: Any = None,
        error: str | None = None,
        duration_ms: float | None = None,
        evidence: list[dict[str, Any]] | None = None,
    ) -> Reported:
        request = _report_request(evaluation, status, result, error, duration_ms, evidence)
        return _reported(request.operation, await self._send(request))

    async def install_scan(
        self,
        package: dict[str, Any],
        *,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Evaluation:
        request = _install_request(
            self.origin, self.adapter_version, self.agent_id, package, session_id, metadata
        )
        return _evaluation(request.operation, await self._send(request))
