"""RFC 4475 torture messages sent over real UDP (and TCP) to a running user agent with real RTP legs.

Each message is the RFC's own text (rfc4475/*.dat, CRLF as the RFC specifies). The agent must
answer the valid ones as a UAS would, reject the invalid ones with the RFC's code (or drop what
cannot be answered: responses to nothing), leak no descriptor, and still take a normal call after.

Responses go where the message's Via says: the packet's source address and the Via's port (5060
when none), so the test sends from a random 127.x.y.z:5060 of the loopback network.
"""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import pytest

from telephony.sip.message import Response, parse
from telephony.sip.transport import TcpLimits
from telephony.sip.ua import Trunk, TrunkPolicy, rtp_media
from tests.telephony.sip.conftest import Harness, fds_back_to, open_fds, wait_for_calls

DATA = Path(__file__).parent / "rfc4475"
ANSWER = 200  # an INVITE the agent takes: the test ACKs the 200 and hangs up with BYE

# RFC 4475 section by section: the final answers a UAS may give (empty: the message is dropped).
EXPECTED: dict[str, set[int]] = {
    # 3.1.1 valid messages
    "wsinv": {481},  # a To tag for a dialog we do not have
    "intmeth": {501}, "esc01": {ANSWER}, "escnull": {405}, "esc02": {501}, "lwsdisp": {200},
    "longreq": {ANSWER}, "dblreq": {405}, "semiuri": {200}, "transports": {200}, "mpart01": {405},
    "unreason": set(), "noreason": set(),
    # 3.1.2 invalid messages
    "badinv01": {400}, "clerr": {400}, "ncl": {400}, "scalar02": {400}, "scalarlg": set(), "quotbal": {400},
    "ltgtruri": {400}, "lwsruri": {400}, "lwsstart": {400}, "trws": {400}, "escruri": {400},
    "baddate": {ANSWER, 400}, "regbadct": {400, 405}, "badaspec": {400}, "baddn": {400}, "badvers": {505},
    "mismatch01": {400}, "mismatch02": {400, 501}, "bigcode": set(),
    # 3.2 transaction layer; 3.3 application layer; 3.4 backward compatibility
    "badbranch": {200},
    "insuf": {400}, "unkscm": {416}, "novelsc": {416}, "unksm2": {405}, "bext01": {420}, "invut": {415},
    "regaut01": {405}, "multi01": {400}, "mcl01": {400}, "bcast": set(), "zeromf": {200}, "cparam01": {405},
    "cparam02": {405}, "regescrt": {405}, "sdp01": {406},
    "inv2543": {ANSWER},  # RFC 2543 syntax: no branch, no From tag, no Max-Forwards
}
# Sent over TCP too (their Via says TCP), with the answer on the same connection; None: the server
# waits for the missing body and then drops the connection without an answer.
OVER_TCP: dict[str, set[int] | None] = {
    "intmeth": {501}, "esc02": {501}, "novelsc": {416}, "unkscm": {416}, "trws": {400}, "scalar02": {400},
    "regaut01": {405}, "mcl01": {400}, "bext01": {420}, "clerr": None,
}


def _key(data: bytes) -> bytes:
    """What identifies the answers to a message: its Call-ID, else its first Via branch."""
    for line in data.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"call-id", b"i") and value.strip():
            return value.strip()
    return data.split(b"branch=", 1)[1].split(b"\r\n", 1)[0].split(b";", 1)[0]


def _bind_5060() -> tuple[socket.socket, socket.socket, str]:
    """UDP sockets on a random 127.x.y.z at 5060 (the default Via port) and 5050 (quotbal's Via port)."""
    for _ in range(50):
        ip = f"127.{random.randrange(1, 255)}.{random.randrange(0, 255)}.{random.randrange(2, 255)}"
        socks = []
        try:
            for port in (5060, 5050):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((ip, port))
                s.setblocking(False)
        except OSError:
            for s in socks:
                s.close()
            continue
        return socks[0], socks[1], ip
    raise RuntimeError("no free 127.x.y.z:5060")


