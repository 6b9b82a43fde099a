"""Structured SIP header values: name-addr (From/To/Contact/Route), Via, CSeq."""

from __future__ import annotations

from dataclasses import dataclass, field

from telephony.sip.errors import SipParseError
from telephony.sip.uri import SipUri, split_hostport

Params = dict[str, str | None]


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes and <...>."""
    parts: list[str] = []
    depth, quoted, start, i = 0, False, 0, 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def parse_params(text: str) -> Params:
    """``;a=b;c`` -> {"a": "b", "c": None} (names lower-cased, quotes kept)."""
    params: Params = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        k, eq, v = item.partition("=")
        params[k.strip().lower()] = v.strip() if eq else None
    return params


def format_params(params: Params) -> str:
    """The inverse of parse_params."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass
class NameAddr:
    """``"Display" <uri>;params`` as used by From, To, Contact, Route and Record-Route."""

    uri: SipUri
    display: str = ""
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse a name-addr or a bare addr-spec (whose ;params then belong to the header)."""
        text = text.strip()
        if "<" in text:
            lt = text.index("<")
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(f"unterminated <uri>: {text[:80]!r}")
            display = text[:lt].strip()
            if display.startswith('"'):
                if len(display) < 2 or not display.endswith('"'):
                    raise SipParseError(f"bad display name: {text[:80]!r}")
                display = display[1:-1].replace('\\"', '"')
            return cls(SipUri.parse(text[lt + 1:gt]), display, parse_params(text[gt + 1:]))
        uri_text, _, rest = text.partition(";")
        return cls(SipUri.parse(uri_text), "", parse_params(rest))

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        """The tag parameter (dialog identity)."""
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        """A copy with the tag set."""
        return NameAddr(self.uri, self.display, {**self.params, "tag": tag})


@dataclass
class Via:
    """One Via hop: ``SIP/2.0/UDP host:port;branch=...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value (not a comma list)."""
        text = text.strip()
        proto, _, rest = text.partition(" ")
        bits = [b.strip() for b in proto.split("/")]
        if len(bits) != 3 or bits[0].upper() != "SIP" or not bits[2]:
            raise SipParseError(f"bad Via: {text[:80]!r}")
        sent_by, _, params = rest.strip().partition(";")
        host, port = split_hostport(sent_by)
        return cls(bits[2].upper(), host, port, parse_params(params))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str:
        """The branch parameter (empty when absent)."""
        return self.params.get("branch") or ""

    @property
    def sent_by(self) -> tuple[str, int]:
        """host and port as written by the sender."""
        return self.host, self.port or 5060

    def response_address(self, source: tuple[str, int]) -> tuple[str, int]:
        """Where responses go (RFC 3261 18.2.2 with RFC 3581 rport).

        A sent-by that is not the packet's source IP counts as ``received=<source>`` (18.2.1), so
        a response never waits on DNS and never goes to a name the sender made up.
        """
        host = self.params.get("received") or self.host
        if host != source[0]:
            host = source[0]
        rport = self.params.get("rport")
        if rport and rport.isdigit() and 0 < int(rport) < 65536:
            return host, int(rport)
        if "rport" in self.params:
            return source
        return host, self.port or 5060


@dataclass
class CSeq:
    """``CSeq: 314159 INVITE``."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse a CSeq value."""
        bits = text.split()
        if len(bits) != 2 or not bits[0].isdigit() or len(bits[0]) > 10 or int(bits[0]) >= 2**31:
            raise SipParseError(f"bad CSeq: {text[:80]!r}")
        return cls(int(bits[0]), bits[1].upper())

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
