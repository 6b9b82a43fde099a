"""Two of our user agents talking to each other: DTMF INFO, hold, digest admission, shutdown, crashes."""

from __future__ import annotations

import asyncio
import socket

import pytest

from telephony.sip.digest import DigestClient
from telephony.sip.errors import CallFailed
from telephony.sip.message import Response, parse
from telephony.sip.ua import Call, Trunk, TrunkPolicy
from tests.telephony.sip.conftest import Harness, udp_client, wait_for_calls


async def test_call_info_dtmf_hold_and_bye(make_ua) -> None:
    callee: Harness = await make_ua()
    caller: Harness = await make_ua()
    call = await caller.ua.invite(f"sip:agent@{callee.target}", timeout=5)
    await wait_for_calls(callee)
    theirs = callee.calls[0]
    assert theirs.call_id == call.call_id and theirs.negotiated.codec.name == "PCMU"
    assert caller.media[0].started and callee.media[0].started

    resp = await caller.ua._send_in_dialog(call, "INFO", body=b"Signal=7\r\nDuration=160\r\n",
                                           content_type="application/dtmf-relay")
    assert resp.status == 200
    assert await asyncio.wait_for(theirs.dtmf.get(), 2) == "7"

    assert await call.set_hold(True)
    assert theirs.on_hold and callee.media[0].holds[-1] is True
    assert theirs.negotiated.direction == "recvonly"
    assert await call.set_hold(False)
    assert not theirs.on_hold and theirs.negotiated.direction == "sendrecv"

    await call.hangup()
    await asyncio.wait_for(theirs.ended.wait(), 2)
    assert theirs.end_reason == "remote-bye" and call.end_reason == "local-bye"
    assert callee.ua.calls == {} and caller.ua.calls == {}
    assert callee.media[0].closed and caller.media[0].closed


async def test_digest_admission_for_trunks_without_allowed_ip(make_ua) -> None:
    policy = TrunkPolicy([Trunk(name="pbx", allow_ips=["192.0.2.0/24"], username="pbx", password="pw",
                                realm="agents")])
    callee: Harness = await make_ua(policy=policy)
    caller: Harness = await make_ua()
    with pytest.raises(CallFailed) as info:
        await caller.ua.invite(f"sip:agent@{callee.target}", timeout=5)
    assert info.value.status == 401
    with pytest.raises(CallFailed) as info:
        await caller.ua.invite(f"sip:agent@{callee.target}", credentials=DigestClient("pbx", "bad"), timeout=5)
    assert info.value.status == 403
    call = await caller.ua.invite(f"sip:agent@{callee.target}", credentials=DigestClient("pbx", "pw"), timeout=5)
    assert call.state == "confirmed"
    await call.hangup()


async def test_graceful_shutdown_rejects_new_calls_then_byes(make_ua) -> None:
    callee: Harness = await make_ua()
    caller: Harness = await make_ua()
    call = await caller.ua.invite(f"sip:agent@{callee.target}", timeout=5)
    stopping = asyncio.ensure_future(callee.ua.stop(timeout=0.5))
    await asyncio.sleep(0.05)
    with pytest.raises(CallFailed) as info:
        await caller.ua.invite(f"sip:agent@{callee.target}", timeout=5)
    assert info.value.status == 503
    await asyncio.wait_for(call.ended.wait(), 3)  # the drain timeout passed: the agent said BYE
    assert call.end_reason == "remote-bye"
    await stopping
    assert callee.ua.calls == {}


async def test_a_crashing_call_handler_ends_only_its_call(make_ua) -> None:
    count = 0

    def handler(h: Harness):
        async def run(c: Call) -> None:
            nonlocal count
            count += 1
            h.calls.append(c)
            if count == 1:
                raise RuntimeError("session bug")
            await c.ended.wait()
        return run

    callee: Harness = await make_ua(handler)
    caller: Harness = await make_ua()
    first = await caller.ua.invite(f"sip:agent@{callee.target}", timeout=5)
    await asyncio.wait_for(first.ended.wait(), 3)
    assert first.end_reason == "remote-bye"
    second = await caller.ua.invite(f"sip:agent@{callee.target}", timeout=5)
    assert second.state == "confirmed"
    for _ in range(100):
        if count == 2:
            break
        await asyncio.sleep(0.01)
    assert count == 2 and second.state == "confirmed"
    await second.hangup()