async def _finals(socks: list[socket.socket], key: bytes, timeout: float, also: bytes = b"") -> list[Response]:
    """Final answers carrying ``key`` that arrive within the timeout (returns at the first one)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for s in socks:
            try:
                data = s.recv(65535)
            except BlockingIOError:
                continue
            if key not in data or also not in data or not data.startswith(b"SIP/2.0 "):
                continue  # a retransmitted answer to an earlier message
            status = int(data[8:11])
            if status >= 200:
                # An error answer copies the broken headers verbatim (RFC 3261 8.2.6.2): only a 2xx is parsed.
                return [parse(data) if status < 300 else Response(status=status)]  # type: ignore[list-item]
        await asyncio.sleep(0.005)
    return []


def _in_dialog(method: str, ok: Response, ip: str, seq: int) -> bytes:
    """ACK or BYE for an answered torture INVITE, built from the 200's own headers."""
    contact = ok.contact
    assert contact is not None
    return (f"{method} {contact.uri} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5060;branch=z9hG4bK{method}{seq}\r\n"
            f"Max-Forwards: 70\r\nFrom: {ok.headers.get('From')}\r\nTo: {ok.headers.get('To')}\r\n"
            f"Call-ID: {ok.call_id}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.fixture()
async def agent(make_ua) -> Harness:
    # Any loopback address may call (the test sends from 127.x.y.z); real RTP legs so leaks show.
    policy = TrunkPolicy([Trunk(name="loopback", allow_ips=["127.0.0.0/8"])])
    limits = TcpLimits(idle_timeout_s=5, header_timeout_s=0.5, body_timeout_s=0.5)
    harness: Harness = await make_ua(policy=policy, media=rtp_media, tcp_limits=limits)
    return harness


def test_every_rfc_message_is_here_with_crlf() -> None:
    names = {p.stem for p in DATA.glob("*.dat")}
    assert names == set(EXPECTED), names ^ set(EXPECTED)
    for p in DATA.glob("*.dat"):
        head = p.read_bytes().split(b"\r\n\r\n", 1)[0]
        assert b"\r\n" in head and b"\n" not in head.replace(b"\r\n", b""), p.name


async def test_torture_messages_over_udp(agent: Harness) -> None:
    ua = agent.ua
    sock, sock5050, ip = _bind_5060()
    loop = asyncio.get_running_loop()
    before = open_fds()
    got: dict[str, int | None] = {}
    answered = 0
    for name in sorted(EXPECTED):
        data = (DATA / f"{name}.dat").read_bytes()
        await loop.sock_sendto(sock, data, ("127.0.0.1", ua.port))
        finals = await _finals([sock, sock5050], _key(data), 3.0 if EXPECTED[name] else 0.3)
        got[name] = finals[0].status if finals else None
        if finals and finals[0].status == 200 and b"INVITE sip" in data[:20]:
            ok = finals[0]
            answered += 1
            await loop.sock_sendto(sock, _in_dialog("ACK", ok, ip, ok.cseq.seq), ("127.0.0.1", ua.port))
            await wait_for_calls(agent, answered, timeout=3)
            await loop.sock_sendto(sock, _in_dialog("BYE", ok, ip, ok.cseq.seq + 1), ("127.0.0.1", ua.port))
            bye = await _finals([sock], ok.call_id.encode(), 3.0, also=b" BYE\r\n")
            assert bye and bye[0].status == 200 and bye[0].cseq.method == "BYE", name
    wrong = {n: (got[n], sorted(EXPECTED[n])) for n in EXPECTED
             if (got[n] not in EXPECTED[n] if EXPECTED[n] else got[n] is not None)}
    assert not wrong, wrong
    assert answered == 4 and all(c.end_reason == "remote-bye" for c in agent.calls)
    assert ua.calls == {}
    assert await fds_back_to(before) <= before, "descriptors leaked"
    sock.close()
    sock5050.close()
    await _normal_call_works(agent)


async def test_torture_messages_over_tcp(agent: Harness) -> None:
    ua = agent.ua
    before = open_fds()
    got: dict[str, int | None] = {}
    for name in OVER_TCP:
        reader, writer = await asyncio.open_connection("127.0.0.1", ua.port)
        writer.write((DATA / f"{name}.dat").read_bytes())
        buf = b""
        status: int | None = None
        try:
            while status is None:
                chunk = await asyncio.wait_for(reader.read(65535), 3)
                if not chunk:
                    break  # the server closed the connection
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    if head.startswith(b"SIP/2.0 ") and int(head[8:11]) >= 200:
                        status = int(head[8:11])
        except ConnectionResetError:
            pass
        got[name] = status
        writer.close()
    wrong = {n: (got[n], w) for n, w in OVER_TCP.items() if (got[n] not in w if w else got[n] is not None)}
    assert not wrong, wrong
    assert await fds_back_to(before) <= before, "descriptors leaked"
    await _normal_call_works(agent)


async def _normal_call_works(agent: Harness) -> None:
    from telephony.sip.transaction import Timers
    from telephony.sip.ua import UserAgent

    async def nothing(call: object) -> None:
        return None

    caller = UserAgent(nothing, host="127.0.0.1", port=0, timers=Timers(t1=0.02, t2=0.2, t4=0.25))  # type: ignore[arg-type]
    await caller.start()
    try:
        call = await caller.invite(f"sip:agent@127.0.0.1:{agent.ua.port}", timeout=5)
        assert call.state == "confirmed"
        await call.hangup()
    finally:
        await caller.stop(1)
