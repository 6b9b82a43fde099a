"""SIP messages (RFC 3261 section 7): parse and serialize with strict size limits."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from telephony.sip.errors import SipParseError
from telephony.sip.headers import CSeq, NameAddr, Via, split_list
from telephony.sip.uri import SipUri

MAX_MESSAGE = 65535  # the largest UDP datagram; TCP messages get the same bound
MAX_HEADERS = 128
MAX_LINE = 4096

COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
           "c": "Content-Type", "e": "Content-Encoding", "k": "Supported", "s": "Subject", "r": "Refer-To",
           "b": "Referred-By", "o": "Event", "u": "Allow-Events", "x": "Session-Expires"}
CANONICAL = {name.lower(): name for name in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type", "Max-Forwards",
    "Route", "Record-Route", "Allow", "Supported", "Require", "User-Agent", "Server", "Expires",
    "WWW-Authenticate", "Authorization", "Proxy-Authenticate", "Proxy-Authorization", "Refer-To",
    "Referred-By", "Event", "Subscription-State", "Accept", "Allow-Events", "Reason", "Retry-After",
    "Session-Expires", "Min-Expires", "Unsupported", "Warning")}
# Headers whose values may be comma-joined lists of several entries.
LIST_HEADERS = {"via", "route", "record-route", "contact", "allow", "supported", "require"}
METHOD_RE = re.compile(r"^[A-Za-z0-9!%*_+`'~.-]+$")  # RFC 3261 token
VERSION_RE = re.compile(r"^SIP/\d+\.\d+$")
MANDATORY = ("via", "from", "to", "call-id", "cseq")
SINGLE = ("from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type")  # at most once


def canonical(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded)."""
    name = name.strip()
    low = name.lower()
    if low in COMPACT:
        return COMPACT[low]
    return CANONICAL.get(low, name)


class Headers:
    """Ordered, case-insensitive multi-map of header fields."""

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self.items: list[tuple[str, str]] = [(canonical(k), v) for k, v in (items or [])]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header."""
        low = canonical(name).lower()
        for k, v in self.items:
            if k.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, comma lists split for list headers."""
        low = canonical(name).lower()
        out: list[str] = []
        for k, v in self.items:
            if k.lower() == low:
                out.extend(split_list(v) if low in LIST_HEADERS else [v])
        return out

    def set(self, name: str, value: str) -> None:
        """Replace every value of a header with one value (kept at the first position)."""
        name = canonical(name)
        low = name.lower()
        for i, (k, _) in enumerate(self.items):
            if k.lower() == low:
                self.items[i] = (name, value)
                self.items = [it for j, it in enumerate(self.items) if j <= i or it[0].lower() != low]
                return
        self.items.append((name, value))

    def add(self, name: str, value: str, first: bool = False) -> None:
        """Append (or prepend) one value."""
        item = (canonical(name), value)
        if first:
            self.items.insert(0, item)
        else:
            self.items.append(item)

    def remove(self, name: str) -> None:
        """Drop every value of a header."""
        low = canonical(name).lower()
        self.items = [(k, v) for k, v in self.items if k.lower() != low]

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers(list(self.items))


