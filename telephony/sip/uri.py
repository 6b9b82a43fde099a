"""SIP URIs (RFC 3261 section 19.1): ``sip:user@host:port;params?headers``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from telephony.sip.errors import SipParseError

SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")  # RFC 3986 scheme


@dataclass
class SipUri:
    """A sip: or sips: URI."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""  # kept verbatim: we never act on URI headers
    opaque: str = ""  # everything after the colon of a non-SIP URI (tel:, http:, ...), which we never route to

    @classmethod
    def parse(cls, text: str, any_scheme: bool = False) -> SipUri:
        """Parse a URI; raises SipParseError when it is not a sip/sips URI.

        With ``any_scheme`` a syntactically valid URI of another scheme (From/To/Contact may carry
        them, RFC 4475 3.3.4) parses too: only its scheme and opaque rest are kept.
        """
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        if not sep or scheme.lower() not in ("sip", "sips"):
            if any_scheme and sep and SCHEME_RE.match(scheme) and rest and not any(c in rest for c in " \t<>\""):
                return cls(host="", scheme=scheme.lower(), opaque=rest)
            raise SipParseError(f"not a SIP URI: {text[:80]!r}")
        user: str | None = None
        # The user part may hold ';' and '?' (RFC 4475 3.1.1.2 and 3.1.1.9); '@' never appears unescaped
        # after it, so the last '@' ends the userinfo.
        if "@" in rest:
            user, _, rest = rest.rpartition("@")
            user = user.split(":", 1)[0]  # a password in the URI is deprecated: dropped
        rest, _, headers = rest.partition("?")
        hostport, *raw_params = rest.split(";")
        host, port = split_hostport(hostport)
        params: dict[str, str | None] = {}
        for p in raw_params:
            if not p:
                continue
            k, eq, v = p.partition("=")
            params[k.lower()] = v if eq else None
        return cls(host=host, user=user or None, port=port, scheme=scheme.lower(), params=params, headers=headers)

    @property
    def is_sip(self) -> bool:
        """Whether this is a sip: or sips: URI (something we can send requests to)."""
        return self.scheme in ("sip", "sips") and not self.opaque

    def __str__(self) -> str:
        if self.opaque:
            return f"{self.scheme}:{self.opaque}"
        out = f"{self.scheme}:"
        if self.user:
            out += f"{self.user}@"
        out += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            out += f":{self.port}"
        for k, v in self.params.items():
            out += f";{k}" if v is None else f";{k}={v}"
        if self.headers:
            out += f"?{self.headers}"
        return out

    @property
    def transport(self) -> str:
        """The transport= parameter, upper case (UDP when absent)."""
        value = self.params.get("transport")
        return value.upper() if value else "UDP"

    def address(self, default_port: int = 5060) -> tuple[str, int]:
        """The (host, port) to send to when no DNS is involved."""
        return self.host, self.port or default_port

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipUri):
            return NotImplemented
        return (self.scheme, self.user, self.host.lower(), self.port, self.opaque) == (
            other.scheme, other.user, other.host.lower(), other.port, other.opaque)

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.host.lower(), self.port, self.opaque))


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets); raises SipParseError on a bad port or empty host."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference: {text[:80]!r}")
        host, rest = text[1:end], text[end + 1:]
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise SipParseError(f"bad host: {text[:80]!r}")
    else:
        host, _, port_text = text.partition(":")
    if not host or any(c in host for c in " \t<>\"@"):
        raise SipParseError(f"bad host: {text[:80]!r}")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port: {text[:80]!r}")
        port = int(port_text)
    return host, port
