"""The SIP user agent: answers and places calls, in-dialog requests, transfer, trunk policy.

Media stays outside: a ``MediaFactory`` opens one RTP leg per call (``telephony.media.RtpSession``
by default) and the UA only tells it what offer/answer agreed.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import ipaddress
import logging
import re
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from telephony.sdp import NoCommonCodec, SessionDescription, answer, negotiated_from_answer, offer
from telephony.sip.dialog import Dialog, uas_targets
from telephony.sip.digest import Challenge, DigestClient, DigestServer, strongest
from telephony.sip.errors import CallFailed, SipError, SipParseError, TransactionTimeout
from telephony.sip.headers import NameAddr
from telephony.sip.message import Headers, Request, Response, error_response, make_response
from telephony.sip.session_timer import MIN_SE, IntervalTooSmall, SessionExpires, negotiate
from telephony.sip.transaction import (
    InviteServerTransaction,
    ServerTransaction,
    Timers,
    TransactionLayer,
    new_branch,
    new_tag,
)
from telephony.sip.transport import Addr, TcpLimits, TcpTransport, Transport, UdpTransport
from telephony.sip.uri import SipUri, split_hostport

log = logging.getLogger("telephony.sip.ua")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY"
DEFAULT_ALLOW_IPS = ["127.0.0.1/32", "::1/128"]
# Option tags we honour when a peer sends Require: RFC 4028 session timers (UAS side); no 100rel/PRACK.
SUPPORTED: set[str] = {"timer"}


class MediaLeg(Protocol):
    """The RTP side of one call, as the UA sees it."""

    local_port: int

    def start(self, negotiated: Any) -> Any:
        """Begin sending/receiving with what offer/answer agreed (may be called again on re-INVITE)."""
        ...

    def hold(self, on: bool) -> Any:
        """Stop or resume sending while the peer holds the call."""
        ...

    def close(self) -> Any:
        """Release the sockets."""
        ...


MediaFactory = Callable[[str], Awaitable[MediaLeg]]


async def rtp_media(host: str) -> MediaLeg:
    """The default media factory: one ``telephony.media.RtpSession`` per call."""
    from telephony.media import RtpSession

    leg: MediaLeg = await RtpSession.open(host=host, port=0)
    return leg


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass
class Trunk:
    """A SIP trunk (provider or PBX): who may call us, and how we register and dial out."""

    name: str = "trunk"
    host: str = ""  # host[:port] of the trunk's proxy/registrar
    allow_ips: list[str] = field(default_factory=list)  # addresses/networks whose INVITEs are accepted
    username: str = ""
    password: str = ""
    realm: str = ""
    register: bool = False
    expires: int = 3600
    transport: str = "UDP"
    trust_identity: bool = False  # believe the P-Asserted-Identity of INVITEs from this trunk's addresses (RFC 3325)


class TrunkPolicy:
    """Inbound admission: an IP allow-list and/or a digest challenge per trunk; strangers get 403."""

    def __init__(self, trunks: list[Trunk], default_allow: list[str] | None = None) -> None:
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for t in trunks:
            for ip in t.allow_ips:
                nets.append(ipaddress.ip_network(ip, strict=False))
            if t.register and t.host:
                # A provider we register with calls us from its own address when that is a literal IP.
                try:
                    nets.append(ipaddress.ip_network(split_hostport(t.host)[0]))
                except (ValueError, SipParseError):
                    pass  # a DNS name: list the provider's addresses in allow_ips
        if not trunks:
            nets = [ipaddress.ip_network(n) for n in (default_allow if default_allow is not None
                                                      else DEFAULT_ALLOW_IPS)]
        self.networks = nets
        creds = {t.username: t.password for t in trunks if t.username and t.password and not t.register}
        realm = next((t.realm for t in trunks if t.realm), "voice-agent")
        self.digest = DigestServer(realm, creds) if creds else None

    def allowed_ip(self, host: str) -> bool:
        """Whether the source address is on the allow-list."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in n for n in self.networks)

    def check(self, request: Request, source: Addr) -> tuple[str, Challenge | None]:
        """("allow" | "challenge" | "deny", challenge to send)."""
        if self.allowed_ip(source[0]):
            return "allow", None
        if self.digest is None:
            return "deny", None
        auth = request.headers.get("Authorization")
        if auth:
            ok, stale = self.digest.verify(auth, request.method, request.body)
            if ok:
                return "allow", None
            if not stale:
                return "deny", None
            return "challenge", self.digest.challenge(stale=True)
        return "challenge", self.digest.challenge()


@dataclass
class TransferResult:
    """How a REFER ended."""

    ok: bool
    status: int  # the REFER's final status, or the sipfrag status from NOTIFY
    reason: str = ""


