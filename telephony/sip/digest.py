"""HTTP digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760): MD5 and SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass, field

from telephony.sip.errors import SipParseError

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
STRENGTH = {"MD5": 1, "SHA-256": 2}  # a client answers the strongest challenge it can (RFC 8760 section 2.4)
MAX_TRACKED_NONCES = 10000
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def _h(algorithm: str, data: str) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    if base not in ALGORITHMS:
        raise SipParseError(f"unsupported digest algorithm {algorithm!r}")
    return ALGORITHMS[base](data.encode("utf-8")).hexdigest()


def parse_fields(value: str) -> tuple[str, dict[str, str]]:
    """``Digest a="b", c=d`` -> ("Digest", {"a": "b", "c": "d"}) (names lower-cased)."""
    scheme, _, rest = value.strip().partition(" ")
    fields: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise SipParseError(f"bad digest parameters: {value[:80]!r}")
        v = m.group(2)
        if v.startswith('"'):
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        fields[m.group(1).lower()] = v
        pos = m.end()
    return scheme, fields


@dataclass
class Challenge:
    """A WWW-Authenticate / Proxy-Authenticate digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: list[str] = field(default_factory=lambda: ["auth"])
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse a challenge header value."""
        scheme, f = parse_fields(value)
        if scheme.lower() != "digest":
            raise SipParseError(f"not a digest challenge: {value[:80]!r}")
        if "realm" not in f or "nonce" not in f:
            raise SipParseError("digest challenge without realm or nonce")
        qop = [q.strip() for q in f["qop"].split(",")] if "qop" in f else []
        return cls(f["realm"], f["nonce"], f.get("algorithm", "MD5").upper(), qop, f.get("opaque"),
                   f.get("stale", "").lower() == "true")

    def __str__(self) -> str:
        out = f'Digest realm="{self.realm}", nonce="{self.nonce}", algorithm={self.algorithm}'
        if self.qop:
            out += f', qop="{",".join(self.qop)}"'
        if self.opaque is not None:
            out += f', opaque="{self.opaque}"'
        if self.stale:
            out += ", stale=TRUE"
        return out


def strongest(values: list[str]) -> Challenge | None:
    """The challenge to answer among several (one per algorithm): the strongest algorithm we support.

    Challenges we cannot parse or whose algorithm we lack are skipped, so a server offering
    SHA-256 and MD5 always gets SHA-256, whatever the header order.
    """
    best: Challenge | None = None
    for value in values:
        try:
            challenge = Challenge.parse(value)
        except SipParseError:
            continue
        rank = STRENGTH.get(challenge.algorithm.removesuffix("-SESS"), 0)
        if rank and (best is None or rank > STRENGTH[best.algorithm.removesuffix("-SESS")]):
            best = challenge
    return best


def response_digest(algorithm: str, username: str, realm: str, password: str, method: str, uri: str,
                    nonce: str, nc: str = "", cnonce: str = "", qop: str = "", body: bytes = b"") -> str:
    """The ``response`` value of RFC 7616 section 3.4.1."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        body_hash = ALGORITHMS[algorithm.upper().removesuffix("-SESS")](body).hexdigest()
        ha2 = _h(algorithm, f"{method}:{uri}:{body_hash}")
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


