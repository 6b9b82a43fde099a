"""RFC 3261 transaction state machines with a scaled-down T1 and a recording transport."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from telephony.sip.errors import TransactionTimeout
from telephony.sip.message import Headers, Request, Response, make_response, parse
from telephony.sip.transaction import (
    InviteServerTransaction,
    State,
    Timers,
    TransactionLayer,
    new_branch,
)
from telephony.sip.transport import Transport
from telephony.sip.uri import SipUri

T = Timers(t1=0.02, t2=0.08, t4=0.05)
SLACK = 0.05  # a loaded CI machine fires timers late, never early


class Recorder(Transport):
    """A transport that keeps what was sent, with loop times."""

    def __init__(self, reliable: bool = False) -> None:
        super().__init__(lambda *a: None, lambda *a: None)
        self.reliable = reliable
        self.name = "TCP" if reliable else "UDP"
        self.sent: list[tuple[float, bytes]] = []

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((asyncio.get_running_loop().time(), data))

    def close(self) -> None:
        pass

    def first_lines(self) -> list[str]:
        return [d.split(b"\r\n", 1)[0].decode() for _, d in self.sent]


def request(method: str = "OPTIONS") -> Request:
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5999;branch={new_branch()}")
    h.add("From", "<sip:a@h>;tag=1")
    h.add("To", "<sip:b@h>")
    h.add("Call-ID", "c1")
    h.add("CSeq", f"1 {method}")
    return Request(h, b"", method, SipUri("127.0.0.1", "b", 5998))


async def test_non_invite_client_retransmits_with_timer_e_and_times_out_with_f() -> None:
    layer, t = TransactionLayer(T), Recorder()
    tx = layer.client(request(), t, ("127.0.0.1", 5998))
    with pytest.raises(TransactionTimeout, match="timer F"):
        await tx.final
    times = [s for s, _ in t.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # E doubles from T1 and is capped at T2; F fires at 64*T1. Timers re-arm when they fire, so
    # each gap is at least its nominal value.
    assert T.t1 <= gaps[0] + 0.002 < T.t1 + SLACK
    assert 2 * T.t1 <= gaps[1] + 0.002 < 2 * T.t1 + SLACK
    assert all(g + 0.002 >= T.t2 for g in gaps[3:]) and max(gaps) < T.t2 + SLACK
    assert times[-1] - times[0] <= T.b
    assert tx.state is State.TERMINATED and not layer.clients


async def test_non_invite_client_over_tcp_sends_once_and_completes() -> None:
    layer, t = TransactionLayer(T), Recorder(reliable=True)
    req = request()
    tx = layer.client(req, t, ("127.0.0.1", 5998))
    await asyncio.sleep(5 * T.t1)
    assert len(t.sent) == 1
    layer.match_response(make_response(req, 200)).receive(make_response(req, 200))  # type: ignore[union-attr]
    assert (await tx.final).status == 200
    await asyncio.sleep(0.005)
    assert tx.state is State.TERMINATED  # timer K is zero on reliable transports


async def test_invite_client_acks_a_failure_and_reacks_retransmissions() -> None:
    layer, t = TransactionLayer(T), Recorder()
    req = request("INVITE")
    tx = layer.client(req, t, ("127.0.0.1", 5998))
    tx.receive(make_response(req, 100))
    await asyncio.sleep(4 * T.t1)
    assert t.first_lines().count("INVITE sip:b@127.0.0.1:5998 SIP/2.0") == 1  # 1xx stops timer A
    busy = make_response(req, 486, to_tag="x")
    tx.receive(busy)
    assert (await tx.final).status == 486
    tx.receive(busy)  # the 486 again: our ACK was lost
    acks = [s for s in t.first_lines() if s.startswith("ACK")]
    assert len(acks) == 2
    ack = parse(t.sent[-1][1])
    assert ack.via.branch == req.via.branch and ack.to.tag == "x" and ack.cseq.method == "ACK"
    await asyncio.sleep(T.b + 0.05)
    assert tx.state is State.TERMINATED  # timer D


async def test_invite_client_timer_a_doubles_and_b_times_out() -> None:
    layer, t = TransactionLayer(T), Recorder()
    tx = layer.client(request("INVITE"), t, ("127.0.0.1", 5998))
    with pytest.raises(TransactionTimeout, match="timer B"):
        await tx.final
    times = [s for s, _ in t.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for i, nominal in enumerate([T.t1, 2 * T.t1, 4 * T.t1, 8 * T.t1]):
        assert nominal <= gaps[i] + 0.002 < nominal + SLACK  # A doubles without the T2 cap
    assert 6 <= len(times) <= 7  # 0, 1, 3, 7, 15, 31 (and 63) T1 before B at 64 T1


async def test_invite_server_retransmits_failure_until_ack() -> None:
    layer, t = TransactionLayer(T), Recorder()
    req = request("INVITE")
    tx = layer.server(req, t, ("127.0.0.1", 5999))
    assert isinstance(tx, InviteServerTransaction)
    tx.respond(make_response(req, 100))
    assert layer.match_request(req) is tx
    tx.receive(req)  # a retransmitted INVITE gets the last response again
    assert t.first_lines() == ["SIP/2.0 100 Trying", "SIP/2.0 100 Trying"]
    tx.respond(make_response(req, 486, to_tag="z"))
    await asyncio.sleep(3.5 * T.t1)  # timer G: T1, then 2*T1
    assert 2 <= t.first_lines().count("SIP/2.0 486 Busy Here") <= 3
    ack = request("ACK")
    ack.headers.set("Via", req.headers.get("Via") or "")
    assert layer.match_request(ack) is tx
    tx.receive(ack)
    assert tx.state is State.CONFIRMED
    sent = len(t.sent)
    await asyncio.sleep(T.t4 + 0.03)
    assert len(t.sent) == sent and tx.state is State.TERMINATED  # timer I


async def test_invite_server_timer_h_gives_up_without_ack() -> None:
    layer, t = TransactionLayer(T), Recorder()
    req = request("INVITE")
    tx = layer.server(req, t, ("127.0.0.1", 5999))
    assert isinstance(tx, InviteServerTransaction)
    fired: list[bool] = []
    tx.on_ack_timeout = lambda: fired.append(True)
    tx.respond(make_response(req, 603))
    await asyncio.sleep(T.b + 0.05)
    assert fired == [True] and tx.state is State.TERMINATED and not layer.servers


async def test_non_invite_server_absorbs_retransmissions_until_timer_j() -> None:
    layer, t = TransactionLayer(T), Recorder()
    req = request("BYE")
    tx = layer.server(req, t, ("127.0.0.1", 5999))
    tx.respond(make_response(req, 200))
    layer.match_request(req).receive(req)  # type: ignore[union-attr]
    assert t.first_lines() == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]
    await asyncio.sleep(T.b + 0.05)
    assert layer.match_request(req) is None


async def test_response_goes_to_rport_source() -> None:
    layer, t = TransactionLayer(T), Recorder()
    req = request()
    req.headers.set("Via", f"SIP/2.0/UDP 10.9.9.9:5060;branch={new_branch()};rport")
    dest: list[tuple[str, int]] = []
    t.send = lambda data, addr: dest.append(addr)  # type: ignore[method-assign]
    layer.server(req, t, ("127.0.0.1", 40001)).respond(make_response(req, 200))
    assert dest == [("127.0.0.1", 40001)]


def test_response_parse_is_a_response() -> None:
    assert isinstance(parse(make_response(request(), 202).serialize()), Response)
