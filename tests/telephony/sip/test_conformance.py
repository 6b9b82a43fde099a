"""Requests an outside probe found mishandled, sent raw over UDP to a running user agent with real RTP legs."""

from __future__ import annotations

import asyncio
import secrets

from telephony.sip.errors import CallFailed
from telephony.sip.message import Response, parse
from telephony.sip.ua import rtp_media
from tests.telephony.sip.conftest import (
    SDP_OFFER,
    Harness,
    fds_back_to,
    final_response,
    open_fds,
    raw_request,
    udp_client,
    wait_for_calls,
)


async def _ask(ua_port: int, data: bytes, call_id: str, method: str = "") -> tuple[int, str, str]:
    """Send one request from a fresh socket; (status, To header, whole response text) of its final answer."""
    loop = asyncio.get_running_loop()
    sock, _ = udp_client()
    try:
        await loop.sock_sendto(sock, data, ("127.0.0.1", ua_port))
        resp = await final_response(sock, call_id, method)
    finally:
        sock.close()
    return resp.status, resp.headers.get("To") or "", resp.serialize().decode()


async def test_invite_with_a_non_sip_contact_or_record_route_gets_400_and_leaks_nothing(make_ua) -> None:
    h: Harness = await make_ua(media=rtp_media)  # real RTP legs: two sockets per call
    sock, port = udp_client()
    loop = asyncio.get_running_loop()
    before = open_fds()
    for i in range(30):
        cid = f"badcontact-{i}"
        extra = ("Contact: <http://example.com/caller>\r\n" if i % 2 == 0
                 else f"Contact: <sip:caller@127.0.0.1:{port}>\r\nRecord-Route: <mailto:proxy@example.com>\r\n")
        await loop.sock_sendto(sock, raw_request("INVITE", port, cid, extra=extra, body=SDP_OFFER),
                               ("127.0.0.1", h.ua.port))
        resp = await final_response(sock, cid)
        assert resp.status == 400, resp.serialize()
        assert resp.to.tag  # every error carries a To tag
    assert await fds_back_to(before) <= before, "RTP sockets of rejected INVITEs were not closed"
    assert h.ua.calls == {} and h.calls == []
    sock.close()


async def test_a_failure_after_the_media_leg_opened_closes_it(make_ua) -> None:
    from tests.telephony.sip.conftest import FakeMedia

    class Exploding(FakeMedia):
        def start(self, negotiated: object) -> None:
            raise RuntimeError("codec init failed")

    legs: list[Exploding] = []

    async def media(host: str) -> Exploding:
        legs.append(Exploding())
        return legs[-1]

    h: Harness = await make_ua(media=media)
    caller: Harness = await make_ua()
    try:
        await caller.ua.invite(f"sip:agent@{h.target}", timeout=5)
        raise AssertionError("the call should have failed")
    except CallFailed as exc:
        assert exc.status == 500
    assert legs and legs[0].closed and h.ua.calls == {}


async def test_bye_ends_a_dialog_whose_caller_sent_no_from_tag(make_ua) -> None:
    h: Harness = await make_ua()
    sock, port = udp_client()
    loop = asyncio.get_running_loop()
    cid = "no-from-tag"
    await loop.sock_sendto(sock, raw_request("INVITE", port, cid, from_tag=None, body=SDP_OFFER,
                                             extra=f"Contact: <sip:caller@127.0.0.1:{port}>\r\n"),
                           ("127.0.0.1", h.ua.port))
    ok = await final_response(sock, cid)
    assert ok.status == 200 and ok.to.tag
    await loop.sock_sendto(sock, raw_request("ACK", port, cid, from_tag=None, to_tag=ok.to.tag),
                           ("127.0.0.1", h.ua.port))
    await wait_for_calls(h)
    await loop.sock_sendto(sock, raw_request("BYE", port, cid, cseq=2, from_tag=None, to_tag=ok.to.tag),
                           ("127.0.0.1", h.ua.port))
    bye = await final_response(sock, cid, "BYE")
    assert bye.status == 200
    await asyncio.wait_for(h.calls[0].ended.wait(), 2)
    assert h.calls[0].end_reason == "remote-bye"
    sock.close()


