"""One RTP media leg over asyncio UDP: symmetric RTP, jitter buffer, paced sending, DTMF, RTCP; pcap reading."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

from telephony import codecs
from telephony.codecs import AudioCodec, CodecError
from telephony.dtmf import DtmfError, DtmfReceiver, digit_to_event, dtmf_packets
from telephony.errors import TelephonyError
from telephony.goertzel import COLS, ROWS, DtmfDetector
from telephony.jitterbuffer import JitterBuffer
from telephony.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    RtcpError,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_middle,
    ntp_now,
    parse_compound,
    serialize_compound,
)
from telephony.rtp import RtpError, RtpPacket, is_rtcp
from telephony.sdp import Negotiated

FRAME_MS = 20
FRAME_S = FRAME_MS / 1000
MAX_CATCH_UP = 3  # frames a late producer may send back to back before the pacing grid restarts
COMFORT_NOISE_PT = 13
Addr = tuple[str, int]
_HEADER = struct.Struct("!BBHII")


class MediaError(TelephonyError):
    """The RTP leg cannot do what was asked (ports taken, no codec yet, a frame of the wrong size)."""


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.handler: Callable[[bytes, Addr], None] = lambda data, addr: None
        self.errors = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.handler(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the peer's socket is not up yet: RTP simply carries on.
        self.errors += 1


class Concealer:
    """Packet loss concealment: repeat the last frame with a fading gain, then silence."""

    GAINS = (0.7, 0.4, 0.15)

    def __init__(self) -> None:
        self.last: np.ndarray | None = None
        self.missing = 0

    def good(self, frame: np.ndarray) -> np.ndarray:
        """Remember a decoded frame and pass it through."""
        self.last, self.missing = frame, 0
        return frame

    def conceal(self, samples: int) -> np.ndarray:
        """A replacement for one missing frame."""
        gain = self.GAINS[self.missing] if self.missing < len(self.GAINS) else 0.0
        self.missing += 1
        if self.last is None or gain == 0.0 or len(self.last) != samples:
            return np.zeros(samples, dtype=np.float32)
        return (self.last * gain).astype(np.float32)


class RtpSession:
    """An RTP/RTCP leg on two UDP sockets (port, port + 1): call `start()` with what offer/answer agreed."""

    def __init__(self, rtp: asyncio.DatagramTransport, rtcp: asyncio.DatagramTransport, rtp_proto: _Udp,
                 rtcp_proto: _Udp, host: str, port: int, rtcp_interval: float) -> None:
        self._rtp, self._rtcp = rtp, rtcp
        rtp_proto.handler = self._on_rtp
        rtcp_proto.handler = self._on_rtcp
        self.host, self.local_port, self.rtcp_interval = host, port, rtcp_interval
        self.ssrc = secrets.randbits(32)
        self.cname = f"voice-agent-{self.ssrc:08x}@{host}".encode()
        self.dtmf: asyncio.Queue[str] = asyncio.Queue()
        self.negotiated: Negotiated | None = None
        self.remote_bye = False
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._marker = True
        self._codec: AudioCodec | None = None
        self._rate = 8000
        self._samples = 160
        self._step = 160
        self._remote: Addr | None = None
        self._remote_rtcp: Addr | None = None
        self._latched = False
        self._remote_ssrc: int | None = None
        self._jb = JitterBuffer(FRAME_MS)
        self._reception = ReceptionStats()
        self._dtmf_rx = DtmfReceiver()
        self._detector: DtmfDetector | None = None
        self._concealer = Concealer()
        self._fifo = np.zeros(0, dtype=np.float32)
        self._local_hold = False
        self._closed = False
        self._next_send: float | None = None
        self._dtmf_busy = False
        self._dtmf_lock = asyncio.Lock()
        self._lsr = 0
        self._lsr_at = 0.0
        self._rtcp_task: asyncio.Task[None] | None = None
        self._send_lag: deque[float] = deque(maxlen=3000)
        self.counters: dict[str, int] = dict.fromkeys(
            ("packets_sent", "bytes_sent", "packets_received", "bytes_received", "dropped_foreign", "dropped_early",
             "malformed", "unknown_payload", "concealed", "rtcp_sent", "rtcp_received", "dtmf_sent",
             "dtmf_received", "decode_errors", "pacing_restarts"), 0)
        self.remote_report: dict[str, float] = {}

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0, *, rtcp_interval: float = 5.0) -> RtpSession:
        """Bind RTP on an even port (any free one when `port` is 0) and RTCP on the next one."""
        loop = asyncio.get_running_loop()
        for _ in range(64 if port == 0 else 1):
            rtp_proto, rtcp_proto = _Udp(), _Udp()
            try:
                rtp, _ = await loop.create_datagram_endpoint(lambda p=rtp_proto: p, local_addr=(host, port))  # type: ignore[misc]
            except OSError as exc:
                raise MediaError(f"cannot bind RTP on {host}:{port}: {exc.strerror or exc}") from None
            bound = rtp.get_extra_info("sockname")[1]
            if bound % 2 and port == 0:
                rtp.close()  # RTP takes the even port of a pair (RFC 3550 section 11)
                continue
            try:
                rtcp, _ = await loop.create_datagram_endpoint(lambda p=rtcp_proto: p, local_addr=(host, bound + 1))  # type: ignore[misc]
            except OSError as exc:
                rtp.close()
                if port:
                    raise MediaError(f"cannot bind RTCP on {host}:{bound + 1}: {exc.strerror or exc}") from None
                continue
            return cls(rtp, rtcp, rtp_proto, rtcp_proto, host, bound, rtcp_interval)
        raise MediaError(f"no free even/odd UDP port pair for RTP/RTCP on {host}")

    # -- control -------------------------------------------------------------------------------------------

    def start(self, negotiated: Negotiated) -> None:
        """Use what offer/answer agreed; call again after a re-INVITE (hold, new address, new codec)."""
        if self._closed:
            raise MediaError("start() on a closed RTP session")
        old = self.negotiated
        if old is None or old.codec != negotiated.codec:
            try:
                self._codec = codecs.create(negotiated.codec)
            except CodecError as exc:
                raise MediaError(str(exc)) from None
            self._rate = self._codec.sample_rate
            self._samples = codecs.samples_per_frame(self._codec, FRAME_MS)
            self._step = codecs.timestamp_step(self._codec, FRAME_MS)
            self._jb = JitterBuffer(FRAME_MS, clock_rate=self._codec.clock_rate)
            self._reception = ReceptionStats(clock_rate=self._codec.clock_rate)
            self._remote_ssrc = None
            self._fifo = np.zeros(0, dtype=np.float32)
            self._concealer = Concealer()
        remote = (negotiated.remote_address, negotiated.remote_port)
        if old is None or (old.remote_address, old.remote_port) != remote:
            self._remote, self._remote_rtcp = remote, (remote[0], remote[1] + 1)
            self._latched = False
        self.negotiated = negotiated
        self._dtmf_rx = DtmfReceiver(negotiated.dtmf_payload_type)
        # No telephone-event agreed: listen for tones in the audio instead.
        self._detector = DtmfDetector(self._rate) if negotiated.dtmf_payload_type is None else None
        if self._rtcp_task is None:
            self._rtcp_task = asyncio.get_running_loop().create_task(self._rtcp_loop())

    def hold(self, on: bool) -> None:
        """Stop (True) or resume (False) sending; receiving goes on."""
        if self._local_hold and not on:
            self._marker = True
        self._local_hold = on

    @property
    def sending(self) -> bool:
        """Whether audio leaves now (started, not held by either side, not closed)."""
        n = self.negotiated
        return n is not None and n.can_send and not self._local_hold and not self._closed

    @property
    def sample_rate(self) -> int:
        """Sample rate of the frames in and out (8000 until a wideband codec is started)."""
        return self._rate

    @property
    def frame_samples(self) -> int:
        """Samples in one 20 ms frame."""
        return self._samples

    @property
    def closed(self) -> bool:
        """Whether close() has run."""
        return self._closed

    @property
    def remote(self) -> Addr | None:
        """Where RTP goes now (the SDP address, or the latched source)."""
        return self._remote

    def close(self) -> None:
        """Send RTCP BYE and release both sockets; idempotent."""
        if self._closed:
            return
        if self.negotiated is not None:
            with contextlib.suppress(TelephonyError, OSError):
                self._send_rtcp(bye=True)
        self._closed = True
        if self._rtcp_task is not None:
            self._rtcp_task.cancel()
        self._rtp.close()
        self._rtcp.close()

    # -- receiving -----------------------------------------------------------------------------------------

    def _on_rtp(self, data: bytes, addr: Addr) -> None:
        if self._closed:
            return
        if is_rtcp(data):  # rtcp-mux peers
            self._on_rtcp(data, addr)
            return
        if self.negotiated is None:
            self.counters["dropped_early"] += 1
            return
        if len(data) >= 12 and data[0] == 0x80:
            # The common case (version 2, no padding, extension or CSRCs) without the general parser.
            _, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
            packet = RtpPacket(b1 & 0x7F, seq, ts, ssrc, data[12:], bool(b1 & 0x80))
        else:
            try:
                packet = RtpPacket.parse(data)
            except RtpError:
                self.counters["malformed"] += 1
                return
        if addr != self._remote:
            if self._latched:
                self.counters["dropped_foreign"] += 1
                return
            # Symmetric RTP (RFC 4961): a peer behind NAT is reachable where its packets come from.
            self._remote, self._remote_rtcp = addr, (addr[0], addr[1] + 1)
        self._latched = True
        self.counters["packets_received"] += 1
        self.counters["bytes_received"] += len(packet.payload)
        if packet.payload_type == self.negotiated.dtmf_payload_type:
            self._on_event(packet)
        elif packet.payload_type == self.negotiated.codec.payload_type:
            now = time.monotonic()
            if packet.ssrc != self._remote_ssrc:
                if self._remote_ssrc is not None:
                    self._jb.reset()
                    self._reception = ReceptionStats(clock_rate=self._reception.clock_rate)
                self._remote_ssrc = packet.ssrc
            self._reception.update(packet.sequence, packet.timestamp, now)
            self._jb.push(packet.sequence, packet.payload, packet.timestamp, now)
        elif packet.payload_type != COMFORT_NOISE_PT:
            self.counters["unknown_payload"] += 1

    def _on_event(self, packet: RtpPacket) -> None:
        try:
            digit = self._dtmf_rx.feed(packet)
        except DtmfError:
            self.counters["malformed"] += 1
            return
        if digit is not None:
            self.counters["dtmf_received"] += 1
            self.dtmf.put_nowait(digit)

    async def frames(self) -> AsyncIterator[np.ndarray]:
        """One float32 mono frame of 20 ms at `sample_rate` every 20 ms, concealing loss and silence."""
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while not self._closed:
            now = loop.time()
            if tick > now:
                await asyncio.sleep(tick - now)
                if self._closed:
                    return
            elif now - tick > MAX_CATCH_UP * FRAME_S:
                tick = now  # the consumer stalled: restart the grid rather than burst out stale frames
            yield self.next_frame()
            tick += FRAME_S

    def next_frame(self) -> np.ndarray:
        """The next 20 ms frame from the jitter buffer, without waiting (what `frames()` yields)."""
        n = self._samples
        if not len(self._fifo) and self._codec is not None:
            payload = self._jb.pop()
            if payload is None:
                return self._emit(self._lost_frame(n))
            try:
                decoded = self._codec.decode(payload)
            except CodecError:
                self.counters["decode_errors"] += 1
                return self._emit(self._lost_frame(n))
            if len(decoded) == n:  # the usual case: one packet per 20 ms slot
                return self._emit(self._concealer.good(decoded))
            self._fifo = decoded
        while len(self._fifo) < n:
            payload = self._jb.pop() if self._codec is not None else None
            if payload is None:
                break
            try:
                decoded = self._codec.decode(payload) if self._codec is not None else np.zeros(0, np.float32)
            except CodecError:
                self.counters["decode_errors"] += 1
                continue
            self._fifo = np.concatenate([self._fifo, decoded])
        if len(self._fifo) >= n:
            frame, self._fifo = self._fifo[:n], self._fifo[n:]
            frame = self._concealer.good(frame)
        elif len(self._fifo):
            frame = np.concatenate([self._fifo, np.zeros(n - len(self._fifo), dtype=np.float32)])
            self._fifo = self._fifo[:0]
        else:
            frame = self._lost_frame(n)
        return self._emit(frame)

    def _lost_frame(self, n: int) -> np.ndarray:
        if self._remote_ssrc is not None:
            self.counters["concealed"] += 1
        return self._concealer.conceal(n)

    def _emit(self, frame: np.ndarray) -> np.ndarray:
        if self._detector is not None:
            for digit in self._detector.feed(frame):
                self.counters["dtmf_received"] += 1
                self.dtmf.put_nowait(digit)
        return frame

    # -- sending -------------------------------------------------------------------------------------------

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next_send is None or now - self._next_send > MAX_CATCH_UP * FRAME_S:
            if self._next_send is not None:
                self._send_lag.append(now - self._next_send)
                self.counters["pacing_restarts"] += 1
                # The producer paused: move the RTP clock on by the wall time that passed, and mark a talkspurt.
                skipped = int((now - self._next_send) / FRAME_S)
                self._ts = (self._ts + skipped * self._step) & 0xFFFFFFFF
                self._marker = True
            self._next_send = now + FRAME_S
            return
        if self._next_send > now:
            await asyncio.sleep(self._next_send - now)
        self._send_lag.append(loop.time() - self._next_send)
        self._next_send += FRAME_S

    async def send(self, frame: np.ndarray) -> None:
        """Encode and send one 20 ms frame, waiting for its slot on the 20 ms grid."""
        if self._codec is None or self.negotiated is None:
            raise MediaError("send() before start(): no codec has been negotiated yet")
        samples = np.asarray(frame).reshape(-1)
        if samples.size > self._samples:
            raise MediaError(f"a 20 ms frame at {self._rate} Hz has {self._samples} samples, got {samples.size}")
        if samples.size < self._samples:
            samples = np.concatenate([samples, np.zeros(self._samples - samples.size, dtype=samples.dtype)])
        await self._pace()
        if self._dtmf_busy or not self.sending:
            # Silence on the wire keeps the RTP clock running, so the next talkspurt is timed right.
            self._ts = (self._ts + self._step) & 0xFFFFFFFF
            self._marker = True
            return
        if self._remote is not None:
            # The hot path of every leg: a plain 12-byte header, packed without building an RtpPacket.
            payload = self._codec.encode(samples)
            b1 = (0x80 if self._marker else 0) | self.negotiated.codec.payload_type
            self._rtp.sendto(_HEADER.pack(0x80, b1, self._seq, self._ts, self.ssrc) + payload, self._remote)
            self._seq = (self._seq + 1) & 0xFFFF
            self.counters["packets_sent"] += 1
            self.counters["bytes_sent"] += len(payload)
        self._marker = False
        self._ts = (self._ts + self._step) & 0xFFFFFFFF

    def _send_packet(self, packet: RtpPacket) -> None:
        if self._remote is None or self._closed:
            return
        self._rtp.sendto(packet.serialize(), self._remote)
        self._seq = (packet.sequence + 1) & 0xFFFF
        self.counters["packets_sent"] += 1
        self.counters["bytes_sent"] += len(packet.payload)

    async def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Send one key press: RFC 4733 events when negotiated, else in-band tones; audio pauses meanwhile."""
        digit_to_event(digit)
        if self.negotiated is None or self._codec is None:
            raise MediaError("send_dtmf() before start(): no codec has been negotiated yet")
        async with self._dtmf_lock:  # key presses go out one after another, never interleaved
            await self._send_dtmf(digit, duration_ms)

    async def _send_dtmf(self, digit: str, duration_ms: int) -> None:
        assert self.negotiated is not None and self._codec is not None
        if not self.sending:
            return
        pt = self.negotiated.dtmf_payload_type
        start_ts = self._ts
        self._dtmf_busy = True
        try:
            if pt is not None:
                packets = dtmf_packets(digit, sequence=self._seq, timestamp=start_ts, ssrc=self.ssrc,
                                       payload_type=pt, duration_ms=duration_ms, packet_ms=FRAME_MS,
                                       clock_rate=self._codec.clock_rate)
            else:
                packets = self._tone_packets(digit, duration_ms)
            loop = asyncio.get_running_loop()
            due = loop.time()
            for packet in packets:
                await asyncio.sleep(max(0.0, due - loop.time()))
                packet.sequence = self._seq
                self._send_packet(packet)
                due += FRAME_S
            self.counters["dtmf_sent"] += 1
        finally:
            self._dtmf_busy = False
        # A later event or talkspurt needs a later timestamp even when no audio ran beside this one.
        need = (len(packets) + 1) * self._step
        if (self._ts - start_ts) & 0xFFFFFFFF < need:
            self._ts = (start_ts + need) & 0xFFFFFFFF
        self._marker = True

    def _tone_packets(self, digit: str, duration_ms: int) -> list[RtpPacket]:
        assert self._codec is not None and self.negotiated is not None
        event = digit_to_event(digit)
        low, high = ROWS[event_row(event)], COLS[event_col(event)]
        frames = max(2, duration_ms // FRAME_MS)
        t = np.arange(frames * self._samples) / self._rate
        tone = (0.25 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))).astype(np.float32)
        # Two frames of silence after the tone let a detector see the key released.
        tone = np.concatenate([tone, np.zeros(2 * self._samples, dtype=np.float32)])
        packets: list[RtpPacket] = []
        for i in range(frames + 2):
            payload = self._codec.encode(tone[i * self._samples : (i + 1) * self._samples])
            packets.append(RtpPacket(payload_type=self.negotiated.codec.payload_type, sequence=0,
                                     timestamp=(self._ts + i * self._step) & 0xFFFFFFFF, ssrc=self.ssrc,
                                     payload=payload, marker=i == 0))
        return packets

    # -- RTCP ----------------------------------------------------------------------------------------------

    async def _rtcp_loop(self) -> None:
        while not self._closed:
            # Randomised around the interval so that many legs do not report in lockstep (RFC 3550 6.2).
            await asyncio.sleep(self.rtcp_interval * random.uniform(0.75, 1.25))
            if self._closed:
                return
            with contextlib.suppress(TelephonyError, OSError):
                self._send_rtcp()

    def _report(self) -> RtcpPacket:
        blocks = []
        if self._remote_ssrc is not None and self._reception.received:
            dlsr = int((time.monotonic() - self._lsr_at) * 65536) if self._lsr else 0
            blocks.append(self._reception.report_block(self._remote_ssrc, self._lsr, dlsr & 0xFFFFFFFF))
        if self.counters["packets_sent"]:
            return SenderReport(self.ssrc, ntp_now(), self._ts, self.counters["packets_sent"],
                                self.counters["bytes_sent"], blocks)
        return ReceiverReport(self.ssrc, blocks)

    def _send_rtcp(self, bye: bool = False) -> None:
        # 0.0.0.0 (an old-style hold) would reach this very host on Linux: send nowhere instead.
        if self._remote_rtcp is None or self._closed or self._remote_rtcp[0] in ("0.0.0.0", "::"):
            return
        packets: list[RtcpPacket] = [self._report(), SourceDescription([(self.ssrc, [(1, self.cname)])])]
        if bye:
            packets.append(Bye([self.ssrc], b"call ended"))
        self._rtcp.sendto(serialize_compound(packets), self._remote_rtcp)
        self.counters["rtcp_sent"] += 1

    def _on_rtcp(self, data: bytes, addr: Addr) -> None:
        if self._closed or self.negotiated is None:
            return
        if self._remote is not None and addr[0] != self._remote[0]:
            self.counters["dropped_foreign"] += 1
            return
        try:
            packets = parse_compound(data)
        except RtcpError:
            self.counters["malformed"] += 1
            return
        self._remote_rtcp = addr
        self.counters["rtcp_received"] += 1
        for p in packets:
            if isinstance(p, SenderReport):
                self._lsr, self._lsr_at = ntp_middle(p.ntp_timestamp), time.monotonic()
            if isinstance(p, SenderReport | ReceiverReport):
                for block in p.reports:
                    if block.ssrc == self.ssrc:
                        self._on_report_block(block.fraction_lost, block.cumulative_lost, block.jitter,
                                              block.lsr, block.dlsr)
            elif isinstance(p, Bye):
                self.remote_bye = True

    def _on_report_block(self, fraction: int, cumulative: int, jitter: int, lsr: int, dlsr: int) -> None:
        clock = self._codec.clock_rate if self._codec is not None else 8000
        report = {"fraction_lost": fraction / 256, "cumulative_lost": float(cumulative),
                  "jitter_ms": 1000 * jitter / clock}
        if lsr:
            rtt = (ntp_middle(ntp_now()) - lsr - dlsr) & 0xFFFFFFFF
            if rtt < 0x80000000:
                report["rtt_ms"] = 1000 * rtt / 65536
        self.remote_report = report

    # -- numbers -------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Counters of this leg: packets/bytes both ways, loss, late, jitter, foreign drops, RTCP, pacing."""
        out: dict[str, float] = {k: float(v) for k, v in self.counters.items()}
        jb = self._jb.stats
        out.update(lost=float(max(self._reception.lost, 0)), late=float(jb.late), reordered=float(jb.reordered),
                   duplicate=float(jb.duplicate), jitter_ms=round(self._reception.jitter_ms, 3),
                   buffer_delay_ms=float(self._jb.delay_ms))
        if self._send_lag:
            lag = np.array(self._send_lag) * 1000
            out["send_lag_p50_ms"] = float(np.percentile(lag, 50))
            out["send_lag_p99_ms"] = float(np.percentile(lag, 99))
        for k, v in self.remote_report.items():
            out[f"remote_{k}"] = v
        return out


