"""A real peer: sipp's RTP echo sends our packets back; audio and RFC 4733 DTMF survive the round trip."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from telephony.media import RtpSession
from telephony.sdp import Codec, Negotiated
from tests.conftest import need

pytestmark = pytest.mark.e2e
SIPP = shutil.which("sipp")


def free_even_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1] & ~1


@pytest.fixture()
async def echo_port(tmp_path: Path) -> AsyncIterator[int]:
    need(SIPP is not None, "sipp (Debian package sip-tester) is not installed")
    assert SIPP is not None
    media_port = free_even_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        sip_port = s.getsockname()[1]
    # sipp echoes every datagram that reaches its media port (-mp) back to the sender; an idle UAS
    # scenario keeps it running without a SIP call.
    proc = await asyncio.create_subprocess_exec(
        SIPP, "-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_port), "-mi", "127.0.0.1", "-mp", str(media_port),
        "-rtp_echo", "-nostdin", cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.sleep(0.5)
        if proc.returncode is not None:
            err = await proc.stderr.read() if proc.stderr else b""
            pytest.fail(f"sipp exited early ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
        yield media_port
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def test_rtp_echo_through_sipp(echo_port: int) -> None:
    leg = await RtpSession.open()
    try:
        leg.start(Negotiated(Codec("PCMA", 8, 8000), 101, "127.0.0.1", echo_port))
        t = np.arange(160 * 50) / 8000
        audio = (0.3 * np.sin(2 * np.pi * 600 * t)).astype(np.float32)
        heard: list[np.ndarray] = []

        async def listen() -> None:
            async for frame in leg.frames():
                heard.append(frame)
                if len(heard) >= 75:
                    return

        async def talk() -> None:
            for i in range(50):
                await leg.send(audio[i * 160 : (i + 1) * 160])
            await leg.send_dtmf("9")

        await asyncio.gather(listen(), talk())
        stats = leg.stats()
        assert stats["packets_received"] == stats["packets_sent"] >= 50
        assert stats["lost"] == 0 and stats["dropped_foreign"] == 0
        assert await asyncio.wait_for(leg.dtmf.get(), 1) == "9"
        echoed = np.concatenate(heard)
        spectrum = np.abs(np.fft.rfft(echoed))
        assert abs(np.fft.rfftfreq(len(echoed), 1 / 8000)[int(np.argmax(spectrum))] - 600) < 10
        assert (np.abs(echoed) > 0.1).sum() > 40 * 160 * 0.5
    finally:
        leg.close()
