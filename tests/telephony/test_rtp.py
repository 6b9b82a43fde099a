"""RTP packets: wire format, round trips, and a parser that only ever raises RtpError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.errors import TelephonyError
from telephony.rtp import RtpError, RtpPacket, is_rtcp

packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    extension_profile=st.integers(0, 0xFFFF),
    extension_data=st.integers(0, 8).map(lambda n: bytes(range(4 * n))),
    padding_size=st.integers(0, 255),
) | st.builds(RtpPacket, payload_type=st.integers(0, 127), sequence=st.integers(0, 0xFFFF),
              payload=st.binary(max_size=40))


def test_known_bytes() -> None:
    # Version 2, marker, PCMA, sequence 0x1234, timestamp 0x01020304, SSRC 0xDEADBEEF.
    wire = bytes.fromhex("80881234" "01020304" "deadbeef") + b"\xd5" * 160
    p = RtpPacket.parse(wire)
    assert (p.version, p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc) == (
        2, True, 8, 0x1234, 0x01020304, 0xDEADBEEF)
    assert p.payload == b"\xd5" * 160 and not p.padding and not p.extension and p.csrc == []
    assert p.serialize() == wire


def test_csrc_extension_and_padding_parse() -> None:
    wire = (bytes([0x80 | 0x20 | 0x10 | 2, 0]) + b"\x00\x01" + b"\x00" * 8 + b"\x00\x00\x00\x0a\x00\x00\x00\x0b"
            + b"\xbe\xde\x00\x01" + b"\x10\xff\x00\x00" + b"abc" + b"\x00\x00\x03")
    p = RtpPacket.parse(wire)
    assert p.csrc == [10, 11]
    assert p.extension and p.extension_profile == 0xBEDE and p.extension_data == b"\x10\xff\x00\x00"
    assert p.padding and p.padding_size == 3 and p.payload == b"abc"
    assert p.serialize() == wire


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(packet.serialize()) == packet


@given(st.binary(max_size=300))
def test_parse_fuzz_raises_only_rtp_error(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except RtpError:
        return
    assert p.version == 2 and 0 <= p.payload_type <= 127


@given(packets, st.integers(0, 400))
def test_truncated_packets(packet: RtpPacket, cut: int) -> None:
    wire = packet.serialize()
    try:
        RtpPacket.parse(wire[: min(cut, len(wire))])
    except RtpError:
        pass


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00", "too short"),
        (bytes([0x40, 0]) + bytes(10), "version 1"),
        (bytes([0x83, 0]) + bytes(10), "CSRC"),
        (bytes([0x90, 0]) + bytes(10) + b"\x00\x00\x00\x05", "extension"),
        (bytes([0xA0, 0]) + bytes(10) + b"\x00", "padding"),
        (bytes([0xA0, 0]) + bytes(10) + b"\x09", "padding"),
    ],
)
def test_malformed_messages(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        RtpPacket.parse(data)
    assert issubclass(RtpError, TelephonyError)


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(payload_type=128),
        RtpPacket(sequence=70000),
        RtpPacket(timestamp=-1),
        RtpPacket(csrc=list(range(16))),
        RtpPacket(extension_profile=1, extension_data=b"abc"),
        RtpPacket(extension_data=b"abcd"),
        RtpPacket(padding_size=256),
        RtpPacket(version=1),
    ],
)
def test_serialize_rejects_out_of_range(packet: RtpPacket) -> None:
    with pytest.raises(RtpError):
        packet.serialize()


def test_rtcp_demultiplexing() -> None:
    assert is_rtcp(bytes([0x80, 200]) + bytes(6))
    assert not is_rtcp(RtpPacket(payload_type=0).serialize())
    assert not is_rtcp(RtpPacket(payload_type=8, marker=True).serialize())
