"""SIP message parsing and serialization: round trips, compact forms, limits, 400 answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip import message as m
from telephony.sip.errors import SipParseError
from telephony.sip.message import Request, Response, StreamFramer, error_response, make_response, parse

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_request_round_trip() -> None:
    req = parse(INVITE)
    assert isinstance(req, Request)
    assert req.method == "INVITE" and req.uri.user == "bob" and req.uri.host == "biloxi.example.com"
    assert req.from_.display == "Alice A." and req.from_.tag == "1928301774"
    assert req.to.tag is None
    assert req.cseq.seq == 314159 and req.cseq.method == "INVITE"
    assert req.via.branch == "z9hG4bK776asdhds"
    assert req.body == b"v=0\n"
    again = parse(req.serialize())
    assert isinstance(again, Request)
    assert again.serialize() == req.serialize()
    assert again.headers.items == req.headers.items


def test_response_round_trip_and_make_response() -> None:
    req = parse(INVITE)
    assert isinstance(req, Request)
    resp = make_response(req, 180, to_tag="abc")
    wire = resp.serialize()
    back = parse(wire)
    assert isinstance(back, Response)
    assert back.status == 180 and back.reason == "Ringing"
    assert back.to.tag == "abc" and back.from_.tag == "1928301774"
    assert back.headers.get("Content-Length") == "0"
    assert parse(back.serialize()).serialize() == wire


def test_compact_forms_folding_and_multiple_vias() -> None:
    raw = (
        b"BYE sip:bob@h SIP/2.0\r\n"
        b"v: SIP/2.0/UDP a.example;branch=z9hG4bK1,\r\n"
        b" SIP/2.0/TCP b.example:5070;branch=z9hG4bK2\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>;tag=2\r\ni: xyz\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n"
    )
    req = parse(raw)
    assert [v.host for v in req.vias] == ["a.example", "b.example"]
    assert req.vias[1].port == 5070 and req.vias[1].transport == "TCP"
    assert req.call_id == "xyz"
    assert b"Call-ID: xyz" in req.serialize()


@pytest.mark.parametrize("mutate, why", [
    (lambda b: b.replace(b"CSeq: 314159 INVITE\r\n", b""), "missing mandatory header CSeq"),
    (lambda b: b.replace(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia"), "version SIP/3.0 is not supported"),
    (lambda b: b.replace(b"SIP/2.0\r\nVia", b"SIP/two\r\nVia"), "bad request line"),
    (lambda b: b.replace(b"Content-Length: 4", b"Content-Length: 400"), "body shorter"),
    (lambda b: b.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"), "bad CSeq"),
    (lambda b: b.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE"), "CSeq method does not match"),
    (lambda b: b.replace(b"\r\n\r\n", b"\r\n"), "no blank line"),
    (lambda b: b.replace(b"sip:bob@biloxi", b"http://bob@biloxi", 1), "unsupported URI scheme http"),
    (lambda b: b.replace(b"sip:bob@biloxi", b"<sip:bob@biloxi>", 1), "bad Request-URI"),
    (lambda b: b.replace(b"Content-Length: 4", b"Content-Length: 4\r\nl: 4"), "Content-Length appears more"),
])
def test_malformed_messages_are_rejected_with_a_reason(mutate, why: str) -> None:
    with pytest.raises(SipParseError, match=why) as info:
        parse(mutate(INVITE))
    # The answer a request gets: 505 for another version, 416 for a non-SIP scheme, else 400.
    assert info.value.status == (505 if "version" in why else 416 if "scheme" in why else 400)


def test_limits() -> None:
    with pytest.raises(SipParseError, match="exceeds"):
        parse(INVITE + b"x" * m.MAX_MESSAGE)
    many = INVITE.replace(b"\r\n\r\n", b"\r\n" + b"X-A: 1\r\n" * (m.MAX_HEADERS + 1) + b"\r\n")
    with pytest.raises(SipParseError, match="header lines"):
        parse(many)
    long_line = INVITE.replace(b"Max-Forwards: 70", b"Subject: " + b"a" * m.MAX_LINE)
    with pytest.raises(SipParseError, match="line longer"):
        parse(long_line)


def test_error_response_answers_what_can_be_answered() -> None:
    broken = INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE")
    resp = error_response(broken, "CSeq method does not match")
    assert resp is not None and resp.status == 400 and "CSeq" in resp.reason
    assert parse(resp.serialize()).headers.get("Call-ID") == "a84b4c76e66710@pc33.atlanta.example.com"
    assert error_response(broken.replace(b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n",
                                         b""), "x") is None
    assert error_response(b"SIP/2.0 200 OK\r\n\r\n", "x") is None  # never answer a response
    assert error_response(b"\xff\xfe garbage", "x") is None


def test_stream_framer_cuts_on_content_length() -> None:
    f = StreamFramer()
    data = b"\r\n" + INVITE + INVITE
    out = f.feed(data[:100]) + f.feed(data[100:len(INVITE) + 5]) + f.feed(data[len(INVITE) + 5:])
    assert out == [INVITE, INVITE]
    with pytest.raises(SipParseError, match="Content-Length"):
        StreamFramer().feed(INVITE.replace(b"Content-Length: 4\r\n", b""))


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(1, 3 * len(INVITE)), max_size=12), count=st.integers(1, 3))
def test_stream_framer_is_independent_of_segmentation(cuts: list[int], count: int) -> None:
    stream = INVITE * count
    points = sorted({c for c in cuts if c < len(stream)})
    f = StreamFramer()
    out: list[bytes] = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        out += f.feed(stream[a:b])
    assert out == [INVITE] * count and not f.buffer


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_parser_raises_only_its_own_error(data: bytes) -> None:
    try:
        parse(data)
    except SipParseError:
        pass
    error_response(data, "x")  # never raises either


HEADER_NAMES = ["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Max-Forwards", "v", "f", "t"]


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(HEADER_NAMES), value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                                          max_size=80))
def test_any_header_value_parses_or_fails_cleanly(name: str, value: str) -> None:
    lines = INVITE.decode().split("\r\n")
    lines.insert(1, f"{name}: {value}")
    data = "\r\n".join(lines).encode()
    try:
        msg = parse(data)
    except SipParseError:
        return
    # Whatever parses must serialize and parse back to the same headers.
    again = parse(msg.serialize())
    assert again.headers.items == msg.headers.items and again.body == msg.body
