"""RTCP packets and the RFC 3550 reception statistics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    ntp_middle,
    ntp_now,
    parse_compound,
    serialize_compound,
)

u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(ReportBlock, ssrc=u32, fraction_lost=st.integers(0, 255),
                   cumulative_lost=st.integers(-(1 << 23), (1 << 23) - 1), highest_sequence=u32, jitter=u32,
                   lsr=u32, dlsr=u32)
reports = st.lists(blocks, max_size=4)
rtcp_packets = st.one_of(
    st.builds(SenderReport, ssrc=u32, ntp_timestamp=st.integers(0, (1 << 64) - 1), rtp_timestamp=u32,
              packet_count=u32, octet_count=u32, reports=reports),
    st.builds(ReceiverReport, ssrc=u32, reports=reports),
    st.builds(SourceDescription, chunks=st.lists(
        st.tuples(u32, st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=20)), max_size=3)), max_size=3)),
    st.builds(Bye, sources=st.lists(u32, max_size=3), reason=st.binary(max_size=30)),
    st.builds(UnknownRtcp, packet_type=st.sampled_from([204, 205, 206, 207]), count=st.integers(0, 31),
              body=st.integers(0, 4).map(lambda n: bytes(4 * n))),
)


def test_sender_report_wire_layout() -> None:
    sr = SenderReport(0x11223344, 0x0102030405060708, 160, 10, 1600,
                      [ReportBlock(0xAABBCCDD, 64, 3, 0x10005, 12, 0x1234, 0x5678)])
    wire = sr.serialize()
    assert wire[:4] == bytes([0x81, 200, 0, 12])  # one block, 52 bytes = 13 words - 1
    assert len(wire) == 52
    assert parse_compound(wire) == [sr]


def test_negative_cumulative_loss_survives() -> None:
    rr = ReceiverReport(1, [ReportBlock(2, cumulative_lost=-5)])
    assert parse_compound(rr.serialize()) == [rr]


def test_compound_with_sdes_and_bye() -> None:
    packets = [ReceiverReport(7, [ReportBlock(9, 10, 20, 30, 40, 50, 60)]),
               SourceDescription([(7, [(1, b"agent@127.0.0.1")])]),
               Bye([7], b"call ended")]
    parsed = parse_compound(serialize_compound(packets))
    assert parsed == packets
    sdes = parsed[1]
    assert isinstance(sdes, SourceDescription) and sdes.cname(7) == b"agent@127.0.0.1" and sdes.cname(8) is None


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_round_trip(packets: list[RtcpPacket]) -> None:
    assert parse_compound(serialize_compound(packets)) == packets


@given(st.binary(max_size=200))
def test_parse_fuzz_raises_only_rtcp_error(data: bytes) -> None:
    try:
        parse_compound(data)
    except RtcpError:
        pass


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\xc8", bytes([0x40, 200, 0, 0]), bytes([0x81, 200, 0, 6]) + bytes(24),
     bytes([0x80, 201, 0, 5]) + bytes(8), bytes([0x81, 202, 0, 1]) + b"\x00\x00\x00\x01",
     bytes([0xA0, 201, 0, 1]) + b"\x00\x00\x00\x00"],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_compound(data)


def test_serialize_errors() -> None:
    with pytest.raises(RtcpError, match="fraction"):
        ReportBlock(1, fraction_lost=300).serialize()
    with pytest.raises(RtcpError, match="31"):
        ReceiverReport(1, [ReportBlock(i) for i in range(32)]).serialize()
    with pytest.raises(RtcpError):
        SenderReport(1 << 33).serialize()


def test_ntp_helpers() -> None:
    ntp = ntp_now(0.5)
    assert ntp >> 32 == 2208988800 and ntp & 0xFFFFFFFF == 1 << 31
    assert ntp_middle(ntp) == ((2208988800 & 0xFFFF) << 16) | 0x8000


def test_reception_loss_and_wraparound() -> None:
    stats = ReceptionStats()
    seqs = [65530 + i for i in range(12) if i not in (3, 8)]
    for i, seq in enumerate(seqs):
        stats.update(seq & 0xFFFF, i * 160, i * 0.02)
    assert stats.cycles == 1 << 16
    assert stats.expected == 12 and stats.received == 10 and stats.lost == 2
    assert stats.extended_max == 65536 + 5
    assert stats.fraction_lost() == (2 << 8) // 12
    assert stats.fraction_lost() == 0  # a new interval with nothing new


def test_reception_duplicates_make_loss_negative_and_report_block() -> None:
    stats = ReceptionStats()
    for seq in (1, 2, 2, 3):
        stats.update(seq, seq * 160, seq * 0.02)
    assert stats.lost == -1
    block = stats.report_block(99, lsr=5, dlsr=6)
    assert block.cumulative_lost == -1 and block.fraction_lost == 0 and block.highest_sequence == 3
    assert ReportBlock.parse(block.serialize()) == block


def test_jitter_zero_for_steady_arrivals_and_grows_with_delay_variation() -> None:
    steady = ReceptionStats()
    for i in range(50):
        steady.update(i, i * 160, 1.0 + i * 0.02)
    assert steady.jitter_ms == pytest.approx(0.0, abs=1e-6)
    shaky = ReceptionStats()
    for i in range(400):
        shaky.update(i, i * 160, 1.0 + i * 0.02 + (0.01 if i % 2 else 0.0))
    # Transit alternates by 10 ms, so |D| is always 10 ms and the estimate converges to it.
    assert shaky.jitter_ms == pytest.approx(10.0, rel=0.01)


def test_sender_restart_resynchronises() -> None:
    stats = ReceptionStats()
    for i in range(5):
        stats.update(100 + i, i * 160, i * 0.02)
    stats.update(40000, 0, 1.0)
    assert stats.expected == 1 and stats.lost == 0