@dataclass
class SipMessage:
    """What requests and responses share."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq."""
        return CSeq.parse(self.headers.get("CSeq") or "")

    @property
    def vias(self) -> list[Via]:
        """Every Via, topmost first."""
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def via(self) -> Via:
        """The topmost Via."""
        first = self.headers.get_all("Via")
        if not first:
            raise SipParseError("no Via")
        return Via.parse(first[0])

    @property
    def from_(self) -> NameAddr:
        """The From header."""
        return NameAddr.parse(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        """The To header."""
        return NameAddr.parse(self.headers.get("To") or "")

    @property
    def contact(self) -> NameAddr | None:
        """The first Contact, if any."""
        values = self.headers.get_all("Contact")
        if not values or values[0].strip() == "*":
            return None
        return NameAddr.parse(values[0])

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters."""
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def text(self) -> str:
        """The body as text (replacement characters for bad UTF-8)."""
        return self.body.decode("utf-8", "replace")

    def first_line(self) -> str:
        """The start line."""
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire bytes, Content-Length always set from the body."""
        self.headers.set("Content-Length", str(len(self.body)))
        lines = [self.first_line()] + [f"{k}: {v}" for k, v in self.headers.items]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class Request(SipMessage):
    """A SIP request."""

    method: str = "OPTIONS"
    uri: SipUri = field(default_factory=lambda: SipUri("invalid"))

    def first_line(self) -> str:
        """``METHOD uri SIP/2.0``."""
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass
class Response(SipMessage):
    """A SIP response."""

    status: int = 200
    reason: str = "OK"

    def first_line(self) -> str:
        """``SIP/2.0 status reason``."""
        return f"SIP/2.0 {self.status} {self.reason}"


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    if len(data) > MAX_MESSAGE:
        raise SipParseError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    data = data.lstrip(b"\r\n")  # keep-alive CRLFs before a message are allowed
    end = data.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = data.find(b"\n\n")
        sep = 2
    if end < 0:
        raise SipParseError("no blank line after the headers")
    try:
        head = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines: list[str] = []
    for raw in re.split(r"\r?\n", head):
        if len(raw) > MAX_LINE:
            raise SipParseError(f"line longer than {MAX_LINE} characters")
        if raw[:1] in (" ", "\t") and lines:  # folded continuation line
            lines[-1] += " " + raw.strip()
            if len(lines[-1]) > MAX_LINE:
                raise SipParseError(f"line longer than {MAX_LINE} characters")
        else:
            lines.append(raw)
    return lines, data[end + sep:]


def _header_items(lines: list[str]) -> list[tuple[str, str]]:
    if len(lines) - 1 > MAX_HEADERS:
        raise SipParseError(f"more than {MAX_HEADERS} header lines")
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name or any(c in name for c in " \t\"<>,;"):
            raise SipParseError(f"bad header line: {line[:80]!r}")
        items.append((name, value.strip()))
    return items


def parse(data: bytes) -> Request | Response:
    """Parse one whole message (a UDP datagram, or a TCP frame); raises SipParseError.

    The error's ``status`` says how a request is answered: 505 for another SIP version, 416 for a
    Request-URI that is not sip/sips, 400 for everything else.
    """
    lines, body = _split_head(data)
    start = lines[0]
    headers = Headers(_header_items(lines))
    for name in SINGLE:
        if len(headers.get_all(name)) > 1:
            raise SipParseError(f"{canonical(name)} appears more than once")
    length = headers.get("Content-Length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_MESSAGE:
            raise SipParseError(f"bad Content-Length: {length[:20]!r}")
        if int(length) > len(body):
            raise SipParseError(f"body shorter than Content-Length {length}")
        body = body[:int(length)]
    msg: Request | Response
    if start.startswith("SIP/"):
        bits = start.split(" ", 2)
        if bits[0] != "SIP/2.0" or len(bits) < 2 or not bits[1].isdigit() or len(bits[1]) != 3:
            raise SipParseError(f"bad status line: {start[:80]!r}")
        status = int(bits[1])
        if not 100 <= status <= 699:
            raise SipParseError(f"bad status code: {status}")
        msg = Response(headers, body, status, bits[2] if len(bits) > 2 else "")
    else:
        bits = start.split(" ")
        if len(bits) != 3 or not METHOD_RE.match(bits[0]) or not bits[1]:
            raise SipParseError(f"bad request line: {start[:80]!r}")
        if bits[2] != "SIP/2.0":
            if VERSION_RE.match(bits[2]):
                raise SipParseError(f"SIP version {bits[2]} is not supported", status=505)
            raise SipParseError(f"bad request line: {start[:80]!r}")
        try:
            uri = SipUri.parse(bits[1])
        except SipParseError:
            try:
                other = SipUri.parse(bits[1], any_scheme=True)
            except SipParseError:
                raise SipParseError(f"bad Request-URI: {bits[1][:80]!r}") from None
            raise SipParseError(f"unsupported URI scheme {other.scheme}", status=416) from None
        if uri.headers:
            raise SipParseError("a Request-URI must not carry headers")  # RFC 4475 3.1.2.11
        msg = Request(headers, body, bits[0], uri)
    for name in MANDATORY:
        if headers.get(name) is None:
            raise SipParseError(f"missing mandatory header {canonical(name)}")
    # Structured headers are checked now so the rest of the stack can trust them.
    cseq, _, _, _ = msg.cseq, msg.from_, msg.to, msg.vias
    for value in headers.get_all("Contact"):
        if value.strip() != "*":
            NameAddr.parse(value)
    if isinstance(msg, Request) and cseq.method != msg.method.upper() and msg.method != "ACK":
        raise SipParseError("CSeq method does not match the request method")
    return msg


def error_response(data: bytes, reason: str, status: int = 400) -> Response | None:
    """An error answer (400, 416, 505) to a malformed request when a usable Via survives to route it.

    From, To, Call-ID and CSeq are copied when present (RFC 3261 8.2.6.2); the To gets our tag.
    """
    try:
        lines, _ = _split_head(data[:MAX_MESSAGE])
        bits = lines[0].split(" ")
        if len(bits) < 1 or bits[0].startswith("SIP/") or bits[0] == "ACK":
            return None  # responses and ACKs are never answered
        items = []
        for line in lines[1:MAX_HEADERS + 1]:
            name, colon, value = line.partition(":")
            if colon and name.strip():
                items.append((name.strip(), value.strip()))
        headers = Headers(items)
        vias = headers.get_all("Via")
        if not vias:
            return None
        Via.parse(vias[0])  # without a usable Via there is nowhere to send a response
        out = Headers()
        for v in vias:
            out.add("Via", v)
        for name in ("From", "To", "Call-ID", "CSeq"):
            found = headers.get(name)
            if found is not None:
                out.add(name, _tagged(found) if name == "To" else found)
        clean = re.sub(r"[^\x20-\x7e]", "?", reason)[:120]
        base = REASONS.get(status, "Bad Request")
        return Response(out, b"", status, f"{base} ({clean})" if clean else base)
    except (SipParseError, ValueError, IndexError):
        return None


def _tagged(to: str, tag: str | None = None) -> str:
    """A To header value with a tag added when it has none (textually, so any To can be answered)."""
    if re.search(r";\s*tag\s*=", to, re.I):
        return to
    return f"{to};tag={tag or secrets.token_hex(6)}"


LENGTH_RE = re.compile(r"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$", re.I)


def stream_length(head: str) -> int:
    """The Content-Length of a message head on a stream (any position, compact ``l:``, exactly once)."""
    found: list[str] = []
    for line in re.split(r"\r?\n", head)[1:]:
        match = LENGTH_RE.match(line)
        if match is not None:
            found.append(match.group(1))
    if not found:
        raise SipParseError("a message on a stream transport needs Content-Length")
    if len(found) > 1:
        raise SipParseError("Content-Length appears more than once")
    if not found[0].isdigit():
        raise SipParseError(f"bad Content-Length: {found[0][:20]!r}")
    return int(found[0])


class StreamFramer:
    """Cuts a TCP byte stream into messages using Content-Length (RFC 3261 18.3)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    @property
    def waiting_for(self) -> str:
        """What a partly received message still lacks: "" (nothing pending), "headers" or "body"."""
        if not self.buffer.strip(b"\r\n"):
            return ""
        return "body" if b"\r\n\r\n" in self.buffer else "headers"

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; returns every complete message. Raises SipParseError on a broken stream."""
        self.buffer += data
        out: list[bytes] = []
        while True:
            while self.buffer[:2] == b"\r\n":  # CRLF keep-alives between messages
                del self.buffer[:2]
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_MESSAGE:
                    raise SipParseError("headers exceed the message size limit")
                return out
            head = bytes(self.buffer[:end]).decode("utf-8", "replace")
            length = stream_length(head)
            total = end + 4 + length
            if total > MAX_MESSAGE:
                raise SipParseError(f"message of {total} bytes exceeds {MAX_MESSAGE}")
            if len(self.buffer) < total:
                return out
            out.append(bytes(self.buffer[:total]))
            del self.buffer[:total]


REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 407: "Proxy Authentication Required", 408: "Request Timeout",
           406: "Not Acceptable", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
           420: "Bad Extension", 422: "Session Interval Too Small", 481: "Call/Transaction Does Not Exist",
           482: "Loop Detected", 483: "Too Many Hops", 486: "Busy Here", 487: "Request Terminated",
           488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
           501: "Not Implemented", 503: "Service Unavailable", 505: "Version Not Supported", 603: "Decline"}


def make_response(request: Request, status: int, reason: str | None = None, to_tag: str | None = None,
                  body: bytes = b"", content_type: str | None = None) -> Response:
    """A response copying Via, From, To (adding our tag), Call-ID, CSeq and Record-Route (for 1xx/2xx)."""
    h = Headers()
    for v in request.headers.get_all("Via"):
        h.add("Via", v)
    h.add("From", request.headers.get("From") or "")
    to = request.headers.get("To") or ""
    if status > 100 and (to_tag or status >= 300) and request.to.tag is None:
        # Every final error carries a To tag (RFC 3261 8.2.6.2), even when the caller gave none.
        to = str(request.to.with_tag(to_tag or secrets.token_hex(6)))
    h.add("To", to)
    h.add("Call-ID", request.call_id)
    h.add("CSeq", request.headers.get("CSeq") or "")
    if 100 < status < 300:
        for rr in request.headers.get_all("Record-Route"):
            h.add("Record-Route", rr)
    if content_type:
        h.add("Content-Type", content_type)
    return Response(h, body, status, reason or REASONS.get(status, "Unknown"))
