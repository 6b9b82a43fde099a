"""SIP transactions (RFC 3261 section 17, RFC 6026): client and server, INVITE and non-INVITE.

Timer names follow the RFC: A/B/D for the INVITE client, E/F/K for the non-INVITE client,
G/H/I (and L, RFC 6026) for the INVITE server, J for the non-INVITE server. T1 is
configurable so that tests run the real state machines in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from telephony.sip.errors import TransactionTimeout
from telephony.sip.message import Headers, Request, Response
from telephony.sip.transport import Addr, Transport

log = logging.getLogger("telephony.sip.transaction")
MAGIC = "z9hG4bK"


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie plus randomness)."""
    return MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag."""
    return secrets.token_hex(6)


@dataclass
class Timers:
    """RFC 3261 timer values in seconds (T1 round-trip estimate, T2 cap, T4 network lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def b(self) -> float:
        """Transaction timeout (B, F, H, J, L): 64*T1."""
        return 64 * self.t1


class State(Enum):
    """Transaction states."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class _Base:
    def __init__(self, layer: TransactionLayer, request: Request, transport: Transport, addr: Addr) -> None:
        self.layer = layer
        self.request = request
        self.transport = transport
        self.addr = addr
        self.state = State.TRYING
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.branch = request.via.branch
        self.on_terminated: Callable[[], None] | None = None

    @property
    def timers(self) -> Timers:
        return self.layer.timers

    def _start(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        self._stop(name)
        self._timers[name] = asyncio.get_running_loop().call_later(delay, fn)

    def _stop(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.layer._forget(self)
        if self.on_terminated is not None:
            self.on_terminated()


class ClientTransaction(_Base):
    """Non-INVITE client transaction (17.1.2): timers E, F, K."""

    def __init__(self, layer: TransactionLayer, request: Request, transport: Transport, addr: Addr,
                 on_provisional: Callable[[Response], None] | None = None) -> None:
        super().__init__(layer, request, transport, addr)
        self.on_provisional = on_provisional
        self.final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._data = request.serialize()
        self._interval = self.timers.t1

    @property
    def key(self) -> tuple[str, str]:
        """Responses match on branch and CSeq method."""
        return self.branch, self.request.method

    def start(self) -> None:
        """Send the request and arm the timers."""
        self.transport.send(self._data, self.addr)
        if not self.transport.reliable:
            self._start("E", self._interval, self._retransmit)
        self._start("F", self.timers.b, self._timeout)

    def _retransmit(self) -> None:
        self.transport.send(self._data, self.addr)
        if self.state is State.PROCEEDING:
            self._interval = self.timers.t2
        else:
            self._interval = min(2 * self._interval, self.timers.t2)
        self._start("E", self._interval, self._retransmit)

    def _timeout(self) -> None:
        if not self.final.done():
            self.final.set_exception(TransactionTimeout(f"no response to {self.request.method} (timer F)"))
        self._terminate()

    def receive(self, response: Response) -> None:
        """Feed a matching response."""
        if self.state in (State.COMPLETED, State.TERMINATED):
            return
        if response.status < 200:
            self.state = State.PROCEEDING
            if self.on_provisional is not None:
                self.on_provisional(response)
            return
        self._stop("E")
        self._stop("F")
        if not self.final.done():
            self.final.set_result(response)
        self.state = State.COMPLETED
        self._start("K", 0 if self.transport.reliable else self.timers.t4, self._terminate)


class InviteClientTransaction(ClientTransaction):
    """INVITE client transaction (17.1.1): timers A, B, D; ACK for non-2xx finals."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.state = State.CALLING
        self._ack: bytes | None = None

    def start(self) -> None:
        """Send the INVITE and arm timers A and B."""
        self.transport.send(self._data, self.addr)
        if not self.transport.reliable:
            self._start("A", self._interval, self._retransmit)
        self._start("B", self.timers.b, self._timeout)

    def _retransmit(self) -> None:
        if self.state is not State.CALLING:
            return
        self.transport.send(self._data, self.addr)
        self._interval *= 2  # timer A doubles without the T2 cap
        self._start("A", self._interval, self._retransmit)

    def _timeout(self) -> None:
        if not self.final.done():
            self.final.set_exception(TransactionTimeout("no final response to INVITE (timer B)"))
        self._terminate()

    def receive(self, response: Response) -> None:
        """Feed a matching response."""
        if self.state is State.TERMINATED:
            return
        if self.state is State.COMPLETED:
            if response.status >= 300 and self._ack is not None:
                self.transport.send(self._ack, self.addr)  # our ACK was lost
            return
        self._stop("A")
        if response.status < 200:
            self.state = State.PROCEEDING
            if self.on_provisional is not None:
                self.on_provisional(response)
            return
        self._stop("B")
        if not self.final.done():
            self.final.set_result(response)
        if response.status < 300:
            self._terminate()  # the TU acknowledges 2xx itself, end to end
            return
        self._ack = self._build_ack(response).serialize()
        self.transport.send(self._ack, self.addr)
        self.state = State.COMPLETED
        self._start("D", 0 if self.transport.reliable else self.timers.b, self._terminate)

    def _build_ack(self, response: Response) -> Request:
        req = self.request
        h = Headers()
        h.add("Via", req.headers.get_all("Via")[0])
        for route in req.headers.get_all("Route"):
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", req.headers.get("From") or "")
        h.add("To", response.headers.get("To") or "")
        h.add("Call-ID", req.call_id)
        h.add("CSeq", f"{req.cseq.seq} ACK")
        return Request(h, b"", "ACK", req.uri)


class ServerTransaction(_Base):
    """Non-INVITE server transaction (17.2.2): timer J; retransmitted requests get the last response."""

    def __init__(self, layer: TransactionLayer, request: Request, transport: Transport, addr: Addr) -> None:
        super().__init__(layer, request, transport, addr)
        self.last: bytes | None = None
        self.last_status = 0

    @property
    def key(self) -> tuple[str, str, str]:
        """Requests match on branch, sent-by and method (ACK matches its INVITE)."""
        via = self.request.via
        method = "INVITE" if self.request.method == "ACK" else self.request.method
        return _server_key(self.request, via.branch, f"{via.host}:{via.port or 5060}", method)

    def _destination(self) -> Addr:
        if self.transport.reliable:
            return self.addr
        return self.request.via.response_address(self.addr)

    def respond(self, response: Response) -> None:
        """Send a response through the transaction."""
        if self.state in (State.COMPLETED, State.CONFIRMED, State.TERMINATED, State.ACCEPTED):
            return
        self.last = response.serialize()
        self.last_status = response.status
        self.transport.send(self.last, self._destination())
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        self.state = State.COMPLETED
        self._start("J", 0 if self.transport.reliable else self.timers.b, self._terminate)

    def receive(self, request: Request) -> None:
        """A retransmission of the request."""
        if self.last is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            self.transport.send(self.last, self._destination())

    @property
    def answered(self) -> bool:
        """Whether a final response went out."""
        return self.last_status >= 200


class InviteServerTransaction(ServerTransaction):
    """INVITE server transaction (17.2.1 with RFC 6026): timers G, H, I, L."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.state = State.PROCEEDING
        self._interval = self.timers.t1
        self.on_ack_timeout: Callable[[], None] | None = None

    def respond(self, response: Response) -> None:
        """Send a response; 2xx moves to Accepted, 3xx-6xx to Completed with retransmissions."""
        if self.state is not State.PROCEEDING:
            return
        self.last = response.serialize()
        self.last_status = response.status
        self.transport.send(self.last, self._destination())
        if response.status < 200:
            return
        if response.status < 300:
            self.state = State.ACCEPTED
            self._start("L", self.timers.b, self._terminate)
            return
        self.state = State.COMPLETED
        if not self.transport.reliable:
            self._start("G", self._interval, self._retransmit)
        self._start("H", self.timers.b, self._ack_timeout)

    def _retransmit(self) -> None:
        if self.state is not State.COMPLETED or self.last is None:
            return
        self.transport.send(self.last, self._destination())
        self._interval = min(2 * self._interval, self.timers.t2)
        self._start("G", self._interval, self._retransmit)

    def _ack_timeout(self) -> None:
        if self.on_ack_timeout is not None:
            self.on_ack_timeout()
        self._terminate()

    def receive(self, request: Request) -> None:
        """A retransmitted INVITE (resend the last response) or the ACK of a non-2xx final."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._stop("G")
                self._stop("H")
                self._start("I", 0 if self.transport.reliable else self.timers.t4, self._terminate)
            return
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last is not None:
            self.transport.send(self.last, self._destination())


def _server_key(request: Request, branch: str, sent_by: str, method: str) -> tuple[str, str, str]:
    if branch.startswith(MAGIC):
        # The Call-ID rides along: two different requests that reuse one branch (RFC 4475's messages do)
        # are not retransmissions of each other.
        return f"{branch}|{request.call_id}", sent_by, method
    # RFC 2543 peers: no usable branch, so fall back to the dialog-ish identity.
    return f"{request.call_id}|{request.cseq.seq}|{request.from_.tag}", sent_by, method


class TransactionLayer:
    """Matches messages to transactions and owns their lifetimes."""

    def __init__(self, timers: Timers | None = None) -> None:
        self.timers = timers or Timers()
        self.clients: dict[tuple[str, str], ClientTransaction] = {}
        self.servers: dict[tuple[str, str, str], ServerTransaction] = {}

    def _forget(self, tx: _Base) -> None:
        if isinstance(tx, ClientTransaction):
            if self.clients.get(tx.key) is tx:
                del self.clients[tx.key]
        elif isinstance(tx, ServerTransaction) and self.servers.get(tx.key) is tx:
            del self.servers[tx.key]

    def client(self, request: Request, transport: Transport, addr: Addr,
               on_provisional: Callable[[Response], None] | None = None) -> ClientTransaction:
        """Start a client transaction for a request whose top Via already has a fresh branch."""
        cls = InviteClientTransaction if request.method == "INVITE" else ClientTransaction
        tx = cls(self, request, transport, addr, on_provisional)
        self.clients[tx.key] = tx
        tx.start()
        return tx

    def match_response(self, response: Response) -> ClientTransaction | None:
        """The client transaction a response belongs to."""
        try:
            key = (response.via.branch, response.cseq.method)
        except Exception:
            return None
        return self.clients.get(key)

    def match_request(self, request: Request) -> ServerTransaction | None:
        """The server transaction of a retransmission (or of the INVITE a non-2xx ACK belongs to)."""
        via = request.via
        method = "INVITE" if request.method == "ACK" else request.method
        return self.servers.get(_server_key(request, via.branch, f"{via.host}:{via.port or 5060}", method))

    def find_invite(self, cancel: Request) -> InviteServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (same branch and sent-by)."""
        via = cancel.via
        tx = self.servers.get(_server_key(cancel, via.branch, f"{via.host}:{via.port or 5060}", "INVITE"))
        return tx if isinstance(tx, InviteServerTransaction) else None

    def server(self, request: Request, transport: Transport, addr: Addr) -> ServerTransaction:
        """Create the server transaction for a new request (not for ACK)."""
        cls = InviteServerTransaction if request.method == "INVITE" else ServerTransaction
        tx = cls(self, request, transport, addr)
        self.servers[tx.key] = tx
        return tx

    def close(self) -> None:
        """Terminate everything (timers cancelled, pending futures failed)."""
        for tx in list(self.clients.values()):
            if not tx.final.done():
                tx.final.set_exception(TransactionTimeout("transaction layer closed"))
            tx._terminate()
        for stx in list(self.servers.values()):
            stx._terminate()
