"""AES-GCM sealed values, keys and keyed references (voice_agent.protection.cipher)."""

from __future__ import annotations

import base64
import os

import pytest

from voice_agent.protection.cipher import (
    TEXT_PREFIX,
    Cipher,
    Key,
    SealError,
    generate_key,
    normalize_phone,
    parse_key,
    plain_ref,
    sealed_key_id,
    words,
)


def key() -> Key:
    return Key(os.urandom(32))


def test_sealed_text_round_trips_and_shows_nothing_of_the_text() -> None:
    c = Cipher(key())
    sealed = c.seal("my card ends in pineapple")
    assert sealed.startswith(TEXT_PREFIX + c.key_id + ":")
    assert "pineapple" not in sealed and "card" not in sealed
    assert c.open(sealed) == "my card ends in pineapple"
    assert c.seal("same") != c.seal("same")  # a fresh nonce each time: equal texts do not look equal
    assert c.open("") == "" and c.open("not sealed") == "not sealed"  # clear values pass (stored before a key)


def test_key_id_names_the_key_without_revealing_it() -> None:
    k = key()
    assert k.id == Key(k.secret).id and len(k.id) == 16
    assert k.id not in k.secret.hex() and k.id != key().id
    assert k.secret.hex() not in repr(k)


def test_another_key_or_an_altered_value_is_refused_clearly() -> None:
    a, b = Cipher(key()), Cipher(key())
    sealed = a.seal("hello")
    with pytest.raises(SealError, match=rf"encrypted with key {a.key_id}, which is not configured.*key_file"):
        b.open(sealed, "a transcript")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SealError, match="altered or is damaged"):
        a.open(tampered)
    assert Cipher(b.current, [a.current]).open(sealed) == "hello"  # an old key still opens what it sealed


def test_parse_key_accepts_base64_and_hex_and_explains_anything_else() -> None:
    raw = os.urandom(32)
    assert parse_key(base64.b64encode(raw).decode() + "\n", "k").secret == raw
    assert parse_key(raw.hex(), "k").secret == raw
    assert len(base64.b64decode(generate_key())) == 32
    for bad in ("", "short", base64.b64encode(os.urandom(20)).decode(), "zz" * 32):
        with pytest.raises(SealError, match="keys generate"):
            parse_key(bad, "protection.key")


def test_references_are_keyed_and_phone_numbers_normalised() -> None:
    a, b = Cipher(key()), Cipher(key())
    n = normalize_phone("sip:+44 7700-900123@10.0.0.1;user=phone")
    assert n == "447700900123" == normalize_phone("+44 (7700) 900 123") == normalize_phone("tel:+447700900123")
    assert a.ref("phone", n) == a.ref("phone", n) != b.ref("phone", n)
    assert a.ref("phone", n) != a.ref("customer", n) and plain_ref("phone", n) != a.ref("phone", n)
    assert n not in a.ref("phone", n)


def test_search_terms_are_keyed_words() -> None:
    c = Cipher(key())
    assert words("My Router, my router!") == {"my", "router"}
    terms = c.terms("My Router, my router!")
    assert len(terms) == 2 and c.ref("w", "router") in terms
    assert not any("router" in t for t in terms)
    assert sealed_key_id(c.seal("x")) == c.key_id and sealed_key_id("plain") is None
