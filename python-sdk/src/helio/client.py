"""The synchronous client of the gateway's SDK sideband."""

from __future__ import annotations

import uuid
from typing import Any

from . import _wire
from ._transport import SyncTransport
from .errors import HelioError
from .types import SessionState

__all__ = ["HelioClient", "HelioError"]


class HelioClient(SyncTransport):
    """Reports evidence and context for one session to the gateway's SDK
    sideband, and reads the session back. It decides nothing: the gateway
    does, when the agent's MCP call for that session arrives.

    ``session_id`` must be the value the agent's MCP client sends as
    ``x-helio-session-id`` (see :meth:`mcp_headers`); without one a random
    id is made, which no MCP call will ever carry. The bearer token is read
    from ``HELIO_SDK_TOKEN`` once, here.
    """

    def __init__(
        self,
        proxy_url: str = _wire.DEFAULT_URL,
        session_id: str | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(proxy_url, _wire.TOKEN_ENV, timeout)
        self._session_id = session_id or uuid.uuid4().hex

    @property
    def session_id(self) -> str:
        return self._session_id

    def mcp_headers(self) -> dict[str, str]:
        """The header to give the agent's MCP client, so its calls belong to
        this session: ``{"x-helio-session-id": session_id}``."""
        return {_wire.SESSION_HEADER: self._session_id}

    def mark_evidence(self, tool_name: str, evidence_key: str, data: Any, ttl: int = 300) -> None:
        """Reports that ``tool_name``'s output is evidence ``evidence_key``
        for ``ttl`` seconds (``POST /evidence``). The key must be one a rule's
        ``evidence.requires`` names; the error lists the allowed ones."""
        self._send(_wire.evidence(self._session_id, tool_name, evidence_key, data, ttl))

    def set_context(self, key: str, value: Any) -> None:
        """Stores a context value for the session (``POST /context``);
        informational, policy never reads it."""
        self._send(_wire.context(self._session_id, key, value))

    def get_session_state(self) -> SessionState:
        """The session's unexpired evidence, context and completed tools
        (``GET /session/:id/state``); an unknown session is empty."""
        request = _wire.state(self._session_id)
        return _wire.session_state(request, self._send(request))
