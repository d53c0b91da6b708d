"""A lean, pipelined Redis connection for reads and writes.

Redis answers the commands of one connection in order, so any number of requests can
share a connection: each queues its packed commands and waits for that many replies, which
hiredis parses in C. The commands of all requests made in one event-loop iteration go out
in one ``transport.write``, so under concurrency one system call serves many requests.
There is no pool to check out from and no timer per request: each request notes its
deadline, and one timer per connection, running while requests are in flight, checks the
oldest (replies come in order, so it is the first to be late). A timeout or a broken
connection fails everything in flight on that connection (its reply stream can no longer
be matched to requests) and the next request reconnects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis

from stores.base import OutcomeUnknown, StoreUnavailable


def pack_command(*parts: bytes) -> bytes:
    """RESP encoding of one command."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def pack_bulk(part: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(part), part)


#: How often a connection with requests in flight checks the oldest one's deadline, as a
#: fraction of the timeout: a late reply is noticed within 1.25 x the timeout.
CHECKS_PER_TIMEOUT = 4


class _Waiter:
    """The replies one request expects; resolved when the last one arrives."""

    __slots__ = ("deadline", "future", "remaining", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int, deadline: float) -> None:
        self.future = future
        self.remaining = count
        self.replies: list[Any] = []
        self.deadline = deadline


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost: Any, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiters: deque[_Waiter] = deque()
        self.on_lost = on_lost
        self.loop = loop
        self.timeout = timeout
        #: Commands of requests made in this loop iteration, written together by flush().
        self.outgoing: list[bytes] = []
        self.flush_scheduled = False
        self.watchdog: asyncio.TimerHandle | None = None

    def send(self, payload: bytes, count: int) -> asyncio.Future[list[Any]]:
        """Queue a request's commands; all queued in one loop iteration go in one write.
        The future gets the ``count`` replies."""
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self.waiters.append(_Waiter(future, count, self.loop.time() + self.timeout))
        self.outgoing.append(payload)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout / CHECKS_PER_TIMEOUT, self.check)
        return future

    def check(self) -> None:
        """Fail the connection if its oldest request is past its deadline."""
        self.watchdog = None
        if not self.waiters:
            return
        if self.waiters[0].deadline <= self.loop.time():
            self.fail(StoreUnavailable(f"Redis did not answer within {self.timeout:g} s"))
            return
        self.watchdog = self.loop.call_later(self.timeout / CHECKS_PER_TIMEOUT, self.check)

    def flush(self) -> None:
        self.flush_scheduled = False
        outgoing, self.outgoing = self.outgoing, []
        if self.transport is not None and outgoing:
            self.transport.write(b"".join(outgoing))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.waiters
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(StoreUnavailable(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiters:
                self.fail(StoreUnavailable("Redis sent a reply nobody asked for"))
                return
            waiter = waiters[0]
            waiter.replies.append(reply)
            waiter.remaining -= 1
            if waiter.remaining == 0:
                waiters.popleft()
                if not waiter.future.done():
                    waiter.future.set_result(waiter.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(StoreUnavailable(f"Redis connection lost: {exc or 'closed by the server'}"))

    def fail(self, error: StoreUnavailable) -> None:
        """Fail every request in flight and drop the connection."""
        waiters, self.waiters = self.waiters, deque()
        self.outgoing = []
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self.on_lost(self)


class PipelinedRedis:
    """A few shared connections to one Redis server, used round-robin."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        use_ssl: bool = False,
        timeout: float = 5.0,
        connections: int = 2,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.ssl = ssl.create_default_context() if use_ssl else None
        self.timeout = timeout
        self._slots: list[_Protocol | None] = [None] * max(connections, 1)
        self._connecting: list[asyncio.Task[_Protocol] | None] = [None] * len(self._slots)
        self._next = 0

    async def _open(self, slot: int) -> _Protocol:
        loop = asyncio.get_running_loop()

        def lost(protocol: _Protocol) -> None:
            if self._slots[slot] is protocol:
                self._slots[slot] = None

        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Protocol(lost, loop, self.timeout), self.host, self.port, ssl=self.ssl
                ),
                self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise StoreUnavailable(
                f"cannot connect to Redis at {self.host}:{self.port}: {exc or 'timed out'}"
            ) from None
        setup = []
        if self.password is not None:
            auth = [self.username.encode()] if self.username else []
            setup.append(pack_command(b"AUTH", *auth, self.password.encode()))
        if self.db:
            setup.append(pack_command(b"SELECT", str(self.db).encode()))
        if setup:
            replies = await self._send(protocol, b"".join(setup), len(setup))
            for reply in replies:
                if isinstance(reply, hiredis.ReplyError):
                    protocol.fail(StoreUnavailable(f"Redis refused the connection: {reply}"))
                    raise StoreUnavailable(f"Redis refused the connection: {reply}")
        self._slots[slot] = protocol
        return protocol

    async def _connection(self) -> _Protocol:
        slot = self._next
        self._next = (slot + 1) % len(self._slots)
        protocol = self._slots[slot]
        if protocol is not None:
            return protocol
        task = self._connecting[slot]
        if task is None or task.done():
            task = asyncio.ensure_future(self._open(slot))
            self._connecting[slot] = task
        return await asyncio.shield(task)

    async def _send(self, protocol: _Protocol, payload: bytes, count: int) -> list[Any]:
        if protocol.transport is None:
            raise StoreUnavailable("Redis connection is closed")
        try:
            return await protocol.send(payload, count)
        except StoreUnavailable as exc:
            raise OutcomeUnknown(str(exc)) from None  # sent; Redis may have run it

    async def execute(self, payload: bytes, count: int) -> list[Any]:
        """Send packed commands and return their ``count`` replies, in order."""
        if count == 0:
            return []  # a waiter for no replies would swallow the next request's
        protocol = await self._connection()
        return await self._send(protocol, payload, count)

    async def close(self) -> None:
        for protocol in self._slots:
            if protocol is not None and protocol.transport is not None:
                protocol.transport.close()
        self._slots = [None] * len(self._slots)


def hmget_payload(keys: Sequence[bytes], packed_fields: bytes, field_count: int) -> bytes:
    """HMGET for each key with the same, pre-packed fields."""
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (field_count + 2)
    return b"".join(head + pack_bulk(key) + packed_fields for key in keys)
