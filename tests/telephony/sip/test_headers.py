"""URIs, name-addr, Via and CSeq values."""

from __future__ import annotations

import pytest

from telephony.sip.errors import SipParseError
from telephony.sip.headers import CSeq, NameAddr, Via, split_list
from telephony.sip.uri import SipUri


def test_uri_round_trip_and_parts() -> None:
    u = SipUri.parse("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=x")
    assert (u.scheme, u.user, u.host, u.port) == ("sips", "alice", "2001:db8::1", 5061)
    assert u.params == {"transport": "tcp", "lr": None} and u.transport == "TCP"
    assert str(u) == "sips:alice@[2001:db8::1]:5061;transport=tcp;lr?subject=x"
    assert SipUri.parse(str(u)) == u
    assert SipUri.parse("sip:example.com").address() == ("example.com", 5060)


@pytest.mark.parametrize("bad", ["tel:+123", "sip:", "sip:a@host:99999", "sip:a@host:x", "sip:[::1"])
def test_bad_uris(bad: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse(bad)


def test_name_addr_forms() -> None:
    a = NameAddr.parse('"Bob \\"B\\"" <sip:bob@h;lr>;tag=88')
    assert a.display == 'Bob "B"' and a.tag == "88" and "lr" in a.uri.params
    bare = NameAddr.parse("sip:carol@h;tag=7")  # params of a bare addr-spec belong to the header
    assert bare.tag == "7" and bare.uri.params == {}
    assert NameAddr.parse(str(bare.with_tag("9"))).tag == "9"
    with pytest.raises(SipParseError):
        NameAddr.parse("<sip:x@h")


def test_via_and_response_address() -> None:
    v = Via.parse("SIP/2.0/udp 10.0.0.1:5070;branch=z9hG4bKx;rport")
    assert v.transport == "UDP" and v.branch == "z9hG4bKx"
    assert v.response_address(("192.0.2.1", 40000)) == ("192.0.2.1", 40000)  # rport: the source port
    v2 = Via.parse("SIP/2.0/UDP 10.0.0.1;received=192.0.2.9")
    assert v2.response_address(("192.0.2.9", 1234)) == ("192.0.2.9", 5060)
    assert Via.parse(str(v)).params == v.params
    with pytest.raises(SipParseError):
        Via.parse("SIP/2.0 host")


def test_cseq_and_lists() -> None:
    assert CSeq.parse("42 invite") == CSeq(42, "INVITE")
    with pytest.raises(SipParseError):
        CSeq.parse("99999999999 INVITE")
    assert split_list('<sip:a@h;x=1,2>, "Doe, J" <sip:b@h>,sip:c@h') == [
        "<sip:a@h;x=1,2>", '"Doe, J" <sip:b@h>', "sip:c@h"]
