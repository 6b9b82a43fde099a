"""DTMF out of band: RFC 4733 telephone-event payloads, a de-duplicating receiver, SIP INFO bodies."""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from telephony.errors import TelephonyError
from telephony.rtp import RtpPacket

EVENTS = "0123456789*#ABCD"
FLASH = 16


class DtmfError(TelephonyError):
    """Malformed telephone-event payload, unknown digit, or unreadable SIP INFO body."""


def digit_to_event(digit: str) -> int:
    """Event code of a DTMF digit (0-9, *, #, A-D)."""
    key = digit.upper() if isinstance(digit, str) else ""
    if len(key) != 1 or key not in EVENTS:
        raise DtmfError(f"not a DTMF digit: {digit!r} (expected one of 0-9 * # A-D)")
    return EVENTS.index(key)


def event_to_digit(event: int) -> str | None:
    """DTMF digit of an event code, or None for other events (flash, tones)."""
    return EVENTS[event] if 0 <= event < len(EVENTS) else None


@dataclass
class TelephoneEvent:
    """The 4-byte telephone-event payload (RFC 4733 section 2.3)."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Parse a payload; raises DtmfError on malformed data."""
        if len(data) < 4:
            raise DtmfError(f"telephone-event payload is {len(data)} bytes, needs 4")
        event, flags, duration = struct.unpack_from("!BBH", data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        """Wire bytes."""
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63 or not 0 <= self.duration <= 0xFFFF:
            raise DtmfError(f"telephone-event field out of range: {self}")
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def dtmf_packets(
    digit: str,
    *,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload_type: int = 101,
    duration_ms: int = 100,
    packet_ms: int = 20,
    clock_rate: int = 8000,
    volume: int = 10,
) -> list[RtpPacket]:
    """RTP packets for one key press: start (marker), updates, then the end packet three times."""
    event = digit_to_event(digit)
    step = clock_rate * packet_ms // 1000
    total = min(0xFFFF, max(step, clock_rate * duration_ms // 1000))
    durations = [*range(step, total, step), total]
    packets: list[RtpPacket] = []
    for i, d in enumerate(durations):
        end = i == len(durations) - 1
        for _ in range(3 if end else 1):
            payload = TelephoneEvent(event, end, volume, d).serialize()
            packets.append(RtpPacket(payload_type=payload_type, sequence=(sequence + len(packets)) & 0xFFFF,
                                     timestamp=timestamp & 0xFFFFFFFF, ssrc=ssrc, payload=payload, marker=i == 0))
    return packets


class DtmfReceiver:
    """Turns telephone-event packets (updates, retransmitted ends, reordering) into each digit exactly once."""

    def __init__(self, payload_type: int | None = None) -> None:
        self.payload_type = payload_type
        self._seen: deque[tuple[int, int]] = deque(maxlen=32)
        self._last: tuple[int, int, int, int, bool] | None = None  # ssrc, timestamp, event, duration, end

    def feed(self, packet: RtpPacket) -> str | None:
        """A digit the first time a key press is seen, else None; DtmfError on a malformed payload."""
        if self.payload_type is not None and packet.payload_type != self.payload_type:
            return None
        ev = TelephoneEvent.parse(packet.payload)
        key = (packet.ssrc, packet.timestamp)
        if key in self._seen:
            if self._last and self._last[:2] == key:
                self._last = (*key, ev.event, max(ev.duration, self._last[3]), ev.end or self._last[4])
            return None
        last = self._last
        # A press longer than 8 s at 8 kHz continues in a new segment at timestamp + duration (RFC 4733 2.5.1.3).
        continuation = (last is not None and last[0] == packet.ssrc and not last[4] and last[2] == ev.event
                        and (last[1] + last[3]) & 0xFFFFFFFF == packet.timestamp)
        self._seen.append(key)
        self._last = (*key, ev.event, ev.duration, ev.end)
        if continuation:
            return None
        return event_to_digit(ev.event)


def parse_dtmf_info(body: str, content_type: str = "application/dtmf-relay") -> str:
    """The digit in a SIP INFO body: application/dtmf-relay ("Signal=5\\r\\nDuration=160") or application/dtmf."""
    ctype = content_type.split(";")[0].strip().lower()
    text = body.strip()
    if ctype == "application/dtmf":
        return _signal(text)
    if ctype != "application/dtmf-relay":
        raise DtmfError(f"unsupported DTMF INFO content type {content_type!r}")
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "signal":
            return _signal(value.strip())
    raise DtmfError(f"DTMF INFO body has no Signal= line: {text[:60]!r}")


def _signal(value: str) -> str:
    # Some phones send the event number (10 = *, 11 = #) instead of the character.
    if value.isdigit() and len(value) <= 2:
        digit = event_to_digit(int(value))
        if digit is not None:
            return digit
    digit_to_event(value)
    return value.upper()