async def test_malformed_request_gets_400_and_the_ua_keeps_going(make_ua) -> None:
    callee: Harness = await make_ua()
    loop = asyncio.get_running_loop()
    sock, port = udp_client()
    bad = (f"INVITE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKq\r\n"
           "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: bad1\r\nCSeq: one INVITE\r\n"
           "Content-Length: 0\r\n\r\n").encode()
    await loop.sock_sendto(sock, bad, ("127.0.0.1", callee.ua.port))
    data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2)
    # The 400 copies the broken CSeq verbatim (RFC 3261 8.2.6.2), so only its first line and ids are checked.
    assert data.startswith(b"SIP/2.0 400 Bad Request (bad CSeq")
    assert b"Call-ID: bad1\r\n" in data and b"branch=z9hG4bKq" in data
    good = bad.replace(b"CSeq: one INVITE", b"CSeq: 1 OPTIONS").replace(b"INVITE sip", b"OPTIONS sip")
    await loop.sock_sendto(sock, good, ("127.0.0.1", callee.ua.port))
    resp = parse(await asyncio.wait_for(loop.sock_recv(sock, 65535), 2))
    assert isinstance(resp, Response) and resp.status == 200
    sock.close()
    assert callee.ua.calls == {} and callee.ua.stats["bad_requests"] == 1


async def test_unknown_dialog_gets_481(make_ua) -> None:
    callee: Harness = await make_ua()
    caller: Harness = await make_ua()
    call = await caller.ua.invite(f"sip:agent@{callee.target}", timeout=5)
    assert call.dialog is not None
    call.dialog.remote = call.dialog.remote.with_tag("not-theirs")
    resp = await caller.ua._send_in_dialog(call, "INFO", body=b"Signal=1\r\n", content_type="application/dtmf-relay")
    assert resp.status == 481


async def test_session_refresh_reinvite_without_sdp_gets_the_current_session(make_ua) -> None:
    callee: Harness = await make_ua()
    caller: Harness = await make_ua()
    call = await caller.ua.invite(f"sip:agent@{callee.target}", timeout=5)
    await wait_for_calls(callee)
    resp = await caller.ua._send_in_dialog(call, "INVITE", ack=True)
    assert resp.status == 200 and resp.content_type == "application/sdp"
    assert f"m=audio {callee.media[0].local_port} " in resp.text()
    await asyncio.sleep(0.1)
    theirs = callee.calls[0]
    assert theirs.state == "confirmed" and theirs._ok_retransmit is None  # our ACK stopped the 2xx timer
    await call.hangup()


def test_telephony_never_imports_the_product_or_the_models() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "telephony"
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in {"voice_agent", "asr", "dialog", "tts"}, (path, name)


def test_trunk_policy_allow_list_registering_trunk_and_loopback_default() -> None:
    from telephony.sip.message import Request as Req
    from telephony.sip.ua import TrunkPolicy as Policy

    req = Req()
    assert Policy([]).check(req, ("127.0.0.1", 5060))[0] == "allow"  # no trunks: loopback only
    assert Policy([]).check(req, ("192.0.2.1", 5060))[0] == "deny"
    carrier = Policy([Trunk(name="c", allow_ips=["198.51.100.0/24"]), Trunk(name="r", host="203.0.113.5:5060",
                                                                            register=True)])
    assert carrier.check(req, ("198.51.100.77", 5060))[0] == "allow"
    assert carrier.check(req, ("203.0.113.5", 5070))[0] == "allow"  # the registrar's own address
    assert carrier.check(req, ("127.0.0.1", 5060))[0] == "deny"  # configured trunks replace the default


async def test_require_of_an_unsupported_extension_gets_420(make_ua) -> None:
    callee: Harness = await make_ua()
    loop = asyncio.get_running_loop()
    sock, port = udp_client()
    invite = (f"INVITE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKr\r\n"
              "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: req1\r\nCSeq: 1 INVITE\r\nRequire: 100rel\r\n"
              "Content-Length: 0\r\n\r\n").encode()
    await loop.sock_sendto(sock, invite, ("127.0.0.1", callee.ua.port))
    statuses = []
    for _ in range(2):
        resp = parse(await asyncio.wait_for(loop.sock_recv(sock, 65535), 2))
        assert isinstance(resp, Response)
        statuses.append(resp.status)
        if resp.status >= 200:
            assert resp.headers.get("Unsupported") == "100rel"
    assert statuses == [100, 420]
    sock.close()


async def test_capacity_holds_under_simultaneous_invites(make_ua) -> None:
    from tests.telephony.sip.conftest import FakeMedia

    async def slow_media(host: str) -> FakeMedia:
        await asyncio.sleep(0.2)  # both INVITEs are inside setup at the same time
        return FakeMedia()

    callee: Harness = await make_ua(max_calls=1, media=slow_media)
    caller: Harness = await make_ua()
    results = await asyncio.gather(*(caller.ua.invite(f"sip:agent@{callee.target}", timeout=5) for _ in range(2)),
                                   return_exceptions=True)
    failed = [r for r in results if isinstance(r, CallFailed)]
    assert len(failed) == 1 and failed[0].status == 486
    up = [r for r in results if isinstance(r, Call)]
    assert len(up) == 1
    await up[0].hangup()


