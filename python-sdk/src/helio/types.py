"""What the sideband answers, as frozen dataclasses (the same names and
fields as `helio-client`'s, so code written against it type-checks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EvidenceEntry:
    """One piece of evidence the gateway holds for a session."""

    evidence_key: str
    data: Any
    tool_name: str
    timestamp: str
    #: When it stops counting, in milliseconds since the epoch.
    expires_at: float


@dataclass(frozen=True)
class CompletedTool:
    """A tool call the gateway saw the session complete."""

    tool_name: str
    timestamp: str
    succeeded: bool


@dataclass(frozen=True)
class SessionState:
    """A session as the gateway sees it: unexpired evidence, context, and
    the tools it completed."""

    session_id: str
    evidence: dict[str, EvidenceEntry] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    completed_tools: list[CompletedTool] = field(default_factory=list)


@dataclass(frozen=True)
class EvidenceStateReport:
    """A :class:`SessionState` compared with the keys a
    :class:`~helio.HelioContext` said it requires: which are there
    (``satisfied``) and which are not (``missing``). Informational only:
    the gateway decides."""

    session_id: str
    evidence: dict[str, EvidenceEntry] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    completed_tools: list[CompletedTool] = field(default_factory=list)
    satisfied: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
