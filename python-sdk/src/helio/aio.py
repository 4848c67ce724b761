"""The asynchronous client: :class:`HelioClient`'s methods, awaitable."""

from __future__ import annotations

import uuid
from typing import Any

from . import _wire
from ._transport import AsyncTransport
from .types import SessionState

__all__ = ["AsyncHelioClient"]


class AsyncHelioClient(AsyncTransport):
    """:class:`~helio.HelioClient` for asyncio code: the same constructor,
    properties and methods, each a coroutine, ``aclose()`` and
    ``async with``."""

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
        """See :meth:`helio.HelioClient.mcp_headers`."""
        return {_wire.SESSION_HEADER: self._session_id}

    async def mark_evidence(
        self, tool_name: str, evidence_key: str, data: Any, ttl: int = 300
    ) -> None:
        await self._send(_wire.evidence(self._session_id, tool_name, evidence_key, data, ttl))

    async def set_context(self, key: str, value: Any) -> None:
        await self._send(_wire.context(self._session_id, key, value))

    async def get_session_state(self) -> SessionState:
        request = _wire.state(self._session_id)
        return _wire.session_state(request, await self._send(request))