def event_row(event: int) -> int:
    """Row index (low tone) of a DTMF event code."""
    return _KEYPAD[event][0]


def event_col(event: int) -> int:
    """Column index (high tone) of a DTMF event code."""
    return _KEYPAD[event][1]


# Event code -> (row, column) on the 4x4 keypad "123A/456B/789C/*0#D".
_KEYPAD = {i: divmod("123A456B789C*0#D".index("0123456789*#ABCD"[i]), 4) for i in range(16)}


def read_pcap(path: str | Path) -> list[RtpPacket]:
    """RTP packets of a pcap capture (Ethernet, Linux SLL or raw IPv4 / UDP); other traffic is skipped."""
    return [p for _, p in read_pcap_timed(path)]


def read_pcap_timed(path: str | Path) -> list[tuple[float, RtpPacket]]:
    """(capture time in seconds, RTP packet) for every RTP packet of a pcap capture."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MediaError(f"cannot read pcap {path}: {exc.strerror or exc}") from None
    if len(data) < 24:
        raise MediaError(f"{path} is not a pcap file (too short)")
    magic = data[:4]
    formats = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
    if magic not in formats:
        raise MediaError(f"{path} is not a pcap file (pcapng is not supported; convert with editcap -F pcap)")
    endian, unit = formats[magic]
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    out: list[tuple[float, RtpPacket]] = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        udp = _udp_payload(frame, linktype)
        if udp is None or is_rtcp(udp):
            continue
        with contextlib.suppress(RtpError):
            out.append((sec + frac * unit, RtpPacket.parse(udp)))
    return out


def _udp_payload(frame: bytes, linktype: int) -> bytes | None:
    if linktype == 1:  # Ethernet, possibly with 802.1Q tags
        pos, ethertype = 14, struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else 0
        while ethertype == 0x8100 and len(frame) >= pos + 4:
            ethertype = struct.unpack_from("!H", frame, pos + 2)[0]
            pos += 4
    elif linktype == 113:  # Linux cooked capture
        pos, ethertype = 16, struct.unpack_from("!H", frame, 14)[0] if len(frame) >= 16 else 0
    elif linktype in (101, 228):  # raw IPv4
        pos, ethertype = 0, 0x0800
    else:
        raise MediaError(f"pcap link type {linktype} is not supported (Ethernet, Linux SLL, raw IP)")
    if ethertype != 0x0800 or len(frame) < pos + 20:
        return None
    ihl = (frame[pos] & 0x0F) * 4
    if frame[pos] >> 4 != 4 or frame[pos + 9] != 17 or len(frame) < pos + ihl + 8:
        return None
    # Fragments after the first carry no UDP header.
    if struct.unpack_from("!H", frame, pos + 6)[0] & 0x1FFF:
        return None
    udp = pos + ihl
    length = struct.unpack_from("!H", frame, udp + 4)[0]
    return bytes(frame[udp + 8 : udp + max(8, length)])
