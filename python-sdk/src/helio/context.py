"""HelioContext: the client plus the evidence keys this code requires."""

from __future__ import annotations

import threading
from typing import Any

from . import _wire
from .client import HelioClient
from .types import EvidenceStateReport

__all__ = ["HelioContext"]


class HelioContext:
    """The SDK's main entry point: reports evidence and context for one
    session, and compares the session's evidence with the keys this code
    declared it requires (:meth:`require_evidence`) — for its own
    information; the gateway decides whether a call may go ahead."""

    def __init__(
        self,
        proxy_url: str = _wire.DEFAULT_URL,
        session_id: str | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._client = HelioClient(proxy_url, session_id, timeout=timeout)
        self._required: set[str] = set()
        # Requirements may be declared from several threads.
        self._lock = threading.Lock()

    @property
    def client(self) -> HelioClient:
        return self._client

    @property
    def session_id(self) -> str:
        return self._client.session_id

    def mcp_headers(self) -> dict[str, str]:
        """See :meth:`helio.HelioClient.mcp_headers`."""
        return self._client.mcp_headers()

    def mark_evidence(self, tool_name: str, evidence_key: str, data: Any, ttl: int = 300) -> None:
        self._client.mark_evidence(tool_name, evidence_key, data, ttl=ttl)

    def require_evidence(self, keys: list[str] | str) -> None:
        """Declares evidence keys this code expects (local bookkeeping for
        :meth:`get_evidence_state`; the gateway's rules are what count)."""
        with self._lock:
            self._required.update([keys] if isinstance(keys, str) else keys)

    def set(self, key: str, value: Any) -> None:
        self._client.set_context(key, value)

    def get_evidence_state(self) -> EvidenceStateReport:
        """The session's state, with the required keys split into those
        present (``satisfied``) and those not (``missing``), both sorted."""
        with self._lock:
            required = sorted(self._required)
        return _wire.report(self._client.get_session_state(), required)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HelioContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
