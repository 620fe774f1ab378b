"""A lean HTTP/1.1 keep-alive load client for the serve benchmarks: raw asyncio protocols (on uvloop
where installed), one connection per simulated client, request bytes built by string formatting.

Why not httpx: at 64 connections its async client spent more CPU per request than the server it was
measuring (55-77% of the two processes' CPU in the first serve_load run), so on a 2-core machine the
client, not the server, set the figures. This client does the least a client can: write a
prebuilt request, read until the headers and `Content-Length` bytes of body have arrived.

Every loop is bounded in count and time: `run_load` stops at `max_requests` sent or `seconds`
elapsed, whichever comes first. Loopback addresses only (127.0.0.1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A request: (path, body bytes, images expected in a 200 answer).
Request = tuple[str, bytes, int]

NOT_ACCEPTED = -1  # the connection failed before any byte of an answer: the server never took it
TRUNCATED = -2  # part of an answer came, then the connection closed: an accepted request left unanswered


@dataclass
class Tally:
    """What one run saw: per-request latency (s), answers by status, images in 200 answers."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    images: int = 0
    body_bytes: int = 0
    sent: int = 0
    started: float = 0.0
    wall: float = 0.0

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `ask` writes a request and waits for its whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.head_end = -1  # index of the blank line ending the answer's headers, once seen
        self.length = 0  # Content-Length of the answer being read
        self.status = 0
        self.close_after = False  # the server said `Connection: close`

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((TRUNCATED if self.buf else NOT_ACCEPTED, b""))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.head_end < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_end = end
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            self.length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
            self.close_after = b"\r\nconnection: close" in head
        total = self.head_end + 4 + self.length
        if len(self.buf) >= total and self.waiter is not None and not self.waiter.done():
            body = bytes(self.buf[self.head_end + 4 : total])
            del self.buf[:total]
            self.head_end = -1
            self.waiter.set_result((self.status, body))

    async def ask(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def request_bytes(path: str, body: bytes, host: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def run_load(
    host: str,
    port: int,
    make: Callable[[int], Request],
    clients: int,
    max_requests: int,
    seconds: float,
    check: Callable[[int, bytes, int], bool] | None = None,
    on_answer: Callable[[], None] | None = None,
) -> Tally:
    """`clients` connections, each sending request i = make(i) for the next free i and waiting for
    its answer, until `max_requests` are sent or `seconds` have passed. `check(i, body, images)`
    may verify a 200 answer's body (False counts it as an error, status 0). A connection the server
    closed is reopened for the next request (refused: counted NOT_ACCEPTED, and that client stops)."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    tally.started = time.perf_counter()
    deadline = tally.started + seconds
    hostport = f"{host}:{port}"

    async def open_connection() -> _Connection | None:
        try:
            _t, conn = await loop.create_connection(_Connection, host, port)
        except OSError:
            return None
        return conn

    async def client() -> None:
        conn = await open_connection()
        while tally.sent < max_requests and time.perf_counter() < deadline:
            if conn is None or conn.closed:
                conn = await open_connection()
                if conn is None:
                    tally.count(NOT_ACCEPTED)
                    return
            i = tally.sent
            tally.sent += 1
            path, body, images = make(i)
            t0 = time.perf_counter()
            status, answer = await conn.ask(request_bytes(path, body, hostport))
            tally.latencies.append(time.perf_counter() - t0)
            if status == 200 and check is not None and not check(i, answer, images):
                status = 0
            tally.count(status)
            if status == 200:
                tally.images += images
                tally.body_bytes += len(answer)
            if on_answer is not None:
                on_answer()
            if conn.close_after and conn.transport is not None:
                conn.transport.close()
                conn.closed = True
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    tally.wall = time.perf_counter() - tally.started
    return tally


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where installed (less client CPU per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
