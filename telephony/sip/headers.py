"""Structured SIP header values: name-addr (From/To/Contact/Route), Via, CSeq."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from telephony.sip.errors import SipParseError
from telephony.sip.uri import SipUri, split_hostport

Params = dict[str, str | None]


TOKENS_RE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+(?:[ \t]+[A-Za-z0-9.!%*_+`'~-]+)*$")
VIA_RE = re.compile(r"^([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s;/]+)\s+(.*)$", re.S)


def _closing_quote(text: str) -> int:
    """Index of the quote that closes the quoted string starting at text[0] (-1 when unbalanced)."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


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
        """Parse a name-addr or a bare addr-spec (whose ;params then belong to the header).

        Any URI scheme parses (check ``uri.is_sip`` before routing to it); an unbalanced quote,
        whitespace inside ``<...>``, an unquoted display name that is not tokens, or URI headers
        in a bare addr-spec are errors (RFC 4475 3.1.2.6, 3.1.2.14, 3.1.2.15, 3.1.2.13).
        """
        text = text.strip()
        display = ""
        rest = text
        if text.startswith('"'):
            end = _closing_quote(text)
            if end < 0:
                raise SipParseError(f"bad display name: {text[:80]!r}")
            display = text[1:end].replace('\\"', '"').replace("\\\\", "\\")
            rest = text[end + 1:].lstrip()
            if not rest.startswith("<"):
                raise SipParseError(f"a quoted display name needs <uri>: {text[:80]!r}")
        if "<" in rest:
            lt = rest.index("<")
            gt = rest.find(">", lt)
            if gt < 0:
                raise SipParseError(f"unterminated <uri>: {text[:80]!r}")
            if not display:
                words = rest[:lt].strip()
                if words and not TOKENS_RE.match(words):
                    raise SipParseError(f"bad display name: {text[:80]!r}")
                display = words
            inner = rest[lt + 1:gt]
            if inner != inner.strip() or not inner:
                raise SipParseError(f"whitespace inside <uri>: {text[:80]!r}")
            return cls(SipUri.parse(inner, any_scheme=True), display, parse_params(rest[gt + 1:]))
        uri_text, _, params = rest.partition(";")
        if "?" in uri_text:
            raise SipParseError(f"URI headers need <uri>: {text[:80]!r}")
        return cls(SipUri.parse(uri_text, any_scheme=True), "", parse_params(params))

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
        match = VIA_RE.match(text)  # LWS may surround the slashes (RFC 4475 3.1.1.1)
        if match is None or match.group(1).upper() != "SIP":
            raise SipParseError(f"bad Via: {text[:80]!r}")
        bits = [match.group(1), match.group(2), match.group(3)]
        sent_by, _, params = match.group(4).strip().partition(";")
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
