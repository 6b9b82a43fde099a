"""RFC 4028 session timers on the UAS side, driven by a raw UDP caller: 422, expiry BYE, refreshes both ways."""

from __future__ import annotations

import asyncio

from telephony.sip.message import Request, Response, parse
from tests.telephony.sip.conftest import SDP_OFFER, Harness, final_response, raw_request, udp_client, wait_for_calls

CONTACT = "Contact: <sip:caller@127.0.0.1:{port}>\r\n"


async def _next_request(sock, method: str, timeout: float) -> Request:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), max(0.01, deadline - loop.time()))
        msg = parse(data)
        if isinstance(msg, Request) and msg.method == method:
            return msg


def _answer(req: Request, status: int = 200, body: str = "") -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items if k in ("Via", "From", "To", "Call-ID", "CSeq"))
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return f"SIP/2.0 {status} OK\r\n{head}{ctype}Content-Length: {len(body)}\r\n\r\n{body}".encode()


async def _call(h: Harness, sock, port: int, cid: str, extra: str) -> Response:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    invite = raw_request("INVITE", port, cid, body=SDP_OFFER, extra=CONTACT.format(port=port) + extra)
    await loop.sock_sendto(sock, invite, ("127.0.0.1", h.ua.port))
    ok = await final_response(sock, cid)
    if ok.status == 200:
        await loop.sock_sendto(sock, raw_request("ACK", port, cid, to_tag=ok.to.tag), ("127.0.0.1", h.ua.port))
    return ok


async def test_interval_below_min_se_gets_422(make_ua) -> None:
    h: Harness = await make_ua(min_se=2)
    sock, port = udp_client()
    resp = await _call(h, sock, port, "se-small", "Session-Expires: 1\r\nSupported: timer\r\n")
    assert resp.status == 422 and resp.headers.get("Min-SE") == "2"
    sock.close()


async def test_no_refresh_from_the_caller_ends_the_call_with_bye(make_ua) -> None:
    h: Harness = await make_ua(min_se=2)
    sock, port = udp_client()
    loop = asyncio.get_running_loop()
    ok = await _call(h, sock, port, "se-uac", "Session-Expires: 3;refresher=uac\r\nSupported: timer\r\n")
    assert ok.status == 200 and ok.headers.get("Session-Expires") == "3;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    started = loop.time()
    bye = await _next_request(sock, "BYE", 5)  # at 3 - min(32, 3/3) = 2 s without a refresh
    assert loop.time() - started >= 1.9
    await loop.sock_sendto(sock, _answer(bye), ("127.0.0.1", h.ua.port))
    await wait_for_calls(h)
    await asyncio.wait_for(h.calls[0].ended.wait(), 2)
    assert h.calls[0].end_reason == "session-expired"
    sock.close()


async def test_a_refresh_from_the_caller_keeps_the_call_up(make_ua) -> None:
    h: Harness = await make_ua(min_se=2)
    sock, port = udp_client()
    loop = asyncio.get_running_loop()
    ok = await _call(h, sock, port, "se-refresh", "Session-Expires: 3;refresher=uac\r\nSupported: timer\r\n")
    assert ok.status == 200
    await asyncio.sleep(1.0)
    refresh = raw_request("INVITE", port, "se-refresh", cseq=2, to_tag=ok.to.tag, body=SDP_OFFER,
                          extra=CONTACT.format(port=port) + "Session-Expires: 3;refresher=uac\r\nSupported: timer\r\n")
    await loop.sock_sendto(sock, refresh, ("127.0.0.1", h.ua.port))
    refreshed = await final_response(sock, "se-refresh", "INVITE")
    assert refreshed.status == 200 and refreshed.headers.get("Session-Expires") == "3;refresher=uac"
    await loop.sock_sendto(sock, raw_request("ACK", port, "se-refresh", cseq=2, to_tag=ok.to.tag),
                           ("127.0.0.1", h.ua.port))
    refreshed_at = loop.time()
    bye = await _next_request(sock, "BYE", 5)  # two seconds after the refresh, not after the first 200
    assert loop.time() - refreshed_at >= 1.9
    await loop.sock_sendto(sock, _answer(bye), ("127.0.0.1", h.ua.port))
    sock.close()


async def test_we_refresh_when_the_caller_does_not_support_timers(make_ua) -> None:
    h: Harness = await make_ua(min_se=2)
    sock, port = udp_client()
    loop = asyncio.get_running_loop()
    ok = await _call(h, sock, port, "se-uas", "Session-Expires: 2\r\n")  # no Supported: timer
    assert ok.status == 200 and ok.headers.get("Session-Expires") == "2;refresher=uas"
    assert ok.headers.get("Require") is None
    answered_at = loop.time()
    for _ in range(2):  # a re-INVITE every interval/2 = 1 s, each answered, so the call stays up
        reinvite = await _next_request(sock, "INVITE", 4)
        assert loop.time() - answered_at >= 0.9
        assert reinvite.headers.get("Session-Expires") == "2;refresher=uas" and reinvite.from_.tag == ok.to.tag
        await loop.sock_sendto(sock, _answer(reinvite, body=SDP_OFFER), ("127.0.0.1", h.ua.port))
        await _next_request(sock, "ACK", 2)
        answered_at = loop.time()
    await wait_for_calls(h)
    assert h.calls[0].state == "confirmed"
    # A refresh that fails ends the call.
    reinvite = await _next_request(sock, "INVITE", 4)
    await loop.sock_sendto(sock, _answer(reinvite, status=481), ("127.0.0.1", h.ua.port))
    bye = await _next_request(sock, "BYE", 4)
    await loop.sock_sendto(sock, _answer(bye), ("127.0.0.1", h.ua.port))
    await asyncio.wait_for(h.calls[0].ended.wait(), 2)
    assert h.calls[0].end_reason == "session-refresh-failed"
    sock.close()


async def test_options_advertises_timer(make_ua) -> None:
    h: Harness = await make_ua()
    sock, port = udp_client()
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, raw_request("OPTIONS", port, "opt-se"), ("127.0.0.1", h.ua.port))
    resp = await final_response(sock, "opt-se")
    assert resp.status == 200 and "timer" in (resp.headers.get("Supported") or "")
    sock.close()