class Call:
    """One call (one INVITE dialog) with its media leg."""

    def __init__(self, ua: UserAgent, direction: str, media: MediaLeg, transport: Transport) -> None:
        self.ua = ua
        self.direction = direction
        self.media = media
        self.transport = transport
        self.dialog: Dialog | None = None
        self.negotiated: Any = None
        self.local_sdp: SessionDescription | None = None
        self.remote_sdp: SessionDescription | None = None
        self.call_id = ""
        self.remote_party = ""
        self.asserted_identity = ""  # an inbound INVITE's P-Asserted-Identity: believe it only from a trusted peer
        self.peer: tuple[str, int] = ("", 0)  # where an inbound INVITE came from
        self.state = "setup"  # setup -> ringing -> answered -> confirmed -> ended
        self.end_reason = ""
        self.ended = asyncio.Event()
        self.confirmed = asyncio.Event()
        self.dtmf: asyncio.Queue[str] = asyncio.Queue()  # digits from SIP INFO
        self.on_hold = False
        self.handler: asyncio.Task[None] | None = None
        self._ok_retransmit: asyncio.TimerHandle | None = None
        self._ok_data: bytes = b""
        self._ok_dest: Addr = ("", 0)
        self._ok_interval = 0.0
        self._ok_deadline = 0.0
        self._ack_data: bytes | None = None  # our ACK to a 2xx, resent when the 2xx is retransmitted
        self._notify: asyncio.Queue[tuple[int, str, bool]] = asyncio.Queue()
        self._invite_tx: InviteServerTransaction | None = None
        self._answer_gate: asyncio.Event = asyncio.Event()
        self._ending = False
        self.session_expires: SessionExpires | None = None  # RFC 4028 timer agreed for this call
        self._session_timer: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        """The SIP Call-ID."""
        return self.call_id

    def __repr__(self) -> str:
        return f"Call({self.direction} {self.call_id} {self.state})"

    # ---- the 2xx retransmission of a UAS (13.3.1.4) ----------------------------------
    def _arm_ok(self, data: bytes, dest: Addr) -> None:
        """Retransmit an already sent 2xx to INVITE until the ACK (T1 doubling to T2, 64*T1 at most)."""
        self._stop_ok()
        self._ok_data = data
        self._ok_dest = dest
        if self.transport.reliable:
            return
        loop = asyncio.get_running_loop()
        self._ok_interval = self.ua.timers.t1
        self._ok_deadline = loop.time() + self.ua.timers.b
        self._ok_retransmit = loop.call_later(self._ok_interval, self._resend_ok)

    def _resend_ok(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._ok_deadline:
            self._ok_retransmit = None
            log.info("sip_ack_timeout", extra={"fields": {"sip_call_id": self.call_id}})
            self.ua._spawn(self._end_with_bye("no ACK"))
            return
        self.transport.send(self._ok_data, self._ok_dest)
        self._ok_interval = min(2 * self._ok_interval, self.ua.timers.t2)
        self._ok_retransmit = loop.call_later(self._ok_interval, self._resend_ok)

    def _stop_session_timer(self) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None

    def _stop_ok(self) -> None:
        if self._ok_retransmit is not None:
            self._ok_retransmit.cancel()
            self._ok_retransmit = None

    # ---- actions ------------------------------------------------------------------------
    async def hangup(self, reason: str = "local-bye") -> None:
        """Send BYE (or CANCEL before answer) and end the call."""
        if self.state == "ended" or self._ending:
            await self.ended.wait()
            return
        await self._end_with_bye(reason)

    async def _end_with_bye(self, reason: str) -> None:
        if self.state == "ended" or self._ending:
            return
        self._ending = True
        self._stop_ok()
        if self.dialog is not None and self.state in ("answered", "confirmed"):
            try:
                resp = await self.ua._send_in_dialog(self, "BYE")
                log.debug("bye answered %s", resp.status)
            except (SipError, OSError) as exc:
                log.info("sip_bye_failed", extra={"fields": {"sip_call_id": self.call_id, "error": str(exc)}})
        elif self._invite_tx is not None and not self._invite_tx.answered:
            self._invite_tx.respond(make_response(self._invite_tx.request, 480, "Temporarily Unavailable",
                                                  self.dialog.local_tag if self.dialog else None))
        await self.ua._end_call(self, reason)

    async def set_hold(self, on: bool) -> bool:
        """Put the peer on hold (re-INVITE with a=sendonly) or take it off; True when the peer agreed."""
        if self.dialog is None or self.local_sdp is None or self.state not in ("answered", "confirmed"):
            return False
        names = [self.negotiated.codec.name] if self.negotiated is not None else list(self.ua.codecs)
        sdp = offer(self.ua.media_host, self.media.local_port, [*names, "telephone-event"],
                    session_id=self.local_sdp.origin.session_id, direction="sendonly" if on else "sendrecv")
        sdp.origin.session_version = self.local_sdp.origin.session_version + 1
        resp = await self.ua._send_in_dialog(self, "INVITE", body=sdp.serialize().encode(),
                                             content_type="application/sdp", ack=True)
        if resp.status >= 300:
            return False
        self.local_sdp = sdp
        try:
            self.remote_sdp = SessionDescription.parse(resp.text())
            self.negotiated = negotiated_from_answer(sdp, self.remote_sdp)
        except Exception:
            return False
        await _maybe_await(self.media.start(self.negotiated))
        await _maybe_await(self.media.hold(on))
        self.on_hold = on
        return True

    async def refer(self, target: str, timeout: float = 30.0) -> TransferResult:
        """Blind transfer (RFC 3515): REFER the peer to ``target`` and follow the NOTIFY sipfrags."""
        if self.dialog is None or self.state not in ("answered", "confirmed"):
            return TransferResult(False, 481, "no dialog")
        extra = [("Refer-To", f"<{target}>"), ("Referred-By", f"<{self.dialog.local.uri}>")]
        try:
            resp = await self.ua._send_in_dialog(self, "REFER", extra)
        except SipError as exc:
            return TransferResult(False, 408, str(exc))
        if resp.status >= 300:
            return TransferResult(False, resp.status, resp.reason)
        log.info("sip_refer_accepted", extra={"fields": {"sip_call_id": self.call_id, "status": resp.status}})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return TransferResult(False, 408, "no final NOTIFY")
            try:
                status, reason, terminated = await asyncio.wait_for(self._notify.get(), remaining)
            except TimeoutError:
                return TransferResult(False, 408, "no final NOTIFY")
            if status >= 200:
                return TransferResult(200 <= status < 300, status, reason)
            if terminated:
                return TransferResult(False, status or 487, "subscription terminated")


ORIGINATE_TIMEOUT = 60.0


class UserAgent:
    """A SIP user agent on UDP and/or TCP: inbound calls, outbound calls, trunk policy, shutdown."""

    def __init__(
        self,
        on_call: Callable[[Call], Awaitable[None]],
        *,
        host: str = "127.0.0.1",
        port: int = 5060,
        transports: tuple[str, ...] = ("UDP", "TCP"),
        timers: Timers | None = None,
        policy: TrunkPolicy | None = None,
        max_calls: int = 8,
        min_se: int = MIN_SE,
        codecs: list[str] | None = None,
        media: MediaFactory = rtp_media,
        media_host: str | None = None,
        user: str = "agent",
        answer_delay: float = 0.0,
        server_name: str = "voice-agent",
        tcp_limits: TcpLimits | None = None,
        admit: Callable[[], tuple[str, int] | None] | None = None,
    ) -> None:
        self.on_call = on_call
        # measured load: None to answer, or (why, Retry-After seconds) to turn a new call away with 503
        self.admit = admit
        self.host = host
        self.port = port
        self.transport_names = tuple(t.upper() for t in transports)
        self.timers = timers or Timers()
        self.layer = TransactionLayer(self.timers)
        self.policy = policy or TrunkPolicy([])
        self.max_calls = max_calls
        self.min_se = min_se  # RFC 4028: the shortest session interval we accept (422 below it)
        self.codecs = codecs or ["PCMU", "PCMA"]
        self.media = media
        self.media_host = media_host or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
        self.user = user
        self.answer_delay = answer_delay
        self.server_name = server_name
        self.tcp_limits = tcp_limits or TcpLimits()
        self.transports: dict[str, Transport] = {}
        self.calls: dict[str, Call] = {}  # by Call-ID
        self.accepting = True
        self.stats = {"invites": 0, "answered": 0, "rejected": 0, "bad_requests": 0}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reserved: set[str] = set()  # Call-IDs of INVITEs being set up (media opening)
        self._dns: dict[str, str] = {}  # host name -> address, filled off the event loop

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the transports (UDP and TCP share one port; port 0 picks a free one)."""
        # with port 0 the first transport picks the port; that number may already be taken for the other
        # protocol (RTP sockets and peers share the ephemeral range), so try another one
        kinds: list[tuple[str, type[UdpTransport] | type[TcpTransport]]] = []
        for name in self.transport_names:
            cls = UdpTransport if name == "UDP" else TcpTransport if name == "TCP" else None
            if cls is None:
                raise SipError(f"unsupported SIP transport {name!r} (UDP, TCP)")
            kinds.append((name, cls))
        attempts = 20 if self.port == 0 else 1
        for attempt in range(attempts):
            port = self.port
            try:
                for name, cls in kinds:
                    bound = await cls.bind(self.host, port, self._on_message, self._on_bad)
                    if isinstance(bound, TcpTransport):
                        bound.limits = self.tcp_limits
                    self.transports[name] = bound
                    port = bound.local[1]
            except SipError:
                for t in self.transports.values():
                    t.close()
                self.transports.clear()
                if attempt == attempts - 1 or port == self.port:  # not a clash on the second protocol
                    raise
                continue
            self.port = port
            return

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown: 503 to new INVITEs, let calls finish up to ``timeout``, then BYE the rest."""
        self.accepting = False
        calls = list(self.calls.values())
        if calls:
            waits = [asyncio.ensure_future(c.ended.wait()) for c in calls]
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for w in pending:
                w.cancel()
        remaining = [c for c in self.calls.values() if c.state != "ended"]
        if remaining:
            # A vanished peer would keep a BYE retransmitting for 64*T1: shutdown does not wait that long.
            byes = [asyncio.ensure_future(c.hangup("shutdown")) for c in remaining]
            await asyncio.wait(byes, timeout=min(2.0, self.timers.b))
            for c in remaining:
                await self._end_call(c, "shutdown")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.layer.close()
        for t in self.transports.values():
            t.close()
        self.transports.clear()

    @property
    def active_calls(self) -> int:
        """Calls that hold a slot (ringing or up)."""
        up = {cid for cid, c in self.calls.items() if c.state != "ended"}
        return len(up | self._reserved)

    def contact(self, transport: Transport) -> str:
        """Our Contact header value for a transport."""
        param = ";transport=tcp" if transport.name == "TCP" else ""
        return f"<sip:{self.user}@{self._advertised(transport)}{param}>"

    def _advertised(self, transport: Transport) -> str:
        host, port = transport.local
        if host in ("0.0.0.0", "::"):
            host = self.media_host
        return f"{host}:{port}"

    def _via(self, transport: Transport) -> str:
        return f"SIP/2.0/{transport.name} {self._advertised(transport)};branch={new_branch()};rport"

    def transport_for(self, uri: SipUri) -> Transport:
        """The started transport that reaches uri (its transport parameter, else the first one)."""
        name = uri.transport
        t = self.transports.get(name) or next(iter(self.transports.values()), None)
        if t is None:
            raise SipError("the user agent is not started")
        return t

    def _response_headers(self, response: Response, transport: Transport, contact: bool = False) -> Response:
        response.headers.add("Server", self.server_name)
        if contact:
            response.headers.add("Contact", self.contact(transport))
        return response

    # ---- receiving --------------------------------------------------------------------------
    def _on_bad(self, data: bytes, exc: SipParseError, transport: Transport, addr: Addr) -> None:
        self.stats["bad_requests"] += 1
        log.info("sip_bad_message", extra={"fields": {"peer": f"{addr[0]}:{addr[1]}", "error": str(exc)}})
        resp = error_response(data, str(exc), exc.status)
        if resp is None:
            return
        try:
            dest = addr if transport.reliable else resp.via.response_address(addr)
        except (SipParseError, ValueError):
            dest = addr
        transport.send(self._response_headers(resp, transport).serialize(), dest)

    def _on_message(self, msg: Request | Response, transport: Transport, addr: Addr) -> None:
        try:
            if isinstance(msg, Response):
                self._on_response(msg)
            else:
                self._on_request(msg, transport, addr)
        except SipParseError as exc:  # a header the parser let through but a handler could not use
            self._on_bad(msg.serialize(), exc, transport, addr)
        except Exception:
            log.exception("sip_handler_error", extra={"fields": {"sip_call_id": msg.call_id}})

    def _on_response(self, response: Response) -> None:
        tx = self.layer.match_response(response)
        if tx is not None:
            tx.receive(response)
            return
        if response.cseq.method == "INVITE" and 200 <= response.status < 300:
            call = self.calls.get(response.call_id)
            if call is not None and call._ack_data is not None:
                call.transport.send(call._ack_data, self._addr_of(call.dialog.next_hop() if call.dialog
                                                                  else SipUri("invalid")))

    def _on_request(self, request: Request, transport: Transport, addr: Addr) -> None:
        tx = self.layer.match_request(request)
        if tx is not None:
            tx.receive(request)
            return
        if request.method == "ACK":
            self._on_ack(request)
            return
        # Max-Forwards: 0 is a proxy's concern; an endpoint processes the request (RFC 4475 3.3.13).
        stx = self.layer.server(request, transport, addr)
        if request.method == "CANCEL":
            self._on_cancel(request, stx)
            return
        unsupported = _unsupported(request)
        if unsupported and request.method != "INVITE":  # the INVITE path answers 420 after its 100
            resp = make_response(request, 420)
            resp.headers.add("Unsupported", ", ".join(unsupported))
            stx.respond(self._response_headers(resp, transport))
            return
        to_tag = request.to.tag
        if to_tag:
            self._in_dialog(request, stx, transport)
            return
        if request.method == "INVITE":
            assert isinstance(stx, InviteServerTransaction)
            self._spawn(self._on_invite(request, stx, transport, addr))
        elif request.method == "OPTIONS":
            resp = make_response(request, 200, to_tag=new_tag())
            resp.headers.add("Allow", ALLOW)
            resp.headers.add("Accept", "application/sdp")
            if SUPPORTED:
                resp.headers.add("Supported", ", ".join(sorted(SUPPORTED)))
            stx.respond(self._response_headers(resp, transport, contact=True))
        elif request.method in ("BYE", "INFO", "NOTIFY", "UPDATE", "PRACK"):
            stx.respond(self._response_headers(make_response(request, 481), transport))
        elif request.method in ("REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE", "REFER"):
            resp = make_response(request, 405)
            resp.headers.add("Allow", ALLOW)
            stx.respond(self._response_headers(resp, transport))
        else:
            resp = make_response(request, 501)
            resp.headers.add("Allow", ALLOW)
            stx.respond(self._response_headers(resp, transport))

    def _on_ack(self, request: Request) -> None:
        call = self.calls.get(request.call_id)
        if call is None or call.dialog is None or request.to.tag != call.dialog.local_tag:
            return
        call._stop_ok()
        if request.body and call.negotiated is None and call.local_sdp is not None:
            # Late offer: our 200 carried the offer, the ACK carries the answer.
            try:
                call.remote_sdp = SessionDescription.parse(request.text())
                call.negotiated = negotiated_from_answer(call.local_sdp, call.remote_sdp)
            except Exception as exc:
                log.info("sip_bad_ack_sdp", extra={"fields": {"sip_call_id": call.call_id, "error": str(exc)}})
                self._spawn(call._end_with_bye("bad SDP in ACK"))
                return
            self._spawn(_maybe_await(call.media.start(call.negotiated)))
        if call.state == "answered":
            call.state = "confirmed"
            call.confirmed.set()

    def _on_cancel(self, request: Request, stx: ServerTransaction) -> None:
        invite = self.layer.find_invite(request)
        transport = stx.transport
        if invite is None:
            stx.respond(self._response_headers(make_response(request, 481), transport))
            return
        stx.respond(self._response_headers(make_response(request, 200), transport))
        call = self.calls.get(request.call_id)
        if invite.answered:
            return  # too late: the call is up and the caller will BYE it
        tag = call.dialog.local_tag if call is not None and call.dialog is not None else new_tag()
        invite.respond(self._response_headers(make_response(invite.request, 487, to_tag=tag), transport))
        if call is not None:
            call._answer_gate.set()
            self._spawn(self._end_call(call, "cancelled"))

    # ---- inbound INVITE ----------------------------------------------------------------------
    async def _on_invite(self, request: Request, tx: InviteServerTransaction, transport: Transport,
                         addr: Addr) -> None:
        self.stats["invites"] += 1
        cid = request.call_id

        def reject(status: int, reason: str | None = None, **headers: str) -> None:
            self.stats["rejected"] += 1
            resp = make_response(request, status, reason, to_tag=new_tag())
            for k, v in headers.items():
                resp.headers.add(k.replace("_", "-"), v)
            tx.respond(self._response_headers(resp, transport))
            log.info("sip_invite_rejected", extra={"fields": {"sip_call_id": cid, "status": status,
                                                               "peer": f"{addr[0]}:{addr[1]}"}})

        tx.respond(self._response_headers(make_response(request, 100), transport))
        if not self.accepting:
            reject(503, "Service Unavailable", Retry_After="30")
            return
        verdict, challenge = self.policy.check(request, addr)
        if verdict == "deny":
            reject(403)
            return
        if verdict == "challenge":
            assert challenge is not None
            reject(401, WWW_Authenticate=str(challenge))
            return
        unsupported = _unsupported(request)
        if unsupported:
            reject(420, Unsupported=", ".join(unsupported))
            return
        try:
            negotiate(request, self.min_se)
        except IntervalTooSmall as exc:
            reject(422, Min_SE=str(exc.min_se))
            return
        except SipParseError as exc:
            reject(400, f"Bad Request ({_clean(str(exc))})")
            return
        try:
            uas_targets(request)  # a Contact or Record-Route we could never send BYE to
        except SipParseError as exc:
            reject(400, f"Bad Request ({_clean(str(exc))})")
            return
        if not _accepts_sdp(request):
            reject(406, Accept="application/sdp")
            return
        if cid in self.calls or cid in self._reserved:
            reject(482)  # a second INVITE for a call we already have, on another branch
            return
        if self.active_calls >= self.max_calls:
            reject(486)
            return
        refusal = self.admit() if self.admit is not None else None
        if refusal is not None:
            # RFC 3261 21.5.4: 503 with Retry-After is how a server says it is overloaded
            log.warning("sip_invite_overloaded", extra={"fields": {"sip_call_id": cid, "why": refusal[0]}})
            reject(503, "Service Unavailable", Retry_After=str(refusal[1]))
            return
        # Hold the slot while media opens: concurrent INVITEs must not all squeeze past the limit.
        self._reserved.add(cid)
        try:
            await self._answer_invite(request, tx, transport, addr, reject)
        except Exception as exc:
            # Whatever fails after the media leg opened: the leg is closed, the caller gets a final answer.
            log.warning("sip_invite_failed", extra={"fields": {"sip_call_id": cid, "error": _clean(str(exc))}})
            call = self.calls.get(cid)
            if call is not None and call._invite_tx is tx:
                await self._end_call(call, "error")
            if not tx.answered:
                reject(getattr(exc, "status", 500) if isinstance(exc, SipParseError) else 500)
        finally:
            self._reserved.discard(cid)

    async def _answer_invite(self, request: Request, tx: InviteServerTransaction, transport: Transport,
                             addr: Addr, reject: Callable[..., None]) -> None:
        cid = request.call_id
        remote_sdp: SessionDescription | None = None
        if request.body:
            if request.content_type != "application/sdp":
                reject(415, Accept="application/sdp")
                return
            try:
                remote_sdp = SessionDescription.parse(request.text())
            except Exception as exc:
                reject(400, f"Bad SDP ({_clean(str(exc))})")
                return
        media_leg: MediaLeg | None = None
        try:
            media_leg = await self.media(self.media_host)
            if remote_sdp is not None:
                local_sdp, negotiated = answer(remote_sdp, self.media_host, media_leg.local_port, self.codecs)
            else:
                local_sdp, negotiated = offer(self.media_host, media_leg.local_port,
                                              [*self.codecs, "telephone-event"]), None
        except NoCommonCodec as exc:
            if media_leg is not None:
                await _maybe_await(media_leg.close())
            reject(488, Warning=f'304 {self.server_name} "{_clean(str(exc))}"')
            return
        except Exception as exc:
            if media_leg is not None:
                await _maybe_await(media_leg.close())
            log.warning("sip_media_error", extra={"fields": {"sip_call_id": cid, "error": str(exc)}})
            reject(500 if not isinstance(exc, SipError) else 488)
            return
        call = Call(self, "inbound", media_leg, transport)
        call.call_id = cid
        call._invite_tx = tx
        self.calls[cid] = call  # from here on a failure ends the call, which closes the leg
        call.remote_party = str(request.from_.uri)
        call.asserted_identity = request.headers.get("P-Asserted-Identity") or ""
        call.peer = (addr[0], addr[1])
        call.remote_sdp, call.local_sdp, call.negotiated = remote_sdp, local_sdp, negotiated
        tag = new_tag()
        call.dialog = Dialog.from_uas(request, tag)
        log.info("sip_call_ringing", extra={"fields": {"sip_call_id": cid, "from": call.remote_party,
                                                        "peer": f"{addr[0]}:{addr[1]}"}})
        tx.respond(self._response_headers(make_response(request, 180, to_tag=tag), transport, contact=True))
        call.state = "ringing"
        if self.answer_delay > 0:
            try:
                await asyncio.wait_for(call._answer_gate.wait(), self.answer_delay)
            except TimeoutError:
                pass
        if call.state == "ended" or tx.answered:
            return  # cancelled while ringing
        ok = make_response(request, 200, to_tag=tag, body=local_sdp.serialize().encode(),
                           content_type="application/sdp")
        ok.headers.add("Allow", ALLOW)
        call.session_expires = negotiate(request, self.min_se)
        _add_session_expires(ok, call.session_expires)
        self._response_headers(ok, transport, contact=True)
        if negotiated is not None:
            await _maybe_await(media_leg.start(negotiated))
            call.on_hold = bool(getattr(negotiated, "on_hold", False))
        tx.respond(ok)  # the transaction goes to Accepted; the UA core retransmits the 2xx until ACK
        call.state = "answered"
        call._arm_ok(tx.last or b"", addr if transport.reliable else request.via.response_address(addr))
        self._arm_session_timer(call)
        self.stats["answered"] += 1
        log.info("sip_call_answered", extra={"fields": {"sip_call_id": cid, "codec": _codec_name(negotiated)}})
        call.handler = self._spawn(self._run_handler(call))

    async def _run_handler(self, call: Call) -> None:
        try:
            await asyncio.wait_for(call.confirmed.wait(), self.timers.b + 1)
        except TimeoutError:
            return  # no ACK: _resend_ok already ended the call with BYE
        if call.state == "ended":
            return
        try:
            await self.on_call(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            # One broken call must never take the server down: log it with its id and hang up.
            log.exception("call_handler_crashed", extra={"fields": {"sip_call_id": call.call_id}})
        if call.state != "ended":
            await call.hangup("local-bye")

    async def _end_call(self, call: Call, reason: str) -> None:
        if call.state == "ended":
            return
        call.state = "ended"
        call.end_reason = call.end_reason or reason
        call._stop_ok()
        call._stop_session_timer()
        try:
            await _maybe_await(call.media.close())
        except Exception:
            log.debug("media close failed", exc_info=True)
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        call.ended.set()
        call.confirmed.set()  # wake anyone waiting for an ACK that will never come
        call._answer_gate.set()  # and stop ringing
        log.info("sip_call_ended", extra={"fields": {"sip_call_id": call.call_id, "reason": call.end_reason}})

    # ---- in-dialog requests -------------------------------------------------------------------
    def _in_dialog(self, request: Request, stx: ServerTransaction, transport: Transport) -> None:
        call = self.calls.get(request.call_id)
        d = call.dialog if call is not None else None
        # A caller that sent no From tag (RFC 2543) has the empty remote tag, not None (RFC 3261 12.2.2).
        if call is None or d is None or request.to.tag != d.local_tag or (request.from_.tag or "") != d.remote_tag:
            stx.respond(self._response_headers(make_response(request, 481), transport))
            return
        if not d.accept_remote(request):
            stx.respond(self._response_headers(make_response(request, 500, "Out Of Order CSeq"), transport))
            return
        m = request.method
        if m == "BYE":
            stx.respond(self._response_headers(make_response(request, 200), transport))
            call.end_reason = "remote-bye"
            self._spawn(self._end_call(call, "remote-bye"))
        elif m == "INVITE":
            assert isinstance(stx, InviteServerTransaction)
            self._spawn(self._reinvite(call, request, stx, transport))
        elif m == "INFO":
            self._on_info(call, request, stx, transport)
        elif m == "NOTIFY":
            stx.respond(self._response_headers(make_response(request, 200), transport))
            self._on_notify(call, request)
        elif m == "OPTIONS":
            resp = make_response(request, 200)
            resp.headers.add("Allow", ALLOW)
            stx.respond(self._response_headers(resp, transport))
        else:
            resp = make_response(request, 405 if m in ("REFER", "UPDATE", "MESSAGE", "SUBSCRIBE") else 501)
            resp.headers.add("Allow", ALLOW)
            stx.respond(self._response_headers(resp, transport))

    def _on_info(self, call: Call, request: Request, stx: ServerTransaction, transport: Transport) -> None:
        ctype = request.content_type
        if ctype not in ("application/dtmf-relay", "application/dtmf", ""):
            resp = make_response(request, 415)
            resp.headers.add("Accept", "application/dtmf-relay, application/dtmf")
            stx.respond(self._response_headers(resp, transport))
            return
        digit = _dtmf_from_info(request.text(), ctype)
        stx.respond(self._response_headers(make_response(request, 200), transport))
        if digit:
            call.dtmf.put_nowait(digit)
            log.info("sip_dtmf_info", extra={"fields": {"sip_call_id": call.call_id, "digit": digit}})

    def _on_notify(self, call: Call, request: Request) -> None:
        state = (request.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
        status, reason = 0, ""
        match = re.match(r"\s*SIP/2\.0\s+(\d{3})\s*(.*)", request.text())
        if match:
            status, reason = int(match.group(1)), match.group(2).strip()
        call._notify.put_nowait((status, reason, state == "terminated"))

    async def _reinvite(self, call: Call, request: Request, stx: InviteServerTransaction,
                        transport: Transport) -> None:
        assert call.dialog is not None
        tx_resp = self._response_headers
        try:
            session_expires = negotiate(request, self.min_se)  # a refresh may change the interval or end the timer
        except IntervalTooSmall as exc:
            too_small = make_response(request, 422)
            too_small.headers.add("Min-SE", str(exc.min_se))
            stx.respond(tx_resp(too_small, transport))
            return
        except SipParseError as exc:
            stx.respond(tx_resp(make_response(request, 400, f"Bad Request ({_clean(str(exc))})"), transport))
            return
        if request.body:
            try:
                remote = SessionDescription.parse(request.text())
                # The answer keeps our port; the session version must grow (RFC 3264 section 8).
                local, negotiated = answer(remote, self.media_host, call.media.local_port, self.codecs)
                if call.local_sdp is not None:
                    local.origin.session_id = call.local_sdp.origin.session_id
                    local.origin.session_version = call.local_sdp.origin.session_version + 1
            except NoCommonCodec:
                stx.respond(tx_resp(make_response(request, 488), transport))
                return
            except Exception as exc:
                stx.respond(tx_resp(make_response(request, 400, f"Bad SDP ({_clean(str(exc))})"), transport))
                return
            call.remote_sdp, call.local_sdp, call.negotiated = remote, local, negotiated
            hold = bool(getattr(negotiated, "on_hold", False))
            await _maybe_await(call.media.start(negotiated))
            await _maybe_await(call.media.hold(hold))
            if hold != call.on_hold:
                log.info("sip_hold" if hold else "sip_unhold", extra={"fields": {"sip_call_id": call.call_id}})
            call.on_hold = hold
        else:
            local = call.local_sdp  # type: ignore[assignment]  # session refresh without an offer: offer the current session again
        body = local.serialize().encode() if local is not None else b""
        ok = make_response(request, 200, body=body, content_type="application/sdp" if body else None)
        ok.headers.add("Allow", ALLOW)
        call.session_expires = session_expires
        _add_session_expires(ok, session_expires)
        tx_resp(ok, transport, contact=True)
        stx.respond(ok)
        dest = stx.addr if transport.reliable else request.via.response_address(stx.addr)
        call._arm_ok(stx.last or b"", dest)
        self._arm_session_timer(call)

    # ---- RFC 4028 session timers --------------------------------------------------------------
    def _arm_session_timer(self, call: Call) -> None:
        """Refresh at half the interval when we are the refresher; else BYE if no refresh comes in time."""
        call._stop_session_timer()
        se = call.session_expires
        if se is None or call.state == "ended":
            return
        loop = asyncio.get_running_loop()
        if se.we_refresh:
            call._session_timer = loop.call_later(se.refresh_after(), lambda: self._spawn(self._refresh(call)))
        else:
            call._session_timer = loop.call_later(se.expire_after(),
                                                  lambda: self._spawn(self._session_expired(call)))

    async def _session_expired(self, call: Call) -> None:
        log.info("sip_session_expired", extra={"fields": {"sip_call_id": call.call_id}})
        await call._end_with_bye("session-expired")

    async def _refresh(self, call: Call) -> None:
        """Our session refresh: a re-INVITE offering the current session again (RFC 4028 section 7.4)."""
        se = call.session_expires
        if se is None or call.state not in ("answered", "confirmed") or call.local_sdp is None:
            return
        try:
            resp = await self._send_in_dialog(call, "INVITE", [("Session-Expires", str(se)), ("Supported", "timer")],
                                              body=call.local_sdp.serialize().encode(),
                                              content_type="application/sdp", ack=True)
        except SipError as exc:
            resp = None
            log.info("sip_refresh_failed", extra={"fields": {"sip_call_id": call.call_id, "error": str(exc)}})
        if resp is None or resp.status >= 300:
            await call._end_with_bye("session-refresh-failed")
            return
        value = resp.headers.get("Session-Expires")
        if value:
            try:
                call.session_expires = SessionExpires.parse(value)
            except SipParseError:
                pass
        self._arm_session_timer(call)

    # ---- sending ---------------------------------------------------------------------------------
    def _addr_of(self, uri: SipUri) -> Addr:
        """(ip, port) for a URI; names resolve through the cache _resolve fills (never blocking DNS here)."""
        host = uri.params.get("maddr") or uri.host
        return self._dns.get(host, host), uri.port or 5060

    async def _resolve(self, uri: SipUri) -> Addr:
        """Resolve the URI's host once, off the event loop (A/AAAA only: no NAPTR/SRV)."""
        host = uri.params.get("maddr") or uri.host
        if not _is_ip(host) and host not in self._dns:
            try:
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET  # what our sockets can reach
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, family=family,
                                                                     type=socket.SOCK_DGRAM)
            except OSError as exc:
                raise SipError(f"cannot resolve {host!r}: {exc}") from None
            self._dns[host] = str(infos[0][4][0])
        return self._addr_of(uri)

    async def _send_in_dialog(self, call: Call, method: str, extra: list[tuple[str, str]] | None = None,
                              body: bytes = b"", content_type: str | None = None, ack: bool = False) -> Response:
        assert call.dialog is not None
        hop = call.dialog.next_hop()
        transport = self.transport_for(hop) if hop.params.get("transport") else call.transport
        req = call.dialog.request(method, self._via(transport), self.contact(transport))
        for k, v in extra or []:
            req.headers.add(k, v)
        if content_type:
            req.headers.add("Content-Type", content_type)
        req.body = body
        req.headers.add("User-Agent", self.server_name)
        tx = self.layer.client(req, transport, await self._resolve(hop))
        resp = await tx.final
        if ack and 200 <= resp.status < 300:
            # A re-INVITE's 2xx is acknowledged end to end, like the first one.
            ack_req = call.dialog.request("ACK", self._via(transport), cseq=req.cseq.seq)
            call._ack_data = ack_req.serialize()
            transport.send(call._ack_data, self._addr_of(hop))
        return resp

    async def request(self, req: Request, dest: SipUri, on_provisional: Callable[[Response], None] | None = None
                      ) -> Response:
        """Send an out-of-dialog request (its top Via is added here) and wait for the final response."""
        transport = self.transport_for(dest)
        req.headers.add("Via", self._via(transport), first=True)
        tx = self.layer.client(req, transport, await self._resolve(dest), on_provisional)
        return await tx.final

    async def request_with_auth(self, build: Callable[[int], Request], dest: SipUri,
                                credentials: DigestClient | None,
                                on_provisional: Callable[[Response], None] | None = None) -> tuple[Request, Response]:
        """Send a request built for a CSeq; answer one 401/407 digest challenge with the credentials."""
        seq = 1
        req = build(seq)
        resp = await self.request(req, dest, on_provisional)
        if resp.status in (401, 407) and credentials is not None:
            header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
            challenge = strongest(resp.headers.get_all(header))  # never a weaker algorithm than offered
            if challenge is not None:
                req = build(seq + 1)
                auth = credentials.authorization(challenge, req.method, str(req.uri), req.body)
                req.headers.add("Authorization" if resp.status == 401 else "Proxy-Authorization", auth)
                resp = await self.request(req, dest, on_provisional)
        return req, resp

    async def invite(self, target: str, *, credentials: DigestClient | None = None, proxy: str | None = None,
                     from_user: str | None = None, timeout: float = ORIGINATE_TIMEOUT) -> Call:
        """Place an outbound call and wait until it is answered; raises CallFailed on a final error."""
        uri = SipUri.parse(target)
        dest = SipUri.parse(proxy) if proxy else uri
        transport = self.transport_for(dest)
        media_leg = await self.media(self.media_host)
        local_sdp = offer(self.media_host, media_leg.local_port, [*self.codecs, "telephone-event"])
        call = Call(self, "outbound", media_leg, transport)
        call.call_id = secrets.token_hex(12) + "@" + self.media_host
        call.remote_party = str(uri)
        call.local_sdp = local_sdp
        from_tag = new_tag()
        user = from_user or self.user
        local = NameAddr(SipUri(self._advertised(transport).rsplit(":", 1)[0], user), "", {"tag": from_tag})

        def build(seq: int) -> Request:
            h = Headers()
            h.add("Max-Forwards", "70")
            h.add("From", str(local))
            h.add("To", str(NameAddr(uri)))
            h.add("Call-ID", call.call_id)
            h.add("CSeq", f"{seq} INVITE")
            h.add("Contact", self.contact(transport))
            h.add("Allow", ALLOW)
            h.add("User-Agent", self.server_name)
            h.add("Content-Type", "application/sdp")
            return Request(h, local_sdp.serialize().encode(), "INVITE", uri)

        self.calls[call.call_id] = call
        call.state = "calling"
        try:
            req, resp = await asyncio.wait_for(self.request_with_auth(build, dest, credentials), timeout)
        except (TimeoutError, TransactionTimeout):
            await self._end_call(call, "timeout")
            raise CallFailed(408, "Request Timeout") from None
        except BaseException:
            await self._end_call(call, "error")
            raise
        if resp.status >= 300:
            await self._end_call(call, f"rejected {resp.status}")
            raise CallFailed(resp.status, resp.reason)
        call.dialog = Dialog.from_uac(req, resp)
        ack = call.dialog.request("ACK", self._via(transport), cseq=req.cseq.seq)
        for value in req.headers.get_all("Authorization"):
            ack.headers.add("Authorization", value)
        call._ack_data = ack.serialize()
        transport.send(call._ack_data, self._addr_of(call.dialog.next_hop()))
        call.state = "confirmed"
        call.confirmed.set()
        try:
            call.remote_sdp = SessionDescription.parse(resp.text())
            call.negotiated = negotiated_from_answer(local_sdp, call.remote_sdp)
        except Exception as exc:
            await call.hangup("bad answer")
            raise CallFailed(488, f"unusable SDP answer: {_clean(str(exc))}") from None
        await _maybe_await(media_leg.start(call.negotiated))
        log.info("sip_call_connected", extra={"fields": {"sip_call_id": call.call_id, "to": str(uri),
                                                          "codec": _codec_name(call.negotiated)}})
        return call


def _dtmf_from_info(body: str, ctype: str) -> str | None:
    """The digit of an INFO body; the media package's parser when present, else Signal=/bare digit."""
    try:
        dtmf = importlib.import_module("telephony.dtmf")
    except ImportError:
        dtmf = None
    parser = getattr(dtmf, "parse_dtmf_info", None)
    if parser is not None:
        try:
            return str(parser(body, ctype or "application/dtmf-relay"))
        except Exception:
            return None
    match = re.search(r"(?im)^\s*(?:signal\s*=\s*)?([0-9*#A-Da-d])\s*$", body)
    return match.group(1).upper() if match else None


def _add_session_expires(response: Response, se: SessionExpires | None) -> None:
    """Session-Expires in a 2xx; Require: timer when the caller is the refresher (RFC 4028 section 9)."""
    if se is None:
        return
    response.headers.add("Session-Expires", str(se))
    response.headers.add("Supported", "timer")
    if not se.we_refresh:
        response.headers.add("Require", "timer")


def _unsupported(request: Request) -> list[str]:
    """The option tags of Require that we do not support (RFC 3261 8.2.2.3)."""
    return [o for v in request.headers.get_all("Require") for o in [v.strip()]
            if o and o.lower() not in SUPPORTED]


def _accepts_sdp(request: Request) -> bool:
    """Whether the caller's Accept (when it sent one) lets us answer with SDP (RFC 4475 3.3.15)."""
    values = request.headers.get_all("Accept")
    if not values or all(not v.strip() for v in values):
        return True
    kinds = {v.split(";")[0].strip().lower() for v in ",".join(values).split(",")}
    return bool(kinds & {"application/sdp", "application/*", "*/*"})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _codec_name(negotiated: Any) -> str:
    codec = getattr(negotiated, "codec", None)
    return str(getattr(codec, "name", "")) if codec is not None else ""


def _clean(text: str) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", text).replace('"', "'")[:100]
