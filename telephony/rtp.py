"""RTP packets (RFC 3550 section 5.1): parse and serialize."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from telephony.errors import TelephonyError

RTP_HEADER_SIZE = 12


class RtpError(TelephonyError):
    """Malformed RTP data or an out-of-range header field."""


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on an RTP port is RTCP (rtcp-mux, RFC 5761: packet types 192-223)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass
class RtpPacket:
    """One RTP packet; `payload` excludes padding, which `padding_size` records."""

    payload_type: int = 0
    sequence: int = 0
    timestamp: int = 0
    ssrc: int = 0
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    extension_data: bytes = b""
    padding_size: int = 0
    version: int = 2

    @property
    def padding(self) -> bool:
        """The P bit."""
        return self.padding_size > 0

    @property
    def extension(self) -> bool:
        """The X bit."""
        return self.extension_profile is not None

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram; raises RtpError and nothing else on malformed data."""
        if len(data) < RTP_HEADER_SIZE:
            raise RtpError(f"RTP packet too short: {len(data)} bytes, the header alone is {RTP_HEADER_SIZE}")
        b0, b1, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", data)
        version = b0 >> 6
        if version != 2:
            raise RtpError(f"RTP version {version} is not supported (only 2)")
        cc = b0 & 0x0F
        pos = RTP_HEADER_SIZE + 4 * cc
        if len(data) < pos:
            raise RtpError(f"RTP packet truncated: {cc} CSRCs announced, {len(data)} bytes")
        csrc = list(struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE))
        extension_profile: int | None = None
        extension_data = b""
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise RtpError("RTP packet truncated inside its header extension")
            extension_profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise RtpError(f"RTP header extension announces {4 * words} bytes past the end of the packet")
            extension_data = bytes(data[pos : pos + 4 * words])
            pos += 4 * words
        end = len(data)
        padding_size = 0
        if b0 & 0x20:
            padding_size = data[-1]
            if padding_size == 0 or end - padding_size < pos:
                raise RtpError(f"RTP padding count {padding_size} is invalid for a {len(data)}-byte packet")
            end -= padding_size
        return cls(
            payload_type=b1 & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(b1 & 0x80),
            csrc=csrc,
            extension_profile=extension_profile,
            extension_data=extension_data,
            padding_size=padding_size,
            version=version,
        )

    def serialize(self) -> bytes:
        """Wire bytes of this packet; raises RtpError on out-of-range fields."""
        if self.version != 2:
            raise RtpError(f"RTP version {self.version} is not supported (only 2)")
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"RTP payload type {self.payload_type} is out of range 0-127")
        if not 0 <= self.sequence <= 0xFFFF:
            raise RtpError(f"RTP sequence number {self.sequence} is out of range 0-65535")
        if not 0 <= self.timestamp <= 0xFFFFFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("RTP timestamp and SSRC must fit in 32 bits")
        if len(self.csrc) > 15 or any(not 0 <= c <= 0xFFFFFFFF for c in self.csrc):
            raise RtpError("RTP allows at most 15 CSRCs of 32 bits each")
        if len(self.extension_data) % 4 or len(self.extension_data) > 4 * 0xFFFF:
            raise RtpError("RTP header extension data must be a multiple of 4 bytes")
        if self.extension_profile is None and self.extension_data:
            raise RtpError("RTP header extension data needs an extension_profile")
        if self.extension_profile is not None and not 0 <= self.extension_profile <= 0xFFFF:
            raise RtpError("RTP header extension profile must fit in 16 bits")
        if not 0 <= self.padding_size <= 255:
            raise RtpError(f"RTP padding size {self.padding_size} is out of range 0-255")
        b0 = (2 << 6) | (0x20 if self.padding_size else 0) | (0x10 if self.extension else 0) | len(self.csrc)
        b1 = (0x80 if self.marker else 0) | self.payload_type
        parts = [struct.pack("!BBHII", b0, b1, self.sequence, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", c) for c in self.csrc)
        if self.extension_profile is not None:
            parts.append(struct.pack("!HH", self.extension_profile, len(self.extension_data) // 4))
            parts.append(self.extension_data)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)
