"""SIP over TCP: Content-Length framing wherever the header sits, and connections reaped when idle or slow."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
from pathlib import Path

import pytest

from telephony.sip.errors import SipParseError
from telephony.sip.message import Response, StreamFramer, parse
from telephony.sip.transport import TcpLimits
from telephony.sip.ua import UserAgent
from tests.telephony.sip.conftest import Harness, free_port, raw_request

ROOT = Path(__file__).resolve().parents[3]


def _options(extra_first: str = "", length_line: str = "Content-Length: 0") -> bytes:
    """An OPTIONS over TCP whose Content-Length sits where the caller puts it."""
    data = raw_request("OPTIONS", 9, "tcp-frame").decode().replace("Content-Length: 0\r\n", "")
    head, _, _ = data.partition("\r\n\r\n")
    first, _, rest = head.partition("\r\n")
    if extra_first:
        return f"{first}\r\n{length_line}\r\n{rest}\r\n\r\n".encode()
    lines = rest.split("\r\n")
    lines.insert(2, length_line)  # in the middle of the headers
    return (first + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("data", [
    _options(),  # Content-Length between other headers
    _options(extra_first="yes", length_line="l: 0"),  # compact form, first header
    _options(length_line="content-length   :   0"),  # odd case and LWS before the colon
])
def test_framer_finds_content_length_anywhere(data: bytes) -> None:
    framer = StreamFramer()
    two = data + data.replace(b"tcp-frame", b"tcp-frame-2")
    frames = framer.feed(two[:37]) + framer.feed(two[37:])
    assert [parse(f).call_id for f in frames] == ["tcp-frame", "tcp-frame-2"]
    assert framer.waiting_for == ""


def test_framer_rejects_two_content_lengths_and_says_what_it_waits_for() -> None:
    with pytest.raises(SipParseError, match="more than once"):
        StreamFramer().feed(_options().replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0"))
    framer = StreamFramer()
    assert framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x") == [] and framer.waiting_for == "headers"
    assert framer.feed(b"\r\nContent-Length: 5\r\n\r\nab") == [] and framer.waiting_for == "body"


async def _exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send on a new TCP connection; (what came back before it went quiet, whether the server closed it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    closed = False
    try:
        while b"\r\n\r\n" not in got:
            chunk = await asyncio.wait_for(reader.read(65535), 2)
            if not chunk:
                closed = True
                break
            got += chunk
        if not closed:
            try:
                closed = await asyncio.wait_for(reader.read(1), 0.3) == b""
            except TimeoutError:
                closed = False
    except ConnectionResetError:
        closed = True
    writer.close()
    return got, closed


async def test_tcp_framing_through_a_running_ua(make_ua) -> None:
    h: Harness = await make_ua()
    for data in (_options(), _options(extra_first="yes", length_line="l: 0")):
        got, closed = await _exchange(h.ua.port, data)
        resp = parse(got)
        assert isinstance(resp, Response) and resp.status == 200 and not closed
    got, closed = await _exchange(h.ua.port, _options().replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0"))
    assert got.startswith(b"SIP/2.0 400 ") and closed  # the stream cannot be trusted after that


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65535), seconds) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_idle_slow_and_surplus_connections_are_reaped(make_ua) -> None:
    limits = TcpLimits(idle_timeout_s=0.6, header_timeout_s=0.3, body_timeout_s=0.3, max_per_source=4)
    h: Harness = await make_ua(tcp_limits=limits)
    port = h.ua.port
    idle = await asyncio.open_connection("127.0.0.1", port)
    slow_head = await asyncio.open_connection("127.0.0.1", port)
    slow_head[1].write(b"OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKs\r\n")
    short_body = await asyncio.open_connection("127.0.0.1", port)
    short_body[1].write(_options().replace(b"Content-Length: 0", b"Content-Length: 100") + b"0123456789")
    # A fourth one fits under the cap; every further one from this address is refused at once.
    fourth = await asyncio.open_connection("127.0.0.1", port)
    extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(6)]
    assert all([await _closed_within(r, 1.0) for r, _ in extra])
    # Half-sent headers and bodies go after their 0.3 s; the idle ones after 0.6 s, not before.
    assert await _closed_within(slow_head[0], 1.0) and await _closed_within(short_body[0], 1.0)
    assert not await _closed_within(fourth[0], 0.05)
    assert await _closed_within(idle[0], 1.5) and await _closed_within(fourth[0], 1.5)
    for _, w in [idle, slow_head, short_body, fourth, *extra]:
        w.close()
    # The freed slots take new connections, and an exchange on one works.
    got, _ = await _exchange(port, _options())
    assert got.startswith(b"SIP/2.0 200 ")


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))


async def test_with_a_low_fd_limit_held_connections_do_not_stop_new_calls(tmp_path: Path) -> None:
    """`voice-agent serve --echo` under RLIMIT_NOFILE=96: 150 held TCP connections, then real calls."""
    port = free_port()
    env = dict(os.environ, VOICE_AGENT_HOME=str(tmp_path / "home"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice_agent", "--log-format", "json", "--set", "sip.tcp_max_per_source=16",
        "--set", "sip.tcp_header_timeout_s=1", "--set", "sip.tcp_idle_timeout_s=2",
        "serve", "--echo", "--sip-listen", f"127.0.0.1:{port}", cwd=ROOT, env=env, preexec_fn=_low_fd_limit,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    lines: list[str] = []
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    caller = UserAgent(_hang_up, host="127.0.0.1", port=0)
    try:
        while "serve_ready" not in (lines[-1] if lines else ""):
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "serve exited before it was ready: " + "".join(lines)
            lines.append(line)
        for _ in range(150):  # more than the process has descriptors; half-sent headers on each
            try:  # from another loopback address than the caller's: the cap is per source address
                r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            except OSError:
                continue
            w.write(b"OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\n")
            held.append((r, w))
        server_fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        assert server_fds < 96 - 10, server_fds  # the cap kept most of them out
        await caller.start()
        for transport in ("udp", "tcp"):
            call = await caller.invite(f"sip:agent@127.0.0.1:{port};transport={transport}", timeout=10)
            assert call.state == "confirmed"
            await call.hangup()
    finally:
        for _, w in held:
            w.close()
        await caller.stop(1)
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.communicate(), 20)


async def _hang_up(call: object) -> None:
    return None
