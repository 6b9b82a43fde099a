"""SIP test helpers: a user agent on a free loopback port, fake media, and a sipp runner."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.machine import free_port  # one copy, shared with the benchmarks
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
