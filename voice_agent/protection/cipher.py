"""AES-GCM for data at rest: keys, sealed text values and keyed lookups.

A key is 32 random bytes (16 or 24 work too), kept base64 in a file (``voice-agent keys generate``)
or an environment variable. Nothing is encrypted with it directly: HKDF derives one key for field
values and one for the keyed index (search terms, caller references), so the index never reveals
what the ciphertext holds. Every sealed value names the id of the key that sealed it (a keyed hash
of the key, never the key), so a store half-way through a rotation reads with either key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TEXT_PREFIX = "va1:"  # a sealed text value: va1:<key id>:<base64url(nonce + ciphertext + tag)>
_KEY_ID_LEN = 16  # hex characters
_WORD = re.compile(r"\w+", re.UNICODE)


class SealError(ValueError):
    """A value or file cannot be decrypted: no key, another key, or it was altered. The message says which."""


def _derive(secret: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


@dataclass(frozen=True)
class Key:
    """One data key; ``id`` names it in ciphertexts and messages without revealing it."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) not in (16, 24, 32):
            raise ValueError("an AES key is 16, 24 or 32 bytes")

    @cached_property
    def id(self) -> str:
        """A keyed hash of the key: the same key always has the same id."""
        return hmac.new(self.secret, b"voice-agent key id", hashlib.sha256).hexdigest()[:_KEY_ID_LEN]

    @cached_property
    def field_key(self) -> AESGCM:
        """AES-GCM for stored text and JSON values."""
        return AESGCM(_derive(self.secret, b"voice-agent fields v1"))

    @cached_property
    def index_key(self) -> bytes:
        """HMAC key for search terms and caller references."""
        return _derive(self.secret, b"voice-agent index v1")

    def file_key(self, salt: bytes) -> AESGCM:
        """AES-GCM for one file (each file has its own random salt, so its own key)."""
        return AESGCM(_derive(self.secret, b"voice-agent file v1", salt))


def parse_key(text: str | bytes, where: str) -> Key:
    """A key written as base64 (``voice-agent keys generate``) or hex; ``where`` names it in errors."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    raw = raw.strip()
    secret: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64}", raw):
        secret = bytes.fromhex(raw)
    else:
        try:
            secret = base64.b64decode(raw, validate=True) if raw else None
        except (binascii.Error, ValueError):
            secret = None
    if secret is None or len(secret) not in (16, 24, 32):
        raise SealError(f"{where} is not a key: expected 32 random bytes written as base64 (44 characters) or hex; "
                        "make one with `voice-agent keys generate --output FILE`")
    return Key(secret)


def generate_key() -> str:
    """A new random 256-bit key, base64."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def normalize_phone(value: str) -> str:
    """The digits of a phone number or SIP URI's user part ("sip:+44 7700-900123@host" -> "447700900123")."""
    text = value.strip()
    if text.lower().startswith(("sip:", "sips:", "tel:")):
        text = text.split(":", 1)[1]
    text = text.split("@", 1)[0].split(";", 1)[0]
    return "".join(ch for ch in text if ch.isdigit())


class Cipher:
    """Seals values with the current key and opens values sealed with any key it holds.

    ``current`` is None for a key-less reader (it can only compute nothing); the store passes
    ``None`` instead of a Cipher when protection is off.
    """

    def __init__(self, current: Key, others: Iterable[Key] = ()) -> None:
        self.current = current
        self.keys = {current.id: current}
        for k in others:
            self.keys.setdefault(k.id, k)

    @property
    def key_id(self) -> str:
        """The id of the key new data is sealed with."""
        return self.current.id

    def _key(self, key_id: str, what: str) -> Key:
        key = self.keys.get(key_id)
        if key is None:
            known = ", ".join(sorted(self.keys))
            raise SealError(f"{what} is encrypted with key {key_id}, which is not configured (configured: {known}); "
                            "set protection.key_file to that key, or list it in protection.old_key_files")
        return key

    # ---- text values ----------------------------------------------------------------------
    def seal(self, text: str) -> str:
        """``text`` encrypted and authenticated, as ``va1:<key id>:<base64url>``."""
        nonce = os.urandom(12)
        head = f"{TEXT_PREFIX}{self.current.id}:"
        sealed = self.current.field_key.encrypt(nonce, text.encode("utf-8"), head.encode("ascii"))
        return head + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, value: str, what: str = "a stored value") -> str:
        """The text of a sealed value (a value that is not sealed is returned as it is)."""
        key_id = sealed_key_id(value)
        if key_id is None:
            return value
        key = self._key(key_id, what)
        head = value[: len(TEXT_PREFIX) + _KEY_ID_LEN + 1]
        try:
            blob = base64.urlsafe_b64decode(value[len(head):])
            return key.field_key.decrypt(blob[:12], blob[12:], head.encode("ascii")).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):
            raise SealError(f"{what} does not decrypt with key {key_id}: it was altered or is damaged") from None

    # ---- keyed index ----------------------------------------------------------------------
    def ref(self, kind: str, value: str) -> str:
        """A keyed reference to an identifier (a caller's number, a customer id): equal values, equal refs."""
        return hmac.new(self.current.index_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def terms(self, text: str) -> set[str]:
        """Keyed hashes of the distinct words of ``text`` (lower case): a search index that reveals no word."""
        return {self.ref("w", w) for w in words(text)}


def plain_ref(kind: str, value: str) -> str:
    """The reference of an identifier in a store without a key (an unkeyed hash)."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32]


def words(text: str) -> set[str]:
    """The distinct lower-case words of a text, as the search index splits it."""
    return {w.lower() for w in _WORD.findall(text or "")}


def sealed_key_id(value: object) -> str | None:
    """The key id a sealed text value names, or None when it is not sealed."""
    if isinstance(value, str) and value.startswith(TEXT_PREFIX) and len(value) > len(TEXT_PREFIX) + _KEY_ID_LEN:
        return value[len(TEXT_PREFIX): len(TEXT_PREFIX) + _KEY_ID_LEN]
    return None


__all__ = ["TEXT_PREFIX", "Cipher", "Key", "SealError", "generate_key", "normalize_phone", "parse_key", "plain_ref",
           "sealed_key_id", "words"]
