"""A lean, pipelined Redis connection for reads and writes.

Redis answers the commands of one connection in order, so any number of requests can
share a connection: each queues its packed commands and waits for that many replies, which
hiredis parses in C. The commands of all requests made in one event-loop iteration go out
in one ``transport.write``, so under concurrency one system call serves many requests.
There is no pool to check out from and no per-reply timeout context; one timer per request
bounds it. A timeout or a broken connection fails everything in flight on that connection
(its reply stream can no longer be matched to requests) and the next request reconnects.
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


class _Waiter:
    """The replies one request expects; resolved when the last one arrives."""

    __slots__ = ("future", "remaining", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int) -> None:
        self.future = future
        self.remaining = count
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost: Any) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiters: deque[_Waiter] = deque()
        self.on_lost = on_lost
        #: Commands of requests made in this loop iteration, written together by flush().
        self.outgoing: list[bytes] = []
        self.flush_scheduled = False

    def send(self, payload: bytes, waiter: _Waiter) -> None:
        """Queue a request's commands; all queued in one loop iteration go in one write."""
        self.waiters.append(waiter)
        self.outgoing.append(payload)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

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
                loop.create_connection(lambda: _Protocol(lost), self.host, self.port, ssl=self.ssl),
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
        transport = protocol.transport
        if transport is None:
            raise StoreUnavailable("Redis connection is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        protocol.send(payload, _Waiter(future, count))
        timer = loop.call_later(self.timeout, _expire, protocol, future, self.timeout)
        try:
            return await future
        except StoreUnavailable as exc:
            raise OutcomeUnknown(str(exc)) from None  # sent; Redis may have run it
        finally:
            timer.cancel()

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


def _expire(protocol: _Protocol, future: asyncio.Future[list[Any]], timeout: float) -> None:
    if not future.done():
        protocol.fail(StoreUnavailable(f"Redis did not answer within {timeout:g} s"))


def hmget_payload(keys: Sequence[bytes], packed_fields: bytes, field_count: int) -> bytes:
    """HMGET for each key with the same, pre-packed fields."""
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (field_count + 2)
    return b"".join(head + pack_bulk(key) + packed_fields for key in keys)
