"""SIP over UDP and TCP with asyncio (RFC 3261 section 18)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telephony.sip.errors import SipError, SipParseError
from telephony.sip.message import StreamFramer, parse

log = logging.getLogger("telephony.sip.transport")

Addr = tuple[str, int]
OnMessage = Callable[[Any, "Transport", Addr], None]
OnBad = Callable[[bytes, SipParseError, "Transport", Addr], None]


class Transport:
    """One bound transport; delivers parsed messages and malformed bytes to the owner."""

    name = "UDP"
    reliable = False

    def __init__(self, on_message: OnMessage, on_bad: OnBad) -> None:
        self.on_message = on_message
        self.on_bad = on_bad
        self.local: Addr = ("127.0.0.1", 0)

    def send(self, data: bytes, addr: Addr) -> None:
        """Send one message (never blocks)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop receiving and release the socket(s)."""
        raise NotImplementedError

    def deliver(self, data: bytes, addr: Addr) -> None:
        """Parse and hand one message over; broken input goes to on_bad, never raises."""
        if not data.strip(b"\r\n"):
            return  # keep-alive
        try:
            msg = parse(data)
        except SipParseError as exc:
            self.on_bad(data, exc, self, addr)
            return
        except Exception as exc:  # a parser bug must not stop the transport
            log.warning("sip_parse_crash", extra={"fields": {"error": repr(exc)}})
            self.on_bad(data, SipParseError(f"unparsable message: {type(exc).__name__}"), self, addr)
            return
        self.on_message(msg, self, addr)


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.deliver(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


class UdpTransport(Transport):
    """SIP over UDP: one datagram is one message."""

    name = "UDP"
    reliable = False

    def __init__(self, on_message: OnMessage, on_bad: OnBad) -> None:
        super().__init__(on_message, on_bad)
        self._udp: asyncio.DatagramTransport | None = None

    @classmethod
    async def bind(cls, host: str, port: int, on_message: OnMessage, on_bad: OnBad) -> UdpTransport:
        """Bind a UDP socket."""
        self = cls(on_message, on_bad)
        loop = asyncio.get_running_loop()
        try:
            udp, _ = await loop.create_datagram_endpoint(lambda: _Datagram(self), local_addr=(host, port))
        except OSError as exc:
            raise SipError(f"cannot listen on udp {host}:{port}: {exc.strerror or exc}") from None
        self._udp = udp
        sock = udp.get_extra_info("sockname")
        self.local = (sock[0], sock[1])
        return self

    def send(self, data: bytes, addr: Addr) -> None:
        """Send one datagram."""
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(data, addr)

    def close(self) -> None:
        """Close the socket."""
        if self._udp is not None:
            self._udp.close()


@dataclass
class TcpLimits:
    """How long a TCP connection may sit idle or half-sent, and how many one source address may hold."""

    idle_timeout_s: float = 300.0  # nothing pending, nothing sent or received
    header_timeout_s: float = 10.0  # a message whose headers started but did not end (slowloris)
    body_timeout_s: float = 10.0  # headers done, body shorter than Content-Length
    max_per_source: int = 32  # connections from one IP address at once; more are refused


class _Stream(asyncio.Protocol):
    def __init__(self, owner: TcpTransport, peer: Addr | None = None) -> None:
        self.owner = owner
        self.peer = peer
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._active = 0.0  # last byte in or out
        self._since = 0.0  # when the current wait (headers or body) began
        self._waiting = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        accepted = self.peer is None
        if self.peer is None:
            p = transport.get_extra_info("peername")
            self.peer = (p[0], p[1])
        if accepted and self.owner.from_source(self.peer[0]) >= self.owner.limits.max_per_source:
            log.info("sip_tcp_refused", extra={"fields": {"peer": f"{self.peer[0]}:{self.peer[1]}",
                                                          "reason": "too many connections from this address"}})
            transport.abort()
            return
        self.owner.connections[self.peer] = self
        self.touch()

    def touch(self) -> None:
        """Bytes went in or out: re-arm the timer for what the connection now waits for."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._active = now
        waiting = self.framer.waiting_for
        if waiting != self._waiting:
            self._waiting, self._since = waiting, now
        limits = self.owner.limits
        deadline = {"": self._active + limits.idle_timeout_s, "headers": self._since + limits.header_timeout_s,
                    "body": self._since + limits.body_timeout_s}[waiting]
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        why = {"": "idle", "headers": "headers not finished", "body": "body not finished"}[self._waiting]
        assert self.peer is not None
        log.info("sip_tcp_reaped", extra={"fields": {"peer": f"{self.peer[0]}:{self.peer[1]}", "reason": why}})
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        try:
            frames = self.framer.feed(data)
        except SipParseError as exc:
            # The stream cannot be resynchronised after a framing error: answer once and drop it.
            self.owner.on_bad(bytes(self.framer.buffer), exc, self.owner, self.peer)
            if self.transport is not None:
                self.transport.close()
            return
        self.touch()
        for frame in frames:
            self.owner.deliver(frame, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.peer is not None and self.owner.connections.get(self.peer) is self:
            del self.owner.connections[self.peer]


class TcpTransport(Transport):
    """SIP over TCP: Content-Length framing, connections reused both ways, idle and slow ones reaped."""

    name = "TCP"
    reliable = True

    def __init__(self, on_message: OnMessage, on_bad: OnBad, limits: TcpLimits | None = None) -> None:
        super().__init__(on_message, on_bad)
        self.limits = limits or TcpLimits()
        self.connections: dict[Addr, _Stream] = {}
        self._server: asyncio.Server | None = None
        self._pending: dict[Addr, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def bind(cls, host: str, port: int, on_message: OnMessage, on_bad: OnBad,
                   limits: TcpLimits | None = None) -> TcpTransport:
        """Listen for TCP connections."""
        self = cls(on_message, on_bad, limits)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: _Stream(self), host, port, reuse_address=True)
        except OSError as exc:
            raise SipError(f"cannot listen on tcp {host}:{port}: {exc.strerror or exc}") from None
        sock = self._server.sockets[0].getsockname()
        self.local = (sock[0], sock[1])
        return self

    def from_source(self, host: str) -> int:
        """How many connections the address holds now."""
        return sum(1 for peer in self.connections if peer[0] == host)

    def send(self, data: bytes, addr: Addr) -> None:
        """Write on the connection to addr, opening one when there is none."""
        conn = self.connections.get(addr)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            conn.touch()
            return
        queue = self._pending.setdefault(addr, [])
        queue.append(data)
        if len(queue) == 1:
            task = asyncio.ensure_future(self._connect(addr))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, addr: Addr) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await loop.create_connection(lambda: _Stream(self, addr), addr[0], addr[1])
        except OSError as exc:
            log.info("tcp connect to %s:%s failed: %s", addr[0], addr[1], exc)
            self._pending.pop(addr, None)
            return
        for data in self._pending.pop(addr, []):
            assert proto.transport is not None
            proto.transport.write(data)

    def close(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        for task in list(self._tasks):
            task.cancel()
