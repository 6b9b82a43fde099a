"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from telephony.errors import TelephonyError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# What each side may do once the other has said its direction (RFC 3264 section 6.1).
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
_CAN_SEND = {"sendrecv": True, "sendonly": True, "recvonly": False, "inactive": False}
_CAN_RECV = {"sendrecv": True, "sendonly": False, "recvonly": True, "inactive": False}

# Static payload types of RFC 3551 that we know by name; G.722's RTP clock is 8000 by a historical error.
STATIC_TYPES: dict[int, tuple[str, int, int]] = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1)}
# Our dynamic payload type choices when we offer.
_DYNAMIC: dict[str, tuple[int, int, int, str | None]] = {
    "telephone-event": (101, 8000, 1, "0-16"),
    "opus": (111, 48000, 2, "minptime=10;useinbandfec=1"),
}
DEFAULT_PTIME = 20


class SdpError(TelephonyError):
    """Malformed SDP or an SDP that cannot be negotiated."""


class NoCommonCodec(SdpError):
    """The offer and our supported codecs share no audio codec (SIP answers 488)."""


@dataclass(frozen=True)
class Codec:
    """An RTP audio codec: name as in rtpmap, payload type, RTP clock rate."""

    name: str
    payload_type: int
    rate: int
    channels: int = 1


@dataclass
class Origin:
    """The o= line."""

    username: str = "-"
    session_id: int = 0
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"


