"""SDP parsing/serialising and RFC 3264 offer/answer for one audio stream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.sdp import (
    Codec,
    MediaDescription,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    answer,
    negotiated_from_answer,
    offer,
)

# An offer as a desk phone sends it: audio with three codecs plus DTMF, and a video stream we must reject.
PHONE_OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    "s=call\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 8 0 9 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=maxptime:150\r\n"
    "a=sendrecv\r\n"
    "m=video 51372 RTP/AVP 31\r\n"
    "a=rtpmap:31 H261/90000\r\n"
)


def test_parse_phone_offer() -> None:
    sd = SessionDescription.parse(PHONE_OFFER)
    assert sd.origin.username == "alice" and sd.origin.session_id == 2890844526
    assert sd.connection == "192.0.2.10"
    audio, video = sd.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 49170, "RTP/AVP", [8, 0, 9, 101])
    assert audio.rtpmap[101] == ("telephone-event", 8000, 1)
    assert audio.fmtp == {101: "0-15"}
    assert audio.ptime == 20 and audio.direction == "sendrecv" and video.direction == "sendrecv"
    assert ("maxptime", "150") in audio.attributes
    assert video.media == "video" and video.formats == [31]


def test_serialize_uses_crlf_and_round_trips() -> None:
    sd = SessionDescription.parse(PHONE_OFFER)
    text = sd.serialize()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert SessionDescription.parse(text) == sd


def test_lf_only_and_media_level_connection() -> None:
    text = "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\nc=IN IP4 10.0.0.2/127\na=recvonly\n"
    sd = SessionDescription.parse(text)
    m = sd.audio()
    assert sd.connection is None and m.connection == "10.0.0.2" and m.direction == "recvonly"
    assert sd.address_of(m) == "10.0.0.2" and sd.direction_of(m) == "recvonly"
    assert m.codec(0) == ("PCMU", 8000, 1)  # static payload type without rtpmap


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("o=- 1 1 IN IP4 1.2.3.4\r\n", "start with v=0"),
        ("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n", "version"),
        ("v=0\r\ns=-\r\n", "o="),
        ("v=0\r\no=- 1 IN IP4 1.2.3.4\r\n", "6 fields"),
        ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n", "session id"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nthis is not sdp\r\n", "x=value"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4\r\n", "c= line"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio\r\n", "m= line"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio port RTP/AVP 0\r\n", "media port"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n", "out of range"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP pcmu\r\n", "payload type"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 200\r\n", "out of range"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", "rtpmap"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:fast\r\n", "ptime"),
    ],
)
def test_malformed_sdp(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        SessionDescription.parse(text)


@given(st.text(max_size=300))
def test_parse_fuzz_raises_only_sdp_error(text: str) -> None:
    try:
        SessionDescription.parse(text)
    except SdpError:
        pass


@given(st.lists(st.sampled_from(PHONE_OFFER.split("\r\n")), max_size=25))
def test_parse_fuzz_shuffled_lines(lines: list[str]) -> None:
    try:
        sd = SessionDescription.parse("\r\n".join(["v=0", *lines]))
    except SdpError:
        return
    assert SessionDescription.parse(sd.serialize()) == sd


def test_offer_defaults() -> None:
    sd = offer("127.0.0.1", 40000, session_id=42)
    assert sd.origin.session_id == 42 and sd.connection == "127.0.0.1"
    m = sd.audio()
    assert m.port == 40000 and m.formats == [0, 8, 101] and m.ptime == 20
    assert m.rtpmap[101] == ("telephone-event", 8000, 1) and m.fmtp[101] == "0-16"
    text = sd.serialize()
    assert "m=audio 40000 RTP/AVP 0 8 101\r\n" in text and "a=sendrecv\r\n" in text


def test_offer_rejects_unknown_or_dtmf_only() -> None:
    with pytest.raises(SdpError, match="unknown codec"):
        offer("127.0.0.1", 4000, ["AMR"])
    with pytest.raises(SdpError, match="besides telephone-event"):
        offer("127.0.0.1", 4000, ["telephone-event"])


def test_answer_phone_offer() -> None:
    sd, neg = answer(SessionDescription.parse(PHONE_OFFER), "127.0.0.1", 30000)
    # The offerer's first codec that we support wins; DTMF comes along; video is rejected with port 0.
    assert neg.codec == Codec("PCMA", 8, 8000)
    assert neg.dtmf_payload_type == 101
    assert (neg.remote_address, neg.remote_port, neg.direction, neg.ptime) == ("192.0.2.10", 49170, "sendrecv", 20)
    assert not neg.on_hold and neg.can_send and neg.can_receive
    audio, video = sd.media
    assert audio.port == 30000 and audio.formats == [8, 101] and audio.fmtp[101] == "0-15"
    assert video.port == 0 and video.media == "video"
    assert SessionDescription.parse(sd.serialize()) == sd


def test_answer_prefers_offer_order_among_supported() -> None:
    _, neg = answer(SessionDescription.parse(PHONE_OFFER), "127.0.0.1", 30000, ["PCMU"])
    assert neg.codec.name == "PCMU"
    _, neg = answer(SessionDescription.parse(PHONE_OFFER), "127.0.0.1", 30000, ["G722"])
    assert neg.codec == Codec("G722", 9, 8000)


def test_no_common_codec() -> None:
    sd = offer("127.0.0.1", 4000, ["opus", "telephone-event"])
    with pytest.raises(NoCommonCodec, match="offered opus, telephone-event"):
        answer(sd, "127.0.0.1", 5000, ["PCMU", "PCMA"])
    assert issubclass(NoCommonCodec, SdpError)


def test_answer_without_audio() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
    with pytest.raises(SdpError, match="no active RTP audio"):
        answer(SessionDescription.parse(text), "127.0.0.1", 5000)


@pytest.mark.parametrize(
    ("offer_direction", "ours"),
    [("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive"), ("sendrecv", "sendrecv")],
)
def test_answer_mirrors_direction(offer_direction: str, ours: str) -> None:
    sd = offer("10.1.1.1", 4000, direction=offer_direction)
    answer_sd, neg = answer(sd, "127.0.0.1", 5000)
    assert neg.direction == ours and answer_sd.audio().direction == ours
    assert neg.on_hold == (ours != "sendrecv")


def test_session_level_direction_and_old_style_hold() -> None:
    text = PHONE_OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0").replace("a=sendrecv\r\n", "")
    text = text.replace("t=0 0\r\n", "t=0 0\r\na=sendrecv\r\n")
    _, neg = answer(SessionDescription.parse(text), "127.0.0.1", 5000)
    # c=0.0.0.0 (RFC 2543 hold): the peer wants no media, we still listen.
    assert neg.remote_address == "0.0.0.0" and neg.direction == "recvonly"
    assert neg.on_hold and not neg.can_send


def test_our_direction_limits_the_answer() -> None:
    _, neg = answer(offer("10.1.1.1", 4000), "127.0.0.1", 5000, direction="sendonly")
    assert neg.direction == "sendonly"
    with pytest.raises(SdpError, match="direction"):
        answer(offer("10.1.1.1", 4000), "127.0.0.1", 5000, direction="sideways")


def test_negotiated_from_answer() -> None:
    ours = offer("127.0.0.1", 4000, ["PCMU", "PCMA", "telephone-event"])
    theirs, their_view = answer(ours, "10.0.0.9", 6000, ["PCMA"])
    neg = negotiated_from_answer(ours, theirs)
    assert neg.codec == Codec("PCMA", 8, 8000) == their_view.codec
    assert neg.dtmf_payload_type == 101
    assert (neg.remote_address, neg.remote_port, neg.direction) == ("10.0.0.9", 6000, "sendrecv")


def test_negotiated_from_answer_hold_and_rejection() -> None:
    ours = offer("127.0.0.1", 4000)
    theirs, _ = answer(ours, "10.0.0.9", 6000, direction="recvonly")
    assert negotiated_from_answer(ours, theirs).direction == "sendonly"
    theirs.media[0].port = 0
    with pytest.raises(NoCommonCodec, match="rejected"):
        negotiated_from_answer(ours, theirs)
    foreign = SessionDescription.parse(PHONE_OFFER.replace("8 0 9 101", "9"))
    with pytest.raises(NoCommonCodec):
        negotiated_from_answer(ours, foreign)


def test_opus_offer_and_wideband_dtmf() -> None:
    sd = offer("127.0.0.1", 4000, ["opus", "PCMU", "telephone-event"])
    m = sd.audio()
    assert m.rtpmap[111] == ("opus", 48000, 2) and "useinbandfec=1" in m.fmtp[111]
    assert "a=rtpmap:111 opus/48000/2\r\n" in sd.serialize()
    m.formats.append(102)
    m.rtpmap[102] = ("telephone-event", 48000, 1)
    _, neg = answer(sd, "127.0.0.1", 5000, ["opus"])
    assert neg.codec == Codec("opus", 111, 48000, 2)
    assert neg.dtmf_payload_type == 102  # the event clock must match the codec's


def test_non_rtp_media_keeps_tokens() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    sd = SessionDescription.parse(text)
    assert sd.media[0].other_formats == ["webrtc-datachannel"]
    assert SessionDescription.parse(sd.serialize()) == sd
    assert MediaDescription().direction == "sendrecv"


def test_answer_asks_for_20_ms_whatever_the_offer_prefers() -> None:
    sd, neg = answer(SessionDescription.parse(PHONE_OFFER.replace("a=ptime:20", "a=ptime:30")), "127.0.0.1", 5000)
    assert neg.ptime == 30 and sd.audio().ptime == 20
