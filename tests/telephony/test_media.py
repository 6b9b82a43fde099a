"""RtpSession: two legs on 127.0.0.1 exchanging audio, DTMF and RTCP; latching, foreign sources, hold; pcap."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from telephony.codecs import create
from telephony.dtmf import DtmfError
from telephony.media import MediaError, RtpSession, read_pcap, read_pcap_timed
from telephony.rtp import RtpPacket
from telephony.sdp import Codec, Negotiated, answer, negotiated_from_answer, offer


async def connect(a: RtpSession, b: RtpSession, codecs: list[str], supported: list[str] | None = None) -> None:
    """Offer from a, answer from b, start both."""
    o = offer("127.0.0.1", a.local_port, codecs)
    ans, nb = answer(o, "127.0.0.1", b.local_port, supported or ["PCMU", "PCMA", "G722", "opus"])
    a.start(negotiated_from_answer(o, ans))
    b.start(nb)


@pytest.fixture()
async def pair() -> AsyncIterator[tuple[RtpSession, RtpSession]]:
    a = await RtpSession.open(rtcp_interval=0.2)
    b = await RtpSession.open(rtcp_interval=0.2)
    yield a, b
    a.close()
    b.close()


def sine(rate: int, frames: int, freq: float = 440.0, samples: int = 160) -> list[np.ndarray]:
    t = np.arange(frames * samples) / rate
    audio = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return [audio[i * samples : (i + 1) * samples] for i in range(frames)]


async def collect(session: RtpSession, count: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    async for frame in session.frames():
        out.append(frame)
        if len(out) >= count:
            break
    return out


def peak_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[int(np.argmax(spectrum))])


async def test_ports_are_an_even_odd_pair() -> None:
    s = await RtpSession.open()
    try:
        assert s.local_port % 2 == 0
        with pytest.raises(MediaError, match="cannot bind RTCP"):
            await RtpSession.open(port=s.local_port - 1)  # its RTCP port is our RTP port
    finally:
        s.close()


async def test_audio_arrives_with_paced_sending(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMA", "telephone-event"])
    sent_at: list[float] = []

    async def produce() -> None:
        for frame in sine(8000, 50):
            await a.send(frame)
            sent_at.append(time.monotonic())

    frames, _ = await asyncio.gather(collect(b, 70), produce())
    audio = np.concatenate(frames)
    assert all(len(f) == 160 and f.dtype == np.float32 for f in frames)
    heard = audio[np.abs(audio) > 0.01]
    assert len(heard) > 40 * 160 * 0.9
    assert abs(peak_frequency(audio, 8000) - 440) < 10
    stats = b.stats()
    assert stats["packets_received"] == 50 and stats["bytes_received"] == 50 * 160
    assert stats["lost"] == 0 and stats["late"] == 0 and stats["dropped_foreign"] == 0
    assert a.stats()["packets_sent"] == 50
    # The producer is never early: 49 intervals of 20 ms take about a second (timing itself is benchmarked).
    intervals = np.diff(sent_at)
    assert 0.9 < sent_at[-1] - sent_at[0] < 1.5
    assert np.median(intervals) == pytest.approx(0.020, abs=0.005)


async def test_frames_keep_coming_when_the_peer_is_silent(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU"])
    start = time.monotonic()
    frames = await collect(b, 15)
    elapsed = time.monotonic() - start
    assert len(frames) == 15 and all(not f.any() for f in frames)
    assert 0.2 < elapsed < 0.6


async def test_loss_is_concealed_and_counted(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU"])
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    b.start(Negotiated(b.negotiated.codec, None, "127.0.0.1", raw.getsockname()[1]))  # type: ignore[union-attr]
    out: list[np.ndarray] = []
    try:
        for i, frame in enumerate(sine(8000, 30)):
            if i not in (10, 11, 12, 13, 14):
                packet = RtpPacket(0, i, i * 160, 77, create("PCMU").encode(frame))
                raw.sendto(packet.serialize(), ("127.0.0.1", b.local_port))
            await asyncio.sleep(0.005)
            out.append(b.next_frame())  # one playout slot per packet slot, without real-time waits
    finally:
        raw.close()
    levels = np.array([float(np.abs(f).max()) for f in out])
    assert b.stats()["lost"] == 5 and b.stats()["concealed"] >= 5
    gap = int(np.argmax((levels < 0.25) & (np.arange(30) > 5)))
    # In the gap the last frame repeats with a fading gain, then silence; then the audio comes back.
    assert levels[gap - 1] > 0.25 and 0 < levels[gap] < levels[gap - 1]
    assert levels[gap + 1] < levels[gap] and levels[gap + 4] == 0
    assert levels[-1] > 0.25


async def test_rfc4733_dtmf_both_ways(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU", "telephone-event"])
    assert a.negotiated is not None and a.negotiated.dtmf_payload_type == 101
    await asyncio.gather(a.send_dtmf("5"), b.send_dtmf("#"))
    await a.send_dtmf("5")
    assert await asyncio.wait_for(b.dtmf.get(), 1) == "5"
    assert await asyncio.wait_for(b.dtmf.get(), 1) == "5"
    assert await asyncio.wait_for(a.dtmf.get(), 1) == "#"
    assert b.dtmf.empty() and a.dtmf.empty()
    await asyncio.gather(a.send_dtmf("1"), a.send_dtmf("2"), a.send_dtmf("3"))  # queued, not interleaved
    assert [await asyncio.wait_for(b.dtmf.get(), 1) for _ in range(3)] == ["1", "2", "3"]
    with pytest.raises(DtmfError):
        await a.send_dtmf("X")


async def test_dtmf_in_band_when_no_telephone_event(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMA"])
    assert b.negotiated is not None and b.negotiated.dtmf_payload_type is None
    listener = asyncio.ensure_future(collect(b, 40))
    await a.send_dtmf("7", duration_ms=120)
    await a.send_dtmf("*", duration_ms=120)
    await listener
    assert [b.dtmf.get_nowait() for _ in range(b.dtmf.qsize())] == ["7", "*"]


async def test_foreign_source_is_dropped_after_latching(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU"])
    for frame in sine(8000, 3):
        await a.send(frame)
    await asyncio.sleep(0.05)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        intruder.bind(("127.0.0.1", 0))
        for i in range(5):
            intruder.sendto(RtpPacket(0, 1000 + i, 0, 666, b"\xff" * 160).serialize(), ("127.0.0.1", b.local_port))
        intruder.sendto(b"junk", ("127.0.0.1", b.local_port))
        await asyncio.sleep(0.05)
    finally:
        intruder.close()
    stats = b.stats()
    assert stats["packets_received"] == 3 and stats["dropped_foreign"] == 5 and stats["malformed"] == 1
    assert b.remote == ("127.0.0.1", a.local_port)


async def test_latches_to_the_first_source(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    nat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    nat.bind(("127.0.0.1", 0))
    try:
        pcmu = Codec("PCMU", 0, 8000)
        a.start(Negotiated(pcmu, None, "127.0.0.1", b.local_port))
        # b's SDP says the peer is at `nat`'s port, but the peer's packets really come from a's port.
        b.start(Negotiated(pcmu, None, "127.0.0.1", nat.getsockname()[1]))
        for frame in sine(8000, 2):
            await a.send(frame)
        await asyncio.sleep(0.05)
        assert b.remote == ("127.0.0.1", a.local_port)
        for frame in sine(8000, 2):
            await b.send(frame)
        await asyncio.sleep(0.05)
        assert a.stats()["packets_received"] == 2
    finally:
        nat.close()


async def test_rtcp_reports_are_exchanged(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU"])

    async def talk(s: RtpSession) -> None:
        for frame in sine(8000, 40):
            await s.send(frame)

    await asyncio.gather(talk(a), talk(b), collect(a, 40), collect(b, 40))
    await asyncio.sleep(0.3)
    for s in (a, b):
        stats = s.stats()
        assert stats["rtcp_sent"] >= 2 and stats["rtcp_received"] >= 2
        assert stats["remote_fraction_lost"] == 0 and stats["remote_cumulative_lost"] == 0
        assert 0 <= stats["remote_rtt_ms"] < 50
        assert stats["remote_jitter_ms"] < 20
    a.close()
    await asyncio.sleep(0.05)
    assert b.remote_bye and a.closed and not b.closed


async def test_hold_stops_sending(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU"])
    a.hold(True)
    assert not a.sending
    for frame in sine(8000, 3):
        await a.send(frame)
    await a.send_dtmf("1")
    assert a.stats()["packets_sent"] == 0
    a.hold(False)
    for frame in sine(8000, 2):
        await a.send(frame)
    assert a.stats()["packets_sent"] == 2


async def test_remote_hold_from_negotiation(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    o = offer("127.0.0.1", a.local_port, direction="sendonly")  # a puts b on hold
    ans, nb = answer(o, "127.0.0.1", b.local_port)
    a.start(negotiated_from_answer(o, ans))
    b.start(nb)
    assert nb.on_hold and not b.sending and a.sending
    await b.send(sine(8000, 1)[0])
    assert b.stats()["packets_sent"] == 0


@pytest.mark.parametrize(("name", "rate"), [("G722", 16000), ("opus", 48000)])
async def test_wideband_pair(pair: tuple[RtpSession, RtpSession], name: str, rate: int) -> None:
    a, b = pair
    await connect(a, b, [name, "PCMU"])
    n = rate // 50
    assert a.negotiated is not None and a.negotiated.codec.name == name
    assert a.sample_rate == b.sample_rate == rate and a.frame_samples == n

    async def produce() -> None:
        for frame in sine(rate, 30, samples=n):
            await a.send(frame)

    frames, _ = await asyncio.gather(collect(b, 40), produce())
    audio = np.concatenate(frames)
    assert all(len(f) == n for f in frames)
    assert abs(peak_frequency(audio, rate) - 440) < 10
    assert b.stats()["packets_received"] == 30 and b.stats()["decode_errors"] == 0


async def test_misuse_errors() -> None:
    s = await RtpSession.open()
    try:
        with pytest.raises(MediaError, match="before start"):
            await s.send(np.zeros(160, dtype=np.float32))
        s.start(answer(offer("127.0.0.1", 4000), "127.0.0.1", s.local_port)[1])
        with pytest.raises(MediaError, match="160 samples"):
            await s.send(np.zeros(320, dtype=np.float32))
        await s.send(np.zeros(100, dtype=np.float32))  # a short last frame is padded
    finally:
        s.close()
    s.close()
    with pytest.raises(MediaError, match="closed"):
        s.start(answer(offer("127.0.0.1", 4000), "127.0.0.1", 5000)[1])


def test_read_pcap_real_capture(shared_fixtures: Path) -> None:
    timed = read_pcap_timed(shared_fixtures / "g711a.pcap")
    packets = read_pcap(shared_fixtures / "g711a.pcap")
    assert len(packets) == len(timed) == 236
    assert {p.payload_type for p in packets} == {8} and len({p.ssrc for p in packets}) == 1
    assert timed[-1][0] - timed[0][0] == pytest.approx(7.05, abs=0.01)
    assert (packets[-1].timestamp - packets[0].timestamp) / 8000 == pytest.approx(7.05, abs=0.01)
    pcma = create("PCMA")
    audio = np.concatenate([pcma.decode(p.payload) for p in packets])
    assert len(audio) / 8000 == pytest.approx(7.08, abs=0.01)  # 236 packets of 30 ms
    rms = np.sqrt(np.mean(audio**2))
    assert rms > 0.01
    frame_rms = np.sqrt(np.mean(audio[: len(audio) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    assert (frame_rms > 0.01).mean() > 0.3


def test_read_pcap_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot read"):
        read_pcap(tmp_path / "missing.pcap")
    (tmp_path / "x.pcap").write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(MediaError, match="pcapng"):
        read_pcap(tmp_path / "x.pcap")


async def test_garbage_on_both_ports_never_breaks_the_leg(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU", "telephone-event"])
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    rng = np.random.default_rng(7)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    b.start(Negotiated(Codec("PCMU", 0, 8000), 101, "127.0.0.1", raw.getsockname()[1]))
    try:
        for i in range(400):
            kind = i % 4
            if kind == 0:  # random bytes
                data = rng.bytes(int(rng.integers(0, 300)))
            elif kind == 1:  # RTP with a random payload type and payload
                body = rng.bytes(int(rng.integers(0, 200)))
                data = RtpPacket(int(rng.integers(0, 128)), i, i * 160, 5, body).serialize()
            elif kind == 2:  # telephone-event packets with junk payloads
                data = RtpPacket(101, i, i * 160, 5, rng.bytes(int(rng.integers(0, 8)))).serialize()
            else:  # RTCP-looking junk
                data = bytes([0x80 | int(rng.integers(0, 32)), int(rng.integers(192, 224))]) + rng.bytes(
                    int(rng.integers(0, 60)))
            port = b.local_port + (1 if i % 5 == 0 else 0)
            raw.sendto(data, ("127.0.0.1", port))
            if i % 20 == 0:
                await asyncio.sleep(0.005)
                for _ in range(3):
                    assert len(b.next_frame()) == 160
    finally:
        raw.close()
    await asyncio.sleep(0.05)
    assert errors == []
    stats = b.stats()
    assert stats["malformed"] > 0 and stats["packets_received"] > 0
    frame = b.next_frame()
    assert frame.dtype == np.float32 and np.all(np.abs(frame) <= 1.0)


async def test_late_producer_and_consumer_never_burst(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU"])
    frame = sine(8000, 1)[0]
    sent_at: list[float] = []
    for i in range(30):
        if i in (5, 15):
            await asyncio.sleep(0.05 if i == 5 else 0.3)  # a short hiccup, then a long stall
        await a.send(frame)
        sent_at.append(time.monotonic())
    gaps = np.diff(sent_at)
    # After the 50 ms hiccup the pacer catches up with at most three packets back to back; after the
    # 300 ms stall it restarts its grid instead of flushing 15 stale packets at once.
    # (bounds leave room for a loaded CI machine stalling the loop itself; a flush would be ~15)
    assert int((gaps[5:14] < 0.005).sum()) <= 3
    assert int((gaps[15:] < 0.005).sum()) <= 3
    assert a.stats()["pacing_restarts"] >= 1
    yielded: list[float] = []
    async for _ in b.frames():
        yielded.append(time.monotonic())
        if len(yielded) == 3:
            await asyncio.sleep(0.3)  # the consumer stalls
        if len(yielded) == 12:
            break
    assert int((np.diff(yielded)[3:] < 0.005).sum()) <= 3


async def test_old_style_hold_sends_nothing_anywhere(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    await connect(a, b, ["PCMU"])
    a.start(Negotiated(Codec("PCMU", 0, 8000), None, "0.0.0.0", b.local_port, direction="recvonly"))
    assert not a.sending and a.negotiated is not None and a.negotiated.on_hold
    for frame in sine(8000, 5):
        await a.send(frame)
    await asyncio.sleep(0.3)  # longer than the RTCP interval
    a.close()
    await asyncio.sleep(0.05)
    stats = b.stats()
    assert stats["packets_received"] == 0 and stats["rtcp_received"] == 0 and not b.remote_bye
