"""REGISTER to a trunk (RFC 3261 section 10) with digest auth, refreshed before it expires."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets

from telephony.sip.digest import DigestClient
from telephony.sip.errors import SipError
from telephony.sip.headers import NameAddr
from telephony.sip.message import Headers, Request, Response
from telephony.sip.transaction import new_tag
from telephony.sip.ua import Trunk, UserAgent
from telephony.sip.uri import SipUri

log = logging.getLogger("telephony.sip.registration")


def refresh_delay(expires: int) -> float:
    """When to re-register: well before expiry (half way for short ones, 30 s early for long ones)."""
    return max(1.0, min(expires * 0.5, expires - 30.0)) if expires > 2 else max(0.5, expires * 0.5)


class Registration:
    """Keeps one trunk registration alive."""

    def __init__(self, ua: UserAgent, trunk: Trunk) -> None:
        if not trunk.host:
            raise SipError(f"trunk {trunk.name!r}: register needs a host")
        self.ua = ua
        self.trunk = trunk
        self.registrar = SipUri.parse(f"sip:{trunk.host}" + (";transport=tcp" if trunk.transport.upper() == "TCP"
                                                             else ""))
        self.aor = SipUri(self.registrar.host, trunk.username or ua.user)
        self.call_id = secrets.token_hex(12)
        self.tag = new_tag()
        self.seq = 0
        self.credentials = DigestClient(trunk.username, trunk.password) if trunk.username else None
        self.expires = 0  # granted by the registrar
        self.registered = asyncio.Event()
        self.last_status = 0
        self._task: asyncio.Task[None] | None = None

    def _build(self, expires: int) -> Request:
        self.seq += 1
        transport = self.ua.transport_for(self.registrar)
        h = Headers()
        h.add("Max-Forwards", "70")
        h.add("From", str(NameAddr(self.aor, "", {"tag": self.tag})))
        h.add("To", str(NameAddr(self.aor)))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self.seq} REGISTER")
        h.add("Contact", self.ua.contact(transport))
        h.add("Expires", str(expires))
        h.add("User-Agent", self.ua.server_name)
        return Request(h, b"", "REGISTER", SipUri(self.registrar.host, None, self.registrar.port))

    async def register_once(self, expires: int | None = None) -> Response:
        """One REGISTER (answering a challenge); raises SipError when the registrar refuses."""
        want = self.trunk.expires if expires is None else expires
        _, resp = await self.ua.request_with_auth(lambda _seq: self._build(want), self.registrar, self.credentials)
        minimum = (resp.headers.get("Min-Expires") or "").strip()
        if resp.status == 423 and minimum.isdigit():
            # 423 Interval Too Brief: ask again with the registrar's minimum (RFC 3261 10.2.8).
            want = int(minimum)
            _, resp = await self.ua.request_with_auth(lambda _seq: self._build(want), self.registrar,
                                                      self.credentials)
        self.last_status = resp.status
        if resp.status >= 300:
            raise SipError(f"trunk {self.trunk.name!r}: REGISTER refused: {resp.status} {resp.reason}")
        self.expires = _granted(resp, want)
        if want > 0:
            self.registered.set()
        log.info("sip_registered" if want else "sip_unregistered",
                 extra={"fields": {"trunk": self.trunk.name, "expires": self.expires}})
        return resp

    def start(self) -> None:
        """Register now and keep refreshing in the background."""
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self.register_once()
                backoff = 1.0
                await asyncio.sleep(refresh_delay(self.expires))
            except asyncio.CancelledError:
                raise
            except SipError as exc:
                log.warning("sip_register_failed", extra={"fields": {"trunk": self.trunk.name, "error": str(exc)}})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)

    async def stop(self) -> None:
        """Stop refreshing and unregister (Expires: 0), best effort."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.registered.is_set():
            try:
                await asyncio.wait_for(self.register_once(0), 5.0)
            except (SipError, TimeoutError):
                pass


def _granted(resp: Response, asked: int) -> int:
    for value in resp.headers.get_all("Contact"):
        match = re.search(r";\s*expires\s*=\s*(\d+)", value, re.I)
        if match:
            return int(match.group(1))
    header = resp.headers.get("Expires")
    if header and header.strip().isdigit():
        return int(header.strip())
    return asked