async def test_call_over_tcp_both_ways(make_ua) -> None:
    callee: Harness = await make_ua()
    caller: Harness = await make_ua()
    call = await caller.ua.invite(f"sip:agent@{callee.target};transport=tcp", timeout=5)
    assert call.transport.name == "TCP"
    await wait_for_calls(callee)
    theirs = callee.calls[0]
    assert theirs.transport.name == "TCP"
    await theirs.hangup()  # the callee's BYE goes to our TCP Contact
    await asyncio.wait_for(call.ended.wait(), 3)
    assert call.end_reason == "remote-bye"


async def test_names_resolve_off_the_loop_and_responses_go_to_the_source(make_ua) -> None:
    callee: Harness = await make_ua()
    caller: Harness = await make_ua()
    call = await caller.ua.invite(f"sip:agent@localhost:{callee.ua.port}", timeout=5)
    assert caller.ua._dns["localhost"] == "127.0.0.1"
    await call.hangup()
    # A Via naming a host that does not exist is answered at the packet's source IP and the Via's
    # port (received=, RFC 3261 18.2.1), without any DNS lookup.
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    via_port = listener.getsockname()[1]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    options = (f"OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP no-such-host.invalid:{via_port};branch=z9hG4bKn\r\n"
               "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: dns1\r\nCSeq: 1 OPTIONS\r\n"
               "Content-Length: 0\r\n\r\n").encode()
    sender.sendto(options, ("127.0.0.1", callee.ua.port))
    resp = parse(await asyncio.wait_for(loop.sock_recv(listener, 65535), 2))
    assert isinstance(resp, Response) and resp.status == 200 and resp.call_id == "dns1"
    sender.close()
    listener.close()


async def test_port_zero_retries_when_tcp_clashes(make_ua, monkeypatch: pytest.MonkeyPatch) -> None:
    from telephony.sip import transport as tr
    from telephony.sip.errors import SipError

    real_bind = tr.TcpTransport.bind.__func__  # type: ignore[attr-defined]
    calls: list[int] = []

    async def flaky(cls, host, port, on_message, on_bad):  # type: ignore[no-untyped-def]
        calls.append(port)
        if len(calls) == 1:  # the port UDP got is taken for TCP by someone else
            raise SipError(f"cannot listen on tcp {host}:{port}: address already in use")
        return await real_bind(cls, host, port, on_message, on_bad)

    monkeypatch.setattr(tr.TcpTransport, "bind", classmethod(flaky))
    h: Harness = await make_ua()
    assert len(calls) == 2 and h.ua.port == calls[1] != 0
    assert set(h.ua.transports) == {"UDP", "TCP"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # the UA answers on the new port
        s.settimeout(2)
        s.sendto(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKa\r\n"
                 b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: p0\r\nCSeq: 1 OPTIONS\r\n"
                 b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", ("127.0.0.1", h.ua.port))
        data = await asyncio.get_running_loop().run_in_executor(None, s.recv, 4096)
    assert data.startswith(b"SIP/2.0 200")


async def test_a_captured_invite_with_credentials_cannot_be_replayed(make_ua) -> None:
    from tests.telephony.sip.conftest import SDP_OFFER, final_response, raw_request

    policy = TrunkPolicy([Trunk(name="pbx", allow_ips=["192.0.2.0/24"], username="pbx", password="pw", realm="r")])
    callee: Harness = await make_ua(policy=policy)
    loop = asyncio.get_running_loop()
    sock, port = udp_client()
    await loop.sock_sendto(sock, raw_request("INVITE", port, "replay-0", body=SDP_OFFER), ("127.0.0.1", callee.ua.port))
    challenge = (await final_response(sock, "replay-0")).headers.get("WWW-Authenticate")
    from telephony.sip.digest import Challenge

    auth = DigestClient("pbx", "pw").authorization(Challenge.parse(challenge or ""), "INVITE", "sip:agent@127.0.0.1")
    statuses = []
    for cid in ("replay-1", "replay-2"):  # the same Authorization on a new INVITE: the second is a replay
        data = raw_request("INVITE", port, cid, body=SDP_OFFER, extra=f"Authorization: {auth}\r\n")
        await loop.sock_sendto(sock, data, ("127.0.0.1", callee.ua.port))
        resp = await final_response(sock, cid)
        statuses.append(resp.status)
        if resp.status == 401:
            assert "stale=TRUE" in (resp.headers.get("WWW-Authenticate") or "")
    assert statuses == [200, 401]
    sock.close()
