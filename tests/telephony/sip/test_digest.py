"""Digest authentication: RFC 7616 test vectors, client and server."""

from __future__ import annotations

import pytest

from telephony.sip.digest import Challenge, DigestClient, DigestServer, response_digest

# RFC 7616 section 3.9.1 (GET /dir/index.html, Mufasa / Circle of Life).
V = {"username": "Mufasa", "password": "Circle of Life", "realm": "http-auth@example.org", "method": "GET",
     "uri": "/dir/index.html", "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "nc": "00000001",
     "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "qop": "auth"}


@pytest.mark.parametrize("algorithm, expected", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    got = response_digest(algorithm, V["username"], V["realm"], V["password"], V["method"], V["uri"], V["nonce"],
                          V["nc"], V["cnonce"], V["qop"])
    assert got == expected


def test_rfc2617_vector_without_qop_style() -> None:
    # RFC 2617 section 3.5 uses qop=auth; the same numbers check the client's header assembly.
    c = Challenge("testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "MD5", ["auth"],
                  "5ccc069c403ebaf9f0171e9517f40e41")
    header = DigestClient("Mufasa", "Circle Of Life").authorization(c, "GET", "/dir/index.html",
                                                                     cnonce="0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_challenge_round_trip() -> None:
    c = Challenge.parse('Digest realm="r", nonce="n,1", qop="auth,auth-int", algorithm=SHA-256, stale=TRUE')
    assert c.qop == ["auth", "auth-int"] and c.algorithm == "SHA-256" and c.stale and c.nonce == "n,1"
    assert Challenge.parse(str(c)) == c


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_server_verifies_client_and_rejects_wrong_password(algorithm: str) -> None:
    server = DigestServer("voice-agent", {"trunk": "pw"}, algorithm)
    challenge = server.challenge()
    good = DigestClient("trunk", "pw").authorization(challenge, "INVITE", "sip:agent@127.0.0.1")
    assert server.verify(good, "INVITE") == (True, False)
    bad = DigestClient("trunk", "nope").authorization(challenge, "INVITE", "sip:agent@127.0.0.1")
    assert server.verify(bad, "INVITE") == (False, False)
    assert server.verify(good, "BYE") == (False, False)  # the method is part of the digest
    forged = good.replace(challenge.nonce, challenge.nonce[:-2] + "00")
    assert server.verify(forged, "INVITE")[0] is False


def test_stale_nonce_is_flagged() -> None:
    server = DigestServer("r", {"u": "p"}, nonce_ttl_s=-1)
    auth = DigestClient("u", "p").authorization(server.challenge(), "INVITE", "sip:x@h")
    assert server.verify(auth, "INVITE") == (False, True)
