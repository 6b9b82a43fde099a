"""SIP test helpers: a user agent on a free loopback port, fake media, and a sipp runner."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.machine import free_port  # one copy, shared with the benchmarks
from telephony.sip.message import Response, parse
from telephony.sip.transaction import Timers
from telephony.sip.ua import Call, TrunkPolicy, UserAgent

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp")
T1 = 0.02  # RFC timers scaled down 25x so that timeouts take about a second


class FakeMedia:
    """A media leg that only records what the UA asked of it."""

    _next_port = 40000

    def __init__(self) -> None:
        FakeMedia._next_port += 2
        self.local_port = FakeMedia._next_port
        self.started: list[Any] = []
        self.holds: list[bool] = []
        self.closed = False

    def start(self, negotiated: Any) -> None:
        self.started.append(negotiated)

    def hold(self, on: bool) -> None:
        self.holds.append(on)

    def close(self) -> None:
        self.closed = True


@dataclass
class Harness:
    """A running UA plus what its calls did."""

    calls: list[Call] = field(default_factory=list)
    media: list[FakeMedia] = field(default_factory=list)
    ua: UserAgent = field(init=False)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ua.port}"


async def fake_media_factory(store: list[FakeMedia]) -> Callable[[str], Awaitable[FakeMedia]]:
    async def make(host: str) -> FakeMedia:
        m = FakeMedia()
        store.append(m)
        return m
    return make


def hang_up_after(seconds: float) -> Callable[[Harness], Callable[[Call], Awaitable[None]]]:
    """A handler factory for make_ua: keep each call up this long, then hang up from our side."""
    def handler(harness: Harness) -> Callable[[Call], Awaitable[None]]:
        async def run(call: Call) -> None:
            harness.calls.append(call)
            await asyncio.sleep(seconds)
            await call.hangup()
        return run
    return handler


async def wait_for_calls(harness: Harness, n: int = 1, timeout: float = 1.0) -> None:
    """Wait until the harness's UA has answered n calls (or the timeout passes)."""
    for _ in range(int(timeout / 0.02)):
        if len(harness.calls) >= n:
            return
        await asyncio.sleep(0.02)


def wait_for_end(harness: Harness) -> Callable[[Call], Awaitable[None]]:
    """A call handler that keeps the call up until the peer hangs up."""
    async def handler(call: Call) -> None:
        harness.calls.append(call)
        await call.ended.wait()
    return handler


@pytest.fixture()
async def make_ua() -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """Factory: a started UA on 127.0.0.1 with small T1 and fake media (stopped after the test)."""
    started: list[UserAgent] = []

    async def make(handler: Callable[[Harness], Callable[[Call], Awaitable[None]]] | None = None,
                   policy: TrunkPolicy | None = None, media: Any = None, **kwargs: Any) -> Harness:
        harness = Harness()
        store: list[FakeMedia] = harness.media
        ua = UserAgent(
            (handler or wait_for_end)(harness), host="127.0.0.1", port=0, timers=Timers(t1=T1, t2=0.2, t4=0.25),
            policy=policy, media=media or await fake_media_factory(store), **kwargs)
        harness.ua = ua
        await ua.start()
        started.append(ua)
        return harness

    yield make
    for ua in started:
        await ua.stop(timeout=0.5)


def udp_client() -> tuple[socket.socket, int]:
    """A non-blocking UDP socket on loopback and its port, for sending raw SIP at a UA."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock, int(sock.getsockname()[1])


@dataclass
class SippResult:
    returncode: int
    output: str
    errors: str


async def sipp(scenario: str, target: str, *args: str, calls: int = 1, timeout: float = 30.0,
               cwd: Path | None = None, transport: str = "u1") -> SippResult:
    """Run one sipp scenario against target; returns its exit code and logs."""
    workdir = cwd or Path.cwd()
    err = workdir / f"{scenario}.errors.log"
    cmd = [SIPP or "sipp", "-sf", str(SCENARIOS / f"{scenario}.xml"), "-m", str(calls), "-i", "127.0.0.1",
           "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", "0", "-t", transport, "-nostdin",
           "-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_err", "-error_file", str(err), "-r", "50",
           *args, target]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, cwd=workdir)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    errors = err.read_text(errors="replace") if err.exists() else ""
    return SippResult(proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace"), errors)


async def sipp_server(scenario: str, *args: str, calls: int = 1, timeout: float = 30.0,
                      cwd: Path | None = None) -> tuple[asyncio.subprocess.Process, int]:
    """Start sipp as a UAS on a free port; returns the process and its SIP port."""
    port = free_port()
    workdir = cwd or Path.cwd()
    cmd = [SIPP or "sipp", "-sf", str(SCENARIOS / f"{scenario}.xml"), "-m", str(calls), "-i", "127.0.0.1",
           "-p", str(port), "-mi", "127.0.0.1", "-mp", "0", "-nostdin", "-timeout", f"{int(timeout)}s",
           "-timeout_error", "-trace_err", "-error_file", str(workdir / f"{scenario}.errors.log"), *args]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, cwd=workdir)
    await asyncio.sleep(0.3)  # sipp binds before it prints anything
    return proc, port


def open_fds() -> int:
    """How many file descriptors this process (the server under test) holds."""
    import os

    return len(os.listdir("/proc/self/fd"))


async def fds_back_to(target: int, timeout: float = 3.0) -> int:
    """Wait until the process holds at most ``target`` descriptors (closed sockets go on the next loop turn)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while open_fds() > target and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return open_fds()


def raw_request(method: str, port: int, call_id: str, *, uri: str = "sip:agent@127.0.0.1", cseq: int = 1,
                from_tag: str | None = "1", to_tag: str | None = None, extra: str = "", body: str = "",
                branch: str | None = None, via: str | None = None) -> bytes:
    """A hand-written request from a raw socket on ``port`` (fields left out on purpose stay out)."""
    via = via or f"SIP/2.0/UDP 127.0.0.1:{port};branch={branch or 'z9hG4bK' + secrets.token_hex(6)};rport"
    from_tag_param = f";tag={from_tag}" if from_tag is not None else ""
    to_tag_param = f";tag={to_tag}" if to_tag is not None else ""
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (f"{method} {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:caller@127.0.0.1:{port}>{from_tag_param}\r\nTo: <sip:agent@127.0.0.1>{to_tag_param}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{extra}{ctype}"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()


SDP_OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


async def final_response(sock: socket.socket, call_id: str, method: str = "", timeout: float = 3.0) -> Response:
    """Read datagrams until the final response for call_id (and CSeq method, if given) arrives."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), max(0.01, deadline - loop.time()))
        try:
            msg = parse(data)
        except Exception:
            continue
        if (isinstance(msg, Response) and msg.status >= 200 and msg.call_id == call_id
                and (not method or msg.cseq.method == method)):
            return msg
