"""RTCP (RFC 3550 section 6): SR, RR, SDES, BYE packets and reception statistics (appendix A.1, A.8)."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from telephony.errors import TelephonyError

SR, RR, SDES, BYE, APP = 200, 201, 202, 203, 204
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01


class RtcpError(TelephonyError):
    """Malformed RTCP data or an out-of-range field."""


def ntp_now(unix_time: float | None = None) -> int:
    """64-bit NTP timestamp of a Unix time (now by default)."""
    t = time.time() if unix_time is None else unix_time
    return int((t + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, the unit of LSR and DLSR (1/65536 s)."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass
class ReportBlock:
    """Reception report about one source."""

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    def serialize(self) -> bytes:
        """24 wire bytes."""
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError(f"RTCP fraction lost {self.fraction_lost} is out of range 0-255")
        # Cumulative loss is a signed 24-bit number; duplicates can make it negative.
        lost = max(-(1 << 23), min((1 << 23) - 1, self.cumulative_lost)) & 0xFFFFFF
        try:
            return struct.pack("!IIIIII", self.ssrc, (self.fraction_lost << 24) | lost, self.highest_sequence,
                               self.jitter, self.lsr, self.dlsr)
        except struct.error as exc:
            raise RtcpError(f"RTCP report block field out of range: {exc}") from None

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> ReportBlock:
        """Parse 24 bytes at `pos`."""
        if len(data) < pos + 24:
            raise RtcpError("RTCP report block truncated")
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)


@dataclass
class SenderReport:
    """SR: what a sender sent, plus its reception reports."""

    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        """Wire bytes."""
        try:
            body = struct.pack("!IQIII", self.ssrc, self.ntp_timestamp, self.rtp_timestamp,
                               self.packet_count & 0xFFFFFFFF, self.octet_count & 0xFFFFFFFF)
        except struct.error as exc:
            raise RtcpError(f"RTCP sender report field out of range: {exc}") from None
        return _header(SR, len(self.reports), body + b"".join(r.serialize() for r in self.reports))


@dataclass
class ReceiverReport:
    """RR: reception reports from a source that did not send."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        """Wire bytes."""
        return _header(RR, len(self.reports), _u32(self.ssrc) + b"".join(r.serialize() for r in self.reports))


@dataclass
class SourceDescription:
    """SDES with one chunk per source: (ssrc, [(item type, value)]); CNAME is item type 1."""

    chunks: list[tuple[int, list[tuple[int, bytes]]]] = field(default_factory=list)

    def serialize(self) -> bytes:
        """Wire bytes."""
        body = b""
        for ssrc, items in self.chunks:
            chunk = _u32(ssrc)
            for kind, value in items:
                if not 1 <= kind <= 255 or len(value) > 255:
                    raise RtcpError("RTCP SDES item type must be 1-255 and its value at most 255 bytes")
                chunk += bytes([kind, len(value)]) + value
            chunk += b"\x00" * (4 - len(chunk) % 4)  # the null item, then padding to 32 bits
            body += chunk
        return _header(SDES, len(self.chunks), body)

    def cname(self, ssrc: int) -> bytes | None:
        """The CNAME of a source, if present."""
        for s, items in self.chunks:
            if s == ssrc:
                return next((v for k, v in items if k == 1), None)
        return None


@dataclass
class Bye:
    """BYE: these sources leave, with an optional reason."""

    sources: list[int] = field(default_factory=list)
    reason: bytes = b""

    def serialize(self) -> bytes:
        """Wire bytes."""
        body = b"".join(_u32(s) for s in self.sources)
        if self.reason:
            if len(self.reason) > 255:
                raise RtcpError("RTCP BYE reason is at most 255 bytes")
            reason = bytes([len(self.reason)]) + self.reason
            body += reason + b"\x00" * (-len(reason) % 4)
        return _header(BYE, len(self.sources), body)


@dataclass
class UnknownRtcp:
    """A packet type we keep but do not interpret (APP, feedback, XR)."""

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        """Wire bytes."""
        return _header(self.packet_type, self.count, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def _u32(value: int) -> bytes:
    try:
        return struct.pack("!I", value)
    except struct.error:
        raise RtcpError(f"RTCP field {value} does not fit in 32 bits") from None


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise RtcpError(f"RTCP allows at most 31 items per packet, got {count}")
    if len(body) % 4:
        body += b"\x00" * (-len(body) % 4)
    return struct.pack("!BBH", 0x80 | count, packet_type, len(body) // 4) + body


def serialize_compound(packets: list[RtcpPacket]) -> bytes:
    """A compound RTCP datagram."""
    return b"".join(p.serialize() for p in packets)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram; raises RtcpError and nothing else on malformed data."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise RtcpError(f"RTCP datagram too short: {len(data)} bytes")
    while pos < len(data):
        if len(data) - pos < 4:
            raise RtcpError("RTCP datagram ends inside a packet header")
        b0, packet_type, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != 2:
            raise RtcpError(f"RTCP version {b0 >> 6} is not supported (only 2)")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise RtcpError(f"RTCP packet length {4 * words} runs past the datagram")
        body = data[pos + 4 : end]
        if b0 & 0x20:
            pad = body[-1] if body else 0
            if pad == 0 or pad > len(body):
                raise RtcpError("RTCP padding count is invalid")
            body = body[:-pad]
        packets.append(_parse_one(packet_type, b0 & 0x1F, bytes(body)))
        pos = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < 24 + 24 * count:
            raise RtcpError("RTCP sender report truncated")
        ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", body)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets,
                            [ReportBlock.parse(body, 24 + 24 * i) for i in range(count)])
    if packet_type == RR:
        if len(body) < 4 + 24 * count:
            raise RtcpError("RTCP receiver report truncated")
        return ReceiverReport(struct.unpack_from("!I", body)[0],
                              [ReportBlock.parse(body, 4 + 24 * i) for i in range(count)])
    if packet_type == SDES:
        return _parse_sdes(count, body)
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise RtcpError("RTCP BYE truncated")
        sources = list(struct.unpack_from(f"!{count}I", body))
        reason = b""
        if len(body) > 4 * count:
            n = body[4 * count]
            reason = body[4 * count + 1 : 4 * count + 1 + n]
            if len(reason) != n:
                raise RtcpError("RTCP BYE reason truncated")
        return Bye(sources, reason)
    return UnknownRtcp(packet_type, count, body)


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks: list[tuple[int, list[tuple[int, bytes]]]] = []
    pos = 0
    for _ in range(count):
        if len(body) < pos + 4:
            raise RtcpError("RTCP SDES chunk truncated")
        ssrc = struct.unpack_from("!I", body, pos)[0]
        pos += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if pos >= len(body):
                raise RtcpError("RTCP SDES chunk lacks its terminating null item")
            kind = body[pos]
            if kind == 0:
                pos = (pos + 4) & ~3  # skip the null item and padding to the next 32-bit boundary
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpError("RTCP SDES item truncated")
            n = body[pos + 1]
            items.append((kind, body[pos + 2 : pos + 2 + n]))
            pos += 2 + n
        chunks.append((ssrc, items))
    return SourceDescription(chunks)


@dataclass
class ReceptionStats:
    """Per-source reception statistics: sequence tracking, loss and interarrival jitter (RFC 3550 A.1, A.8)."""

    clock_rate: int = 8000
    base_seq: int = -1
    max_seq: int = 0
    cycles: int = 0
    received: int = 0
    jitter: float = 0.0  # in RTP timestamp units
    _transit: float | None = None
    _expected_prior: int = 0
    _received_prior: int = 0
    _probation: int = 0

    MAX_DROPOUT = 3000
    MAX_MISORDER = 100

    def update(self, sequence: int, timestamp: int, arrival: float) -> None:
        """Account for one received packet (`arrival` in seconds on any steady clock)."""
        if self.base_seq < 0:
            self.base_seq = self.max_seq = sequence
            self.received = 1
            self._transit = arrival * self.clock_rate - timestamp
            return
        delta = (sequence - self.max_seq) & 0xFFFF
        if delta < self.MAX_DROPOUT:
            if sequence < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = sequence
        elif delta <= 0x10000 - self.MAX_MISORDER:
            # A jump this large is a restarted sender: resynchronise (the probation of A.1, simplified).
            self.base_seq = self.max_seq = sequence
            self.cycles = self._expected_prior = self._received_prior = self.received = 0
        self.received += 1
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            # Timestamp wraparound would look like a 13-hour jump: ignore that sample.
            if d < (1 << 31):
                self.jitter += (d - self.jitter) / 16
        self._transit = transit

    @property
    def extended_max(self) -> int:
        """Highest sequence number received, extended with the wrap count."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected from the first to the highest sequence number."""
        return 0 if self.base_seq < 0 else self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (negative with duplicates)."""
        return self.expected - self.received

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter in milliseconds."""
        return 1000.0 * self.jitter / self.clock_rate

    def fraction_lost(self) -> int:
        """Loss fraction since the previous call, in 1/256 (the SR/RR field); starts a new interval."""
        expected_interval = self.expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = self.expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        """A report block about this source; starts a new fraction-lost interval."""
        return ReportBlock(ssrc, self.fraction_lost(), self.lost, self.extended_max & 0xFFFFFFFF,
                           int(self.jitter) & 0xFFFFFFFF, lsr, dlsr)