@dataclass
class MediaDescription:
    """One m= section with the attributes that matter for RTP audio."""

    media: str = "audio"
    port: int = 0
    proto: str = "RTP/AVP"
    formats: list[int] = field(default_factory=list)
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    ptime: int | None = None
    direction: str | None = "sendrecv"  # parse() fills in the session-level value; None writes no attribute
    connection: str | None = None
    port_count: int | None = None
    other_formats: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def codec(self, pt: int) -> tuple[str, int, int] | None:
        """(name, rate, channels) of a payload type: from rtpmap, else the static table."""
        return self.rtpmap.get(pt) or STATIC_TYPES.get(pt)

    def _serialize(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        fmts = [str(f) for f in self.formats] + self.other_formats
        lines = [f"m={self.media} {port} {self.proto} {' '.join(fmts)}".rstrip()]
        if self.connection is not None:
            lines.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
        # Mappings for payload types outside the m= line are odd but legal: keep them after the listed ones.
        extra = sorted((set(self.rtpmap) | set(self.fmtp)) - set(self.formats))
        for pt in [*self.formats, *extra]:
            if pt in self.rtpmap:
                name, rate, channels = self.rtpmap[pt]
                lines.append(f"a=rtpmap:{pt} {name}/{rate}" + (f"/{channels}" if channels != 1 else ""))
            if pt in self.fmtp:
                lines.append(f"a=fmtp:{pt} {self.fmtp[pt]}")
        if self.ptime is not None:
            lines.append(f"a=ptime:{self.ptime}")
        lines.extend(_attr_line(k, v) for k, v in self.attributes)
        if self.direction is not None:
            lines.append(f"a={self.direction}")
        return lines


@dataclass
class SessionDescription:
    """A whole SDP body."""

    origin: Origin = field(default_factory=Origin)
    connection: str | None = None
    media: list[MediaDescription] = field(default_factory=list)
    session_name: str = "-"
    timing: str = "0 0"
    direction: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    version: int = 0

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        """Parse an SDP body (CRLF or LF lines); raises SdpError on malformed input."""
        return _Parser(text).parse()

    def serialize(self) -> str:
        """SDP text with CRLF line endings."""
        lines = [
            f"v={self.version}",
            f"o={self.origin.username} {self.origin.session_id} {self.origin.session_version} "
            f"{self.origin.nettype} {self.origin.addrtype} {self.origin.address}",
            f"s={self.session_name or '-'}",
        ]
        if self.connection is not None:
            lines.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
        lines.append(f"t={self.timing}")
        lines.extend(_attr_line(k, v) for k, v in self.attributes)
        if self.direction is not None:
            lines.append(f"a={self.direction}")
        for m in self.media:
            lines.extend(m._serialize())
        return "\r\n".join(lines) + "\r\n"

    def audio(self) -> MediaDescription:
        """The first audio section with a non-zero port; SdpError if there is none."""
        for m in self.media:
            if m.media == "audio" and m.port != 0 and "RTP" in m.proto:
                return m
        raise SdpError("SDP has no active RTP audio stream (m=audio with a non-zero port)")

    def address_of(self, m: MediaDescription) -> str:
        """Connection address of a media section (its own c= line, else the session's)."""
        addr = m.connection or self.connection
        if addr is None:
            raise SdpError("SDP has no connection address (c=) for its audio stream")
        return addr

    def direction_of(self, m: MediaDescription) -> str:
        """Direction of a media section (media level, else session level, else sendrecv)."""
        return m.direction or self.direction or "sendrecv"


@dataclass
class Negotiated:
    """What offer/answer agreed, from our side: `direction` says what WE may do, `ptime` what the peer asked for."""

    codec: Codec
    dtmf_payload_type: int | None
    remote_address: str
    remote_port: int
    direction: str = "sendrecv"
    ptime: int = DEFAULT_PTIME

    @property
    def can_send(self) -> bool:
        """False while the peer holds us (it does not want our media) or the stream is inactive."""
        return _CAN_SEND[self.direction] and self.remote_address not in ("0.0.0.0", "::")

    @property
    def can_receive(self) -> bool:
        """False when the peer will not send us media."""
        return _CAN_RECV[self.direction]

    @property
    def on_hold(self) -> bool:
        """True when either side put the call on hold (RFC 3264 section 8.4, or the old c=0.0.0.0)."""
        return self.direction != "sendrecv" or self.remote_address in ("0.0.0.0", "::")


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _attr_line(key: str, value: str | None) -> str:
    return f"a={key}" if value is None else f"a={key}:{value}"


def _int(value: str, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise SdpError(f"SDP {what} is not an integer: {value!r}") from None
    if n < 0:
        raise SdpError(f"SDP {what} is negative: {value!r}")
    return n


class _Parser:
    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise SdpError(f"SDP must be text, got {type(text).__name__}")
        self.lines = [ln for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if ln.strip()]

    def parse(self) -> SessionDescription:
        if not self.lines:
            raise SdpError("SDP is empty")
        sd = SessionDescription()
        seen_v = seen_o = False
        current: MediaDescription | None = None
        for n, line in enumerate(self.lines, 1):
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise SdpError(f"SDP line {n} is not of the form x=value: {line[:60]!r}")
            kind, value = line[0], line[2:].strip()
            if n == 1 and kind != "v":
                raise SdpError("SDP must start with v=0")
            if kind == "v":
                if value != "0":
                    raise SdpError(f"SDP version {value!r} is not supported (only 0)")
                seen_v = True
            elif kind == "o":
                sd.origin = self._origin(value)
                seen_o = True
            elif kind == "s" and current is None:
                sd.session_name = value
            elif kind == "t" and current is None:
                sd.timing = value
            elif kind == "c":
                addr = self._connection(value)
                if current is None:
                    sd.connection = addr
                else:
                    current.connection = addr
            elif kind == "m":
                current = self._media(value)
                sd.media.append(current)
            elif kind == "a":
                self._attribute(value, sd, current)
        if not (seen_v and seen_o):
            raise SdpError("SDP lacks its v= or o= line")
        for m in sd.media:
            if m.direction is None:
                m.direction = sd.direction or "sendrecv"
        return sd

    @staticmethod
    def _origin(value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6:
            raise SdpError(f"SDP o= line needs 6 fields, got {len(parts)}: {value!r}")
        return Origin(parts[0], _int(parts[1], "session id"), _int(parts[2], "session version"), *parts[3:])

    @staticmethod
    def _connection(value: str) -> str:
        parts = value.split()
        if len(parts) != 3 or parts[0] != "IN":
            raise SdpError(f"SDP c= line must be 'IN IP4|IP6 address': {value!r}")
        return parts[2].split("/")[0]  # drop a multicast TTL

    @staticmethod
    def _media(value: str) -> MediaDescription:
        parts = value.split()
        if len(parts) < 3:
            raise SdpError(f"SDP m= line needs media, port and proto: {value!r}")
        port_text, _, count = parts[1].partition("/")
        port = _int(port_text, "media port")
        if port > 65535:
            raise SdpError(f"SDP media port {port} is out of range")
        m = MediaDescription(media=parts[0], port=port, proto=parts[2], direction=None)
        if count:
            m.port_count = _int(count, "port count")
        for fmt in parts[3:]:
            if "RTP" in m.proto:
                pt = _int(fmt, "RTP payload type")
                if pt > 127:
                    raise SdpError(f"SDP RTP payload type {pt} is out of range 0-127")
                m.formats.append(pt)
            else:
                m.other_formats.append(fmt)
        return m

    @staticmethod
    def _attribute(value: str, sd: SessionDescription, m: MediaDescription | None) -> None:
        key, sep, arg = value.partition(":")
        if key in DIRECTIONS and not sep:
            if m is None:
                sd.direction = key
            else:
                m.direction = key
            return
        if m is None:
            sd.attributes.append((key, arg if sep else None))
            return
        if key == "rtpmap":
            pt_text, _, enc = arg.partition(" ")
            pt = _int(pt_text, "rtpmap payload type")
            pieces = enc.strip().split("/")
            if len(pieces) < 2 or not pieces[0]:
                if m.media != "audio" or m.port == 0:
                    # A stream we never use (video, or declined with port 0) must not sink the offer
                    # because of one odd mapping (RFC 4475 3.1.1.8 "a=rtpmap:31 LPC" on video).
                    m.attributes.append((key, arg))
                    return
                raise SdpError(f"SDP rtpmap must be 'pt name/rate[/channels]': {arg!r}")
            channels = _int(pieces[2], "rtpmap channels") if len(pieces) > 2 else 1
            m.rtpmap[pt] = (pieces[0], _int(pieces[1], "rtpmap clock rate"), channels)
        elif key == "fmtp":
            pt_text, _, params = arg.partition(" ")
            m.fmtp[_int(pt_text, "fmtp payload type")] = params.strip()
        elif key == "ptime":
            try:
                m.ptime = max(1, round(float(arg)))
            except ValueError:
                raise SdpError(f"SDP ptime is not a number: {arg!r}") from None
        else:
            m.attributes.append((key, arg if sep else None))


def _new_session_id() -> int:
    return int(time.time() * 1000) * 1000 + random.randrange(1000)


def offer(
    address: str,
    port: int,
    codecs: list[str] | None = None,
    session_id: int | None = None,
    direction: str = "sendrecv",
) -> SessionDescription:
    """An SDP offer for one audio stream with the named codecs, in preference order."""
    names = codecs if codecs is not None else ["PCMU", "PCMA", "telephone-event"]
    if direction not in DIRECTIONS:
        raise SdpError(f"unknown SDP direction {direction!r}")
    m = MediaDescription(media="audio", port=port, proto="RTP/AVP", ptime=DEFAULT_PTIME, direction=direction)
    by_name = {v[0].lower(): k for k, v in STATIC_TYPES.items()}
    for name in names:
        key = name.lower()
        if key in by_name:
            pt = by_name[key]
            m.formats.append(pt)
            m.rtpmap[pt] = STATIC_TYPES[pt]
        elif key in _DYNAMIC:
            pt, rate, channels, fmtp = _DYNAMIC[key]
            m.formats.append(pt)
            m.rtpmap[pt] = (name if key != "opus" else "opus", rate, channels)
            if fmtp:
                m.fmtp[pt] = fmtp
        else:
            raise SdpError(f"cannot offer unknown codec {name!r} (known: PCMU, PCMA, G722, opus, telephone-event)")
    if not any(not _is_dtmf(m.codec(pt)) for pt in m.formats):
        raise SdpError("an offer needs at least one audio codec besides telephone-event")
    sid = session_id if session_id is not None else _new_session_id()
    return SessionDescription(origin=Origin("-", sid, sid, "IN", _addrtype(address), address),
                              connection=address, media=[m])


def _is_dtmf(info: tuple[str, int, int] | None) -> bool:
    return info is not None and info[0].lower() == "telephone-event"


def _name(m: MediaDescription, pt: int) -> str:
    info = m.codec(pt)
    return info[0] if info else str(pt)


def _rate(m: MediaDescription, pt: int) -> int:
    info = m.codec(pt)
    return info[1] if info else 0


def answer(
    offer: SessionDescription,
    address: str,
    port: int,
    supported: list[str] | None = None,
    direction: str = "sendrecv",
    session_id: int | None = None,
) -> tuple[SessionDescription, Negotiated]:
    """Answer an offer: the first offered codec we support, plus telephone-event if offered."""
    wanted = [s.lower() for s in (supported if supported is not None else ["PCMU", "PCMA"])]
    if direction not in DIRECTIONS:
        raise SdpError(f"unknown SDP direction {direction!r}")
    offered = offer.audio()
    remote_address = offer.address_of(offered)
    chosen: Codec | None = None
    for pt in offered.formats:
        info = offered.codec(pt)
        if info is None or _is_dtmf(info) or info[0].lower() not in wanted:
            continue
        chosen = Codec(info[0], pt, info[1], info[2])
        break
    if chosen is None:
        names = [_name(offered, pt) for pt in offered.formats]
        raise NoCommonCodec(f"no common codec: offered {', '.join(names) or 'nothing'}, we support {', '.join(wanted)}")
    # telephone-event must share the audio codec's clock (RFC 4733 section 2.1), 8000 being the usual one.
    events = [pt for pt in offered.formats if _is_dtmf(offered.codec(pt))]
    dtmf_pt = next((pt for pt in events if _rate(offered, pt) == chosen.rate), None)
    if dtmf_pt is None:
        dtmf_pt = next((pt for pt in events if _rate(offered, pt) == 8000), None)
    ours = _intersect(_REVERSE[offer.direction_of(offered)], direction)
    if remote_address in ("0.0.0.0", "::") and _CAN_SEND[ours]:
        ours = "recvonly" if _CAN_RECV[ours] else "inactive"
    ptime = offered.ptime or DEFAULT_PTIME
    sid = session_id if session_id is not None else _new_session_id()
    result = SessionDescription(origin=Origin("-", sid, sid, "IN", _addrtype(address), address), connection=address)
    for m in offer.media:
        if m is offered:
            # Our a=ptime says what we like to receive: the 20 ms our jitter buffer plays and we send.
            am = MediaDescription(media="audio", port=port, proto=m.proto, ptime=DEFAULT_PTIME, direction=ours)
            am.formats.append(chosen.payload_type)
            am.rtpmap[chosen.payload_type] = (chosen.name, chosen.rate, chosen.channels)
            if chosen.payload_type in m.fmtp:
                am.fmtp[chosen.payload_type] = m.fmtp[chosen.payload_type]
            if dtmf_pt is not None:
                am.formats.append(dtmf_pt)
                am.rtpmap[dtmf_pt] = ("telephone-event", _rate(offered, dtmf_pt), 1)
                am.fmtp[dtmf_pt] = m.fmtp.get(dtmf_pt, "0-16")
            result.media.append(am)
        else:
            # Every offered stream gets a line in the answer; port 0 rejects it (RFC 3264 section 6).
            result.media.append(MediaDescription(media=m.media, port=0, proto=m.proto, formats=list(m.formats),
                                                 other_formats=list(m.other_formats), direction="inactive"))
    negotiated = Negotiated(chosen, dtmf_pt, remote_address, offered.port, ours, ptime)
    return result, negotiated


def _intersect(a: str, b: str) -> str:
    send = _CAN_SEND[a] and _CAN_SEND[b]
    recv = _CAN_RECV[a] and _CAN_RECV[b]
    table = {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}
    return table.get((send, recv), "inactive")


def negotiated_from_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """What our offer and the peer's answer agreed (the outbound call side)."""
    ours = offer.audio()
    try:
        theirs = answer.audio()
    except SdpError:
        raise NoCommonCodec("the answer rejected the audio stream (port 0 or no audio)") from None
    offered_names = {_name(ours, pt).lower() for pt in ours.formats}
    chosen: Codec | None = None
    dtmf_pt: int | None = None
    for pt in theirs.formats:
        info = theirs.codec(pt)
        if info is None or info[0].lower() not in offered_names:
            continue
        if _is_dtmf(info):
            dtmf_pt = pt if dtmf_pt is None else dtmf_pt
        elif chosen is None:
            chosen = Codec(info[0], pt, info[1], info[2])
    if chosen is None:
        raise NoCommonCodec("the answer contains no codec from our offer")
    direction = _intersect(offer.direction_of(ours), _REVERSE[answer.direction_of(theirs)])
    remote_address = answer.address_of(theirs)
    if remote_address in ("0.0.0.0", "::") and _CAN_SEND[direction]:
        direction = "recvonly" if _CAN_RECV[direction] else "inactive"
    ptime = theirs.ptime or ours.ptime or DEFAULT_PTIME
    return Negotiated(chosen, dtmf_pt, remote_address, theirs.port, direction, ptime)
