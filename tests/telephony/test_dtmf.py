"""RFC 4733 telephone events: payloads, the sender's packet train, exactly-once reception, SIP INFO bodies."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.dtmf import (
    DtmfError,
    DtmfReceiver,
    TelephoneEvent,
    digit_to_event,
    dtmf_packets,
    event_to_digit,
    parse_dtmf_info,
)
from telephony.rtp import RtpPacket


def test_payload_wire_format() -> None:
    ev = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    assert ev.serialize() == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert TelephoneEvent.parse(ev.serialize()) == ev


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_payload_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    ev = TelephoneEvent(event, end, volume, duration)
    assert TelephoneEvent.parse(ev.serialize()) == ev


@given(st.binary(max_size=8))
def test_payload_fuzz(data: bytes) -> None:
    try:
        TelephoneEvent.parse(data)
    except DtmfError:
        assert len(data) < 4


def test_payload_errors() -> None:
    with pytest.raises(DtmfError, match="needs 4"):
        TelephoneEvent.parse(b"\x01")
    with pytest.raises(DtmfError, match="out of range"):
        TelephoneEvent(1, volume=64).serialize()


def test_digit_codes() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert event_to_digit(11) == "#" and event_to_digit(16) is None
    for bad in ("", "12", "E", "x"):
        with pytest.raises(DtmfError, match="not a DTMF digit"):
            digit_to_event(bad)


def test_sender_packet_train() -> None:
    packets = dtmf_packets("7", sequence=65534, timestamp=12345, ssrc=99, payload_type=101, duration_ms=100)
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)
    assert {p.timestamp for p in packets} == {12345} and {p.payload_type for p in packets} == {101}
    assert [p.sequence for p in packets] == [(65534 + i) & 0xFFFF for i in range(len(packets))]
    assert all(e.event == 7 for e in events)
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3


def feed_all(rx: DtmfReceiver, packets: list[RtpPacket]) -> list[str]:
    return [d for p in packets if (d := rx.feed(p)) is not None]


def test_receiver_reports_each_press_once() -> None:
    rx = DtmfReceiver(101)
    first = dtmf_packets("1", sequence=0, timestamp=1000, ssrc=5)
    second = dtmf_packets("1", sequence=len(first), timestamp=3000, ssrc=5)  # the same key pressed again
    third = dtmf_packets("#", sequence=20, timestamp=5000, ssrc=5)
    assert feed_all(rx, first + second + third) == ["1", "1", "#"]
    assert feed_all(rx, third[-3:]) == []  # late retransmitted ends


def test_receiver_survives_loss_and_reordering() -> None:
    rng = random.Random(3)
    rx = DtmfReceiver(101)
    digits = "0123456789*#"
    got: list[str] = []
    for i, d in enumerate(digits):
        packets = dtmf_packets(d, sequence=i * 10, timestamp=i * 4000, ssrc=1)
        kept = [p for p in packets[1:] if rng.random() > 0.3] + packets[-1:]  # start packet lost, ends survive
        rng.shuffle(kept)
        got += feed_all(rx, kept)
    assert "".join(got) == digits


def test_receiver_ignores_other_payload_types_and_segments() -> None:
    rx = DtmfReceiver(101)
    assert rx.feed(RtpPacket(payload_type=0, payload=b"\xff" * 160)) is None
    # A press longer than one segment continues at timestamp + duration without a new digit.
    seg1 = RtpPacket(payload_type=101, timestamp=0, ssrc=1, payload=TelephoneEvent(5, False, 10, 0xFFFF).serialize())
    seg2 = RtpPacket(payload_type=101, timestamp=0xFFFF, ssrc=1, payload=TelephoneEvent(5, True, 10, 800).serialize())
    assert feed_all(rx, [seg1, seg2]) == ["5"]
    flash = RtpPacket(payload_type=101, timestamp=90000, ssrc=1, payload=TelephoneEvent(16).serialize())
    assert rx.feed(flash) is None
    with pytest.raises(DtmfError):
        rx.feed(RtpPacket(payload_type=101, timestamp=99999, payload=b"\x01"))


@pytest.mark.parametrize(
    ("body", "ctype", "digit"),
    [
        ("Signal=5\r\nDuration=160\r\n", "application/dtmf-relay", "5"),
        ("Signal= *\nDuration= 250", "application/dtmf-relay", "*"),
        ("signal=11\r\nduration=100", "application/dtmf-relay; charset=utf-8", "#"),
        ("Signal=a\r\n", "application/dtmf-relay", "A"),
        ("9", "application/dtmf", "9"),
    ],
)
def test_sip_info_bodies(body: str, ctype: str, digit: str) -> None:
    assert parse_dtmf_info(body, ctype) == digit


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        ("Duration=160", "application/dtmf-relay", "no Signal"),
        ("Signal=Z", "application/dtmf-relay", "not a DTMF digit"),
        ("Signal=5", "text/plain", "content type"),
    ],
)
def test_sip_info_errors(body: str, ctype: str, message: str) -> None:
    with pytest.raises(DtmfError, match=message):
        parse_dtmf_info(body, ctype)


@given(st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=6)), max_size=30))
def test_receiver_fuzz_raises_only_dtmf_error(items: list[tuple[int, bytes]]) -> None:
    rx = DtmfReceiver(101)
    for ts, data in items:
        try:
            digit = rx.feed(RtpPacket(payload_type=101, timestamp=ts * 800, payload=data))
        except DtmfError:
            continue
        assert digit is None or digit in "0123456789*#ABCD"
