"""The asynchronous client: :class:`HelioClient`'s methods, awaitable."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from . import _wire
from .types import SessionState

__all__ = ["AsyncHelioClient"]


class AsyncHelioClient:
    """:class:`~helio.HelioClient` for asyncio code: the same constructor,
    properties and methods, each a coroutine, and ``async with``."""

    def __init__(
        self,
        proxy_url: str = _wire.DEFAULT_URL,
        session_id: str | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._proxy_url = _wire.base_url(proxy_url)
        self._session_id = session_id or uuid.uuid4().hex
        self._http = httpx.AsyncClient(
            base_url=self._proxy_url, timeout=timeout, headers=_wire.auth_headers()
        )

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def proxy_url(self) -> str:
        return self._proxy_url

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

    async def _send(self, request: _wire.Request) -> bytes:
        try:
            response = await self._http.request(**_wire.http_arguments(request))
        except httpx.HTTPError as exc:
            raise _wire.failure(exc, request, self._proxy_url) from exc
        _wire.check(request, response.status_code, response.content)
        return response.content

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHelioClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
