"""The HTTP side every client shares, synchronous and asyncio: the base
URL, the bearer token read from the environment once, one request with
its failures turned into :class:`~helio.HelioError`, and closing."""

from __future__ import annotations

from typing import Any

import httpx

from . import _wire


class SyncTransport:
    def __init__(self, proxy_url: str, token_env: str, timeout: float) -> None:
        self._proxy_url = _wire.base_url(proxy_url)
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self._proxy_url, timeout=timeout, headers=_wire.auth_headers(token_env)
        )

    @property
    def proxy_url(self) -> str:
        return self._proxy_url

    def _send(self, request: _wire.Request) -> bytes:
        try:
            response = self._http.request(**_wire.http_arguments(request, self._timeout))
        except httpx.HTTPError as exc:
            raise _wire.failure(exc, request, self._proxy_url) from exc
        _wire.check(request, response.status_code, response.content)
        return response.content

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTransport:
    def __init__(self, proxy_url: str, token_env: str, timeout: float) -> None:
        self._proxy_url = _wire.base_url(proxy_url)
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self._proxy_url, timeout=timeout, headers=_wire.auth_headers(token_env)
        )

    @property
    def proxy_url(self) -> str:
        return self._proxy_url

    async def _send(self, request: _wire.Request) -> bytes:
        try:
            response = await self._http.request(**_wire.http_arguments(request, self._timeout))
        except httpx.HTTPError as exc:
            raise _wire.failure(exc, request, self._proxy_url) from exc
        _wire.check(request, response.status_code, response.content)
        return response.content

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
