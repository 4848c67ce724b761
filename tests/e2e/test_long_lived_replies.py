"""Replies that stay open (MCP 2026-07-28's `subscriptions/listen`: an
acknowledgement, then notifications for as long as the client listens) are
relayed as they arrive, whatever their content type, and are not cut by
`upstream.request_timeout`, which bounds only the response head. A real HTTP
server stands in for such an upstream: it answers with a chunked body that
it keeps open, in `application/json` and in `text/event-stream`."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import pytest

from conftest import HelioLauncher

ACK = b'{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete"}}'


class SlowUpstream:
    """Answers every POST with `content_type`, sends the first chunk at once,
    then another after `pause` seconds, then ends the body."""

    def __init__(self, content_type: str, first: bytes, second: bytes, pause: float) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.content_type, self.first, self.second, self.pause = content_type, first, second, pause
        threading.Thread(target=self.serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
            while len(rest) < length:
                rest += conn.recv(65536)

            def chunk(payload: bytes) -> bytes:
                return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"

            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: " + self.content_type.encode()
                + b"\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n" + chunk(self.first)
            )
            time.sleep(self.pause)
            try:
                conn.sendall(chunk(self.second) + b"0\r\n\r\n")
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()


LISTEN = {"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {}}


@pytest.mark.parametrize(
    ("content_type", "first", "second"),
    [
        ("application/json", ACK[:-1], b"}"),
        # A notification, a quiet stretch, then the response.
        ("text/event-stream",
         b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"x"}}\n\n',
         b"event: message\ndata: " + ACK + b"\n\n"),
    ],
)
def test_an_open_reply_is_relayed_as_it_arrives_and_outlives_the_request_timeout(
    helio: HelioLauncher, content_type: str, first: bytes, second: bytes
) -> None:
    upstream = SlowUpstream(content_type, first, second, pause=2.5)
    try:
        instance = helio({"upstream": {"request_timeout": "1s"}}, upstream=upstream.url)
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json",
                   "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen"}
        started = time.monotonic()
        arrivals: list[tuple[float, bytes]] = []
        with httpx.stream("POST", instance.mcp_url, json=LISTEN, headers=headers, timeout=15) as reply:
            assert reply.status_code == 200
            for piece in reply.iter_raw():
                arrivals.append((time.monotonic() - started, piece))
        body = b"".join(piece for _, piece in arrivals)
        assert body == first + second, body
        # The first part arrived long before the upstream finished, and the
        # quiet stretch (2.5 s) outlived the 1 s request timeout.
        assert arrivals[0][0] < 2.0, arrivals
        assert arrivals[-1][0] >= 2.4, arrivals
    finally:
        upstream.close()
