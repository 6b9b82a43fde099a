"""Registration against a scripted registrar: 423 Min-Expires, granted expiry, refresh timing."""

from __future__ import annotations

import asyncio
from typing import Any

from telephony.sip.message import Request, make_response, parse
from telephony.sip.registration import Registration, refresh_delay
from telephony.sip.ua import Trunk
from tests.telephony.sip.conftest import Harness


class Registrar(asyncio.DatagramProtocol):
    """Answers the first REGISTER with 423 (Min-Expires 60), later ones with 200 granting what was asked."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        req = parse(data)
        assert isinstance(req, Request) and req.method == "REGISTER"
        self.seen.append(req)
        if len(self.seen) == 1:
            resp = make_response(req, 423, "Interval Too Brief", to_tag="r")
            resp.headers.add("Min-Expires", "60")
        else:
            resp = make_response(req, 200, to_tag="r")
            resp.headers.add("Contact", f"{req.headers.get('Contact')};expires={req.headers.get('Expires')}")
        self.transport.sendto(resp.serialize(), addr)


def test_refresh_comes_before_expiry() -> None:
    assert refresh_delay(3600) == 1800
    assert refresh_delay(60) == 30
    assert refresh_delay(2) == 1.0
    for expires in (1, 2, 10, 31, 120, 7200):
        assert 0 < refresh_delay(expires) < expires


async def test_interval_too_brief_is_retried_with_min_expires(make_ua) -> None:
    loop = asyncio.get_running_loop()
    transport, registrar = await loop.create_datagram_endpoint(Registrar, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    h: Harness = await make_ua()
    reg = Registration(h.ua, Trunk(name="t", host=f"127.0.0.1:{port}", register=True, expires=30))
    try:
        resp = await reg.register_once()
        assert resp.status == 200 and reg.expires == 60
        assert [r.headers.get("Expires") for r in registrar.seen] == ["30", "60"]
        assert registrar.seen[0].call_id == registrar.seen[1].call_id  # one registration, CSeq grows
        assert registrar.seen[1].cseq.seq > registrar.seen[0].cseq.seq
    finally:
        transport.close()