async def test_parser_conformance_answers(make_ua) -> None:
    h: Harness = await make_ua()
    port = 9  # responses travel back to the sending socket through rport

    def req(method: str, cid: str, **kw: object) -> bytes:
        return raw_request(method, port, cid, **kw)  # type: ignore[arg-type]

    # LWS around the slashes of Via's sent-protocol is legal (RFC 3261 25.1, RFC 4475 3.1.1.1).
    via = f"SIP / 2.0 / UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(4)};rport"
    assert (await _ask(h.ua.port, req("OPTIONS", "lws-via", via=via), "lws-via"))[0] == 200
    # A well-formed but unknown method, digits included, is not implemented (501), not malformed.
    status, to, _ = await _ask(h.ua.port, req("FROB2", "method-digits"), "method-digits")
    assert status == 501 and ";tag=" in to
    # An odd rtpmap on a stream we do not use does not sink the offer.
    offer = SDP_OFFER + "m=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
    status, _, text = await _ask(h.ua.port, req("INVITE", "video-lpc", body=offer), "video-lpc")
    assert status == 200 and "m=video 0 " in text
    await wait_for_calls(h)
    # Request-URIs of another scheme: 416, with a To tag.
    status, to, _ = await _ask(h.ua.port, req("OPTIONS", "tel-uri", uri="tel:+15555550100"), "tel-uri")
    assert status == 416 and ";tag=" in to
    # Require with an unknown option tag: 420 for any method, not only INVITE.
    status, to, text = await _ask(h.ua.port, req("OPTIONS", "require", extra="Require: frobnication\r\n"),
                                  "require")
    assert status == 420 and "Unsupported: frobnication" in text and ";tag=" in to
    # Another SIP version: 505.
    data = req("OPTIONS", "version").replace(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia", 1)
    status, to, _ = await _ask(h.ua.port, data, "version")
    assert status == 505 and ";tag=" in to
    # Two Content-Length headers: 400.
    data = req("OPTIONS", "two-lengths").replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0")
    status, to, _ = await _ask(h.ua.port, data, "two-lengths")
    assert status == 400 and ";tag=" in to
    # Max-Forwards: 0 is for proxies; we are the endpoint and answer.
    data = req("OPTIONS", "mf0").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    assert (await _ask(h.ua.port, data, "mf0"))[0] == 200


async def test_invite_flood_gets_486_or_503_without_descriptor_growth(make_ua) -> None:
    h: Harness = await make_ua(media=rtp_media, max_calls=2)
    caller: Harness = await make_ua()
    up = [await caller.ua.invite(f"sip:agent@{h.target}", timeout=5) for _ in range(2)]
    await wait_for_calls(h, 2)
    sock, port = udp_client()
    loop = asyncio.get_running_loop()
    before = open_fds()
    statuses: list[int] = []
    for burst in range(10):  # bursts of 20 back to back: socket buffers hold a burst's answers
        ids = [f"flood-{burst}-{i}" for i in range(20)]
        for cid in ids:
            await loop.sock_sendto(sock, raw_request("INVITE", port, cid, body=SDP_OFFER), ("127.0.0.1", h.ua.port))
        finals: dict[str, int] = {}
        while not all(c in finals for c in ids):  # answers overtake and repeat (timer G): collect by Call-ID
            msg = parse(await asyncio.wait_for(loop.sock_recv(sock, 65535), 5))
            if isinstance(msg, Response) and msg.status >= 200:
                finals[msg.call_id] = msg.status
        statuses.extend(finals[cid] for cid in ids)
    assert set(statuses) == {486}, statuses
    h.ua.accepting = False  # shutting down: 503 from here on
    for i in range(50):
        await loop.sock_sendto(sock, raw_request("INVITE", port, f"late-{i}", body=SDP_OFFER),
                               ("127.0.0.1", h.ua.port))
        assert (await final_response(sock, f"late-{i}")).status == 503
    assert await fds_back_to(before) <= before
    assert len(h.ua.calls) == 2
    for call in up:
        await call.hangup()
    sock.close()



async def test_an_overloaded_box_answers_503_with_retry_after(make_ua) -> None:
    busy: list[tuple[str, int] | None] = [None]
    h: Harness = await make_ua(admit=lambda: busy[0])
    caller: Harness = await make_ua()
    call = await caller.ua.invite(f"sip:agent@{h.target}", timeout=5)  # admitted while the load is fine
    await wait_for_calls(h, 1)
    busy[0] = ("answers took 2600 ms (p95)", 15)
    data = raw_request("INVITE", 9, "overloaded-1", body=SDP_OFFER)  # answers go back through rport
    status, _, text = await _ask(h.ua.port, data, "overloaded-1")
    assert status == 503 and "Retry-After: 15" in text
    assert len(h.ua.calls) == 1  # the call in progress is untouched
    busy[0] = None
    await call.hangup()
