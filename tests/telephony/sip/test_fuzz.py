"""Malformed datagrams thrown at a running user agent: 400 (416, 505) when answerable, no crash, no dialog left."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.sip.errors import SipParseError
from telephony.sip.message import error_response, parse
from telephony.sip.transaction import Timers
from telephony.sip.ua import UserAgent
from tests.telephony.sip.conftest import FakeMedia

TEMPLATE = (
    "INVITE sip:agent@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{n};rport\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Fuzz" <sip:fuzz@127.0.0.1>;tag={n}\r\n'
    "To: <sip:agent@127.0.0.1>\r\n"
    "Call-ID: fuzz-{n}\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:fuzz@127.0.0.1:{port}>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n"
    "\r\n"
    "{body}"
)
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


class Running:
    """A UA on its own loop in a thread, so hypothesis can drive it synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.ua: UserAgent | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def media(host: str) -> FakeMedia:
            return FakeMedia()

        async def handler(call: object) -> None:
            await asyncio.sleep(0)

        async def start() -> None:
            self.ua = UserAgent(handler, port=0, media=media, timers=Timers(t1=0.005, t2=0.02, t4=0.02))  # type: ignore[arg-type]
            await self.ua.start()
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    def stop(self) -> None:
        assert self.ua is not None
        self.call(self.ua.stop(timeout=0.2))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    r = Running()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    yield s
    s.close()


def _drain(sock: socket.socket, wait: float, until: Callable[[bytes], bool] | None = None) -> list[bytes]:
    """Read datagrams until one matches ``until`` (or, without it, until the line is quiet) or ``wait`` ends.

    Stray traffic (BYEs for earlier fuzz INVITEs that were answered) must not end the wait early.
    """
    out: list[bytes] = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left if until is not None or not out else min(left, 0.02))
        try:
            out.append(sock.recv(65535))
        except TimeoutError:
            return out
        if until is not None and until(out[-1]):
            return out
    return out


mutation = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 600), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.integers(0, 600), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("flip"), st.integers(0, 600), st.integers(0, 255)),
    st.tuples(st.just("dropline"), st.integers(1, 10), st.just(0)),
    st.tuples(st.just("dupline"), st.integers(1, 10), st.integers(1, 200)),
)


def mutate(data: bytes, ops: list[tuple[str, int, object]]) -> bytes:
    for op, pos, arg in ops:
        pos = min(pos, len(data))
        if op == "delete":
            data = data[:pos] + data[pos + int(arg):]  # type: ignore[call-overload]
        elif op == "insert":
            data = data[:pos] + bytes(arg) + data[pos:]  # type: ignore[call-overload]
        elif op == "flip" and pos < len(data):
            data = data[:pos] + bytes([int(arg)]) + data[pos + 1:]  # type: ignore[call-overload]
        elif op == "dropline":
            lines = data.split(b"\r\n")
            if pos < len(lines):
                del lines[pos]
            data = b"\r\n".join(lines)
        elif op == "dupline":
            lines = data.split(b"\r\n")
            if pos < len(lines):
                lines[pos:pos] = [lines[pos]] * min(int(arg), 200)  # type: ignore[call-overload]
            data = b"\r\n".join(lines)
    return data


counter = iter(range(10**9))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(mutation, min_size=1, max_size=4), with_body=st.booleans())
def test_mutated_invites(running: Running, client: socket.socket, ops: list[tuple[str, int, object]],
                         with_body: bool) -> None:
    assert running.ua is not None
    port = client.getsockname()[1]
    n = next(counter)
    body = SDP if with_body else ""
    data = mutate(TEMPLATE.format(port=port, n=n, length=len(body), body=body).encode(), ops)
    client.sendto(data, ("127.0.0.1", running.ua.port))
    status = 0
    try:
        parse(data)
    except SipParseError as exc:
        status = exc.status  # 400, or 416/505 for a mangled Request-URI scheme or version
    answer = error_response(data, "x", status) if status else None
    expect_400 = False
    if answer is not None:
        try:
            expect_400 = answer.via.response_address(("127.0.0.1", port)) == ("127.0.0.1", port)
        except (SipParseError, ValueError):
            expect_400 = False
    marker = b""
    if answer is not None:  # a 400 copies the Call-ID when there is one; the top Via's branch otherwise
        marker = (f"Call-ID: {answer.call_id}\r\n" if answer.call_id else answer.headers.get_all("Via")[0]).encode()
    first = f"SIP/2.0 {status} ".encode()
    got = (_drain(client, 3.0, lambda g: g.startswith(first) and marker in g) if expect_400
           else _drain(client, 0.02))
    if expect_400:
        assert any(g.startswith(first) and marker in g for g in got), (data, got)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=1500))
def test_random_bytes(running: Running, client: socket.socket, junk: bytes) -> None:
    assert running.ua is not None
    client.sendto(junk or b"x", ("127.0.0.1", running.ua.port))


def test_after_fuzzing_the_ua_answers_and_holds_no_dialogs(running: Running, client: socket.socket) -> None:
    assert running.ua is not None
    _drain(client, 0.05)
    time.sleep(running.ua.timers.b + 0.3)  # every answered fuzz INVITE times out its 2xx (no ACK) and is BYEd
    _drain(client, 0.05)
    port = client.getsockname()[1]
    options = TEMPLATE.format(port=port, n="opt", length=0, body="").replace("INVITE", "OPTIONS").encode()
    client.sendto(options, ("127.0.0.1", running.ua.port))
    replies = [parse(g) for g in _drain(client, 5.0, lambda g: b"fuzz-opt" in g and g.startswith(b"SIP/2.0 200"))]
    assert any(getattr(r, "status", 0) == 200 and r.call_id == "fuzz-opt" for r in replies)

    async def snapshot() -> tuple[int, int, int]:
        assert running.ua is not None
        return len(running.ua.calls), len(running.ua.layer.servers), len(running.ua.layer.clients)

    calls, _servers, _clients = running.call(snapshot())  # type: ignore[misc]
    assert calls == 0
