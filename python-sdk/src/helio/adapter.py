"""The adapter API: for agent frameworks that run tools in-process and use
Helio as their policy decision point. Ask before running a tool
(:meth:`AdapterClient.evaluate`), run it only if allowed, then report what
happened (:meth:`AdapterClient.report`). See docs/adapter-api.md.

A call that needs a human approval comes back ``require_approval``
(:attr:`Evaluation.held`): wait for the decision
(:meth:`AdapterClient.wait_for_decision`) — an operator's on the dashboard,
in Slack or by webhook — or decide it with your framework's own prompt
(:meth:`AdapterClient.resolve_approval`).

Fail closed: an error talking to Helio (:class:`~helio.HelioError`) or a
decision this SDK does not know means the tool must not run —
:attr:`Evaluation.allowed` is true only for ``allow``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
    #: ``allow``, ``require_approval``, ``deny``, ``rate_limited``,
    #: ``spend_limited``, ``budget_exceeded`` or ``dry_run``.
    decision: str
    reason: str | None = None
    matched_rule: str | None = None
    matched_rule_index: int | None = None
    #: For a blocked call: what to tell the model (``message``,
    #: ``suggestion``, ``retry_allowed`` and the limit's details).
    feedback: dict[str, Any] | None = None
    #: For a dry run: what would have happened.
    dry_run: Any = None
    #: For a held call: the ticket it waits on (``id``, ``status``,
    #: ``channel``, ``timeout_ms``, ``timeout_at``, ``resolve_path``,
    #: ``status_path``).
    approval: dict[str, Any] | None = None
    #: The tool's definition differs from its baseline: ``aspects`` and
    #: ``changes``.
    tool_drift: dict[str, Any] | None = None
    #: From :meth:`AdapterClient.status`: ``awaiting_approval``,
    #: ``awaiting_report``, ``finished``, ``reported`` or ``expired``.
    status: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def allowed(self) -> bool:
        """Whether the tool may run. Anything but ``allow`` — including a
        decision a newer Helio invents — means no."""
        return self.decision == "allow"

    @property
    def held(self) -> bool:
        """Whether the call waits for a human approval."""
        return self.decision == "require_approval"

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
    #: The evaluation had ended without running (blocked or simulated at
    #: ``/evaluate``, or blocked while held for an approval).
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
            approval=raw.get("approval"),
            tool_drift=raw.get("tool_drift"),
            status=raw.get("status"),
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
            finalized_by_evaluate=raw.get("finalized_by") in ("evaluate", "approval"),
            evidence=list(raw.get("evidence") or []),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise HelioError(f"{operation} returned malformed response payload", status_code=200) from exc


#: The longest one status request waits (the gateway's bound).
_MAX_WAIT_SECONDS = 60.0

_RESOLUTIONS = ("approved", "denied", "timeout", "cancelled")


def _evaluation_id(evaluation: Evaluation | str) -> str:
    return evaluation.evaluation_id if isinstance(evaluation, Evaluation) else evaluation


def _status_request(evaluation: Evaluation | str, wait: float | None) -> _wire.Request:
    evaluation_id = _evaluation_id(evaluation)
    path = f"/evaluation/{quote(evaluation_id, safe='')}"
    seconds = 0.0 if wait is None else min(max(wait, 0.0), _MAX_WAIT_SECONDS)
    if seconds > 0:
        path += f"?wait_ms={int(seconds * 1000)}"
    return _wire.get(f"GET /evaluation/{evaluation_id}", path, wait=seconds)


def _resolve_request(
    approval: Evaluation | str, resolution: str, resolved_by: str | None, reason: str | None
) -> _wire.Request:
    if resolution not in _RESOLUTIONS:
        raise HelioError(f"resolution must be approved, denied, timeout or cancelled, not {resolution!r}")
    if resolution in ("approved", "denied") and not (resolved_by or "").strip():
        raise HelioError(f"resolved_by is required to mark a ticket {resolution}: who decided")
    if isinstance(approval, Evaluation):
        if not approval.approval or not isinstance(approval.approval.get("id"), str):
            raise HelioError("this evaluation is not held for an approval")
        ticket = approval.approval["id"]
    else:
        ticket = approval
    payload = _present(resolution=resolution, resolved_by=resolved_by, reason=reason)
    operation = f"POST /approval/{ticket}/resolve"
    return _wire.post(operation, f"/approval/{quote(ticket, safe='')}/resolve", payload)


def _remaining(deadline: float | None) -> float:
    if deadline is None:
        return _MAX_WAIT_SECONDS
    return min(_MAX_WAIT_SECONDS, deadline - time.monotonic())


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
    definition: dict[str, Any] | None,
) -> _wire.Request:
    tool = {**(definition or {}), **_present(name=tool_name, annotations=annotations)}
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
    actual_amount: float | int | None,
) -> _wire.Request:
    if status not in ("success", "error", "not_executed"):
        raise HelioError(f"status must be success, error or not_executed, not {status!r}")
    payload = _present(
        evaluation_id=_evaluation_id(evaluation),
        status=status,
        result=result,
        error=error,
        duration_ms=duration_ms,
        evidence=evidence,
        actual_amount=actual_amount,
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
        definition: dict[str, Any] | None = None,
    ) -> Evaluation:
        """Asks whether ``tool_name`` may run with ``arguments``. An allowed
        evaluation reserves its limits until :meth:`report`. ``definition``
        (``description``, ``input_schema``, ``output_schema``, ``title``):
        the tool as the model sees it — Helio baselines it and blocks the
        call if it later changes (tool-definition drift)."""
        request = _evaluate_request(
            self.origin, self.adapter_version, self.agent_id, tool_name, arguments, session_id, annotations, metadata,
            definition,
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
        actual_amount: float | int | None = None,
    ) -> Reported:
        """Reports what happened to an evaluated call: ``success`` or
        ``error`` (it ran) or ``not_executed``. ``actual_amount``: what it
        really cost, charged to its spend limits and budgets instead of the
        evaluated amount (even when it failed). Safe to retry."""
        request = _report_request(evaluation, status, result, error, duration_ms, evidence, actual_amount)
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

    def status(self, evaluation: Evaluation | str, *, wait: float | None = None) -> Evaluation:
        """Where an evaluation stands now (:attr:`Evaluation.status`). With
        ``wait`` (seconds, at most 60) the gateway answers as soon as that
        changes — a held call decided, its next ticket opened — or when the
        time is up."""
        request = _status_request(evaluation, wait)
        return _evaluation(request.operation, self._send(request))

    def wait_for_decision(self, evaluation: Evaluation | str, *, timeout: float | None = None) -> Evaluation:
        """Waits while the call is held for an approval; its answer then
        (``allow``: run it and :meth:`report`; anything else: don't). Still
        ``require_approval`` when ``timeout`` seconds pass first (None:
        as long as its tickets last, which their timeouts bound)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current = evaluation if isinstance(evaluation, Evaluation) else self.status(evaluation)
        while current.held:
            remaining = _remaining(deadline)
            if remaining <= 0:
                break
            current = self.status(current.evaluation_id, wait=remaining)
        return current

    def resolve_approval(
        self,
        approval: Evaluation | str,
        resolution: str,
        *,
        resolved_by: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Decides a held call's ticket (the evaluation, or a ticket id)
        with your framework's own approval prompt: ``approved`` or
        ``denied`` (``resolved_by`` required: who decided), or ``timeout``
        / ``cancelled`` when you stop waiting. Then
        :meth:`wait_for_decision` gives the outcome."""
        request = _resolve_request(approval, resolution, resolved_by, reason)
        self._send(request)


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
        definition: dict[str, Any] | None = None,
    ) -> Evaluation:
        request = _evaluate_request(
            self.origin, self.adapter_version, self.agent_id, tool_name, arguments, session_id, annotations, metadata,
            definition,
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
        actual_amount: float | int | None = None,
    ) -> Reported:
        request = _report_request(evaluation, status, result, error, duration_ms, evidence, actual_amount)
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

    async def status(self, evaluation: Evaluation | str, *, wait: float | None = None) -> Evaluation:
        request = _status_request(evaluation, wait)
        return _evaluation(request.operation, await self._send(request))

    async def wait_for_decision(
        self, evaluation: Evaluation | str, *, timeout: float | None = None
    ) -> Evaluation:
        deadline = None if timeout is None else time.monotonic() + timeout
        current = evaluation if isinstance(evaluation, Evaluation) else await self.status(evaluation)
        while current.held:
            remaining = _remaining(deadline)
            if remaining <= 0:
                break
            current = await self.status(current.evaluation_id, wait=remaining)
        return current

    async def resolve_approval(
        self,
        approval: Evaluation | str,
        resolution: str,
        *,
        resolved_by: str | None = None,
        reason: str | None = None,
    ) -> None:
        request = _resolve_request(approval, resolution, resolved_by, reason)
        await self._send(request)
