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


def test_a_nonce_count_cannot_be_replayed() -> None:
    server = DigestServer("r", {"u": "p"})
    client = DigestClient("u", "p")
    challenge = server.challenge()
    first = client.authorization(challenge, "INVITE", "sip:x@h")
    assert server.verify(first, "INVITE") == (True, False)
    assert server.verify(first, "INVITE") == (False, True)  # the same nc again: a replay, re-challenged
    second = client.authorization(challenge, "INVITE", "sip:x@h")  # nc=00000002 on the same nonce
    assert "nc=00000002" in second and server.verify(second, "INVITE") == (True, False)
    lower = second.replace("nc=00000002", "nc=00000001")
    assert server.verify(lower, "INVITE")[0] is False
    # Without qop there is no counter: a nonce is good for one request.
    bare = Challenge(challenge.realm, server.challenge().nonce, "MD5", [])
    once = client.authorization(bare, "INVITE", "sip:x@h")
    assert server.verify(once, "INVITE") == (True, False) and server.verify(once, "INVITE") == (False, True)


def test_the_client_answers_the_strongest_challenge() -> None:
    from telephony.sip.digest import strongest

    md5 = 'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth"'
    unknown = 'Digest realm="r", nonce="n3", algorithm=SHA-512-256, qop="auth"'
    for order in ([md5, sha], [sha, md5], [md5, unknown, sha], ["Basic realm=r", md5, sha]):
        picked = strongest(order)
        assert picked is not None and picked.algorithm == "SHA-256" and picked.nonce == "n2"
    assert strongest([unknown]) is None and strongest([md5]).algorithm == "MD5"  # type: ignore[union-attr]