class DigestClient:
    """Answers challenges for one set of credentials, counting nonce uses."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._nc: dict[str, int] = {}

    def authorization(self, challenge: Challenge, method: str, uri: str, body: bytes = b"",
                      cnonce: str | None = None) -> str:
        """The Authorization / Proxy-Authorization value for a request."""
        qop = "auth" if "auth" in challenge.qop else ("auth-int" if "auth-int" in challenge.qop else "")
        out = (f'Digest username="{self.username}", realm="{challenge.realm}", nonce="{challenge.nonce}", '
               f'uri="{uri}"')
        nc = cn = ""
        if qop:
            self._nc[challenge.nonce] = self._nc.get(challenge.nonce, 0) + 1
            nc = f"{self._nc[challenge.nonce]:08x}"
            cn = cnonce or os.urandom(8).hex()
        digest = response_digest(challenge.algorithm, self.username, challenge.realm, self.password, method,
                                 uri, challenge.nonce, nc, cn, qop, body)
        out += f', response="{digest}", algorithm={challenge.algorithm}'
        if qop:
            out += f', qop={qop}, nc={nc}, cnonce="{cn}"'
        if challenge.opaque is not None:
            out += f', opaque="{challenge.opaque}"'
        return out


class DigestServer:
    """Issues challenges and verifies answers; nonces are HMAC-signed timestamps.

    Each nonce's highest nonce-count is remembered for its lifetime, so a captured Authorization
    cannot be replayed: a repeated or lower nc (or a second use of a nonce without qop) is
    answered like a stale nonce, with a fresh challenge.
    """

    def __init__(self, realm: str, credentials: dict[str, str], algorithm: str = "MD5",
                 nonce_ttl_s: float = 300.0, secret: bytes | None = None) -> None:
        if algorithm.upper() not in ALGORITHMS:
            raise SipParseError(f"unsupported digest algorithm {algorithm!r}")
        self.realm = realm
        self.credentials = credentials
        self.algorithm = algorithm.upper()
        self.ttl = nonce_ttl_s
        self._secret = secret or os.urandom(16)
        self._counts: dict[str, tuple[int, float]] = {}  # nonce -> (highest nc used, when it was issued)

    def _nonce(self, at: float | None = None, salt: str | None = None) -> str:
        """``stamp.salt.signature``: unique per challenge, so each nonce's count belongs to one client."""
        stamp = f"{int(at if at is not None else time.time()):x}.{salt or os.urandom(6).hex()}"
        sig = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{stamp}.{sig}"

    def challenge(self, stale: bool = False) -> Challenge:
        """A fresh challenge."""
        return Challenge(self.realm, self._nonce(), self.algorithm, ["auth"], None, stale)

    def verify(self, authorization: str, method: str, body: bytes = b"") -> tuple[bool, bool]:
        """Check an Authorization value: (ok, stale). Stale means a right password on an old nonce."""
        try:
            scheme, f = parse_fields(authorization)
        except SipParseError:
            return False, False
        if scheme.lower() != "digest" or f.get("realm") != self.realm:
            return False, False
        user, nonce, uri = f.get("username", ""), f.get("nonce", ""), f.get("uri", "")
        password = self.credentials.get(user)
        if password is None or "." not in nonce:
            return False, False
        stamp, _, rest = nonce.partition(".")
        salt, _, sig = rest.partition(".")
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False, False
        good_sig = bool(salt) and hmac.compare_digest(self._nonce(issued, salt).rsplit(".", 1)[1], sig)
        algorithm = f.get("algorithm", "MD5").upper()
        if not good_sig or algorithm.removesuffix("-SESS") not in ALGORITHMS:
            return False, False
        expected = response_digest(algorithm, user, self.realm, password, method, uri, nonce,
                                   f.get("nc", ""), f.get("cnonce", ""), f.get("qop", ""), body)
        if not hmac.compare_digest(expected, f.get("response", "")):
            return False, False
        if time.time() - issued > self.ttl:
            return False, True
        if not self._count(nonce, f.get("nc", "") if f.get("qop") else "", issued):
            return False, True  # a replay: the sender must answer a fresh challenge
        return True, False

    def _count(self, nonce: str, nc: str, issued: float) -> bool:
        """Record one use of a nonce; False when it replays an earlier one (RFC 7616 section 3.3)."""
        now = time.time()
        if len(self._counts) >= MAX_TRACKED_NONCES:
            self._counts = {n: v for n, v in self._counts.items() if now - v[1] <= self.ttl}
            while len(self._counts) >= MAX_TRACKED_NONCES:
                del self._counts[next(iter(self._counts))]  # the oldest issued first
        try:
            count = int(nc, 16) if nc else 1  # without qop a nonce is good for one request
        except ValueError:
            return False
        last = self._counts.get(nonce, (0, issued))[0]
        if count <= last:
            return False
        self._counts[nonce] = (count, issued)
        return True
