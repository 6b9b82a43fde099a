"""Dialogs: identity, route sets from Record-Route, CSeq and in-dialog requests."""

from __future__ import annotations

from telephony.sip.dialog import Dialog
from telephony.sip.message import Request, Response, make_response, parse

INVITE = (
    b"INVITE sip:agent@10.0.0.5 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP proxy2;branch=z9hG4bK2\r\n"
    b"Via: SIP/2.0/UDP caller;branch=z9hG4bK1\r\n"
    b"Record-Route: <sip:proxy2.example;lr>\r\n"
    b"Record-Route: <sip:proxy1.example;lr>\r\n"
    b"From: <sip:alice@example>;tag=aaa\r\n"
    b"To: <sip:agent@example>\r\n"
    b"Call-ID: cid\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.7:5062>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_uas_dialog_keeps_record_route_order_and_uses_contact() -> None:
    req = parse(INVITE)
    assert isinstance(req, Request)
    d = Dialog.from_uas(req, "bbb")
    assert d.id == ("cid", "bbb", "aaa") and d.remote_seq == 7
    assert [r.uri.host for r in d.route_set] == ["proxy2.example", "proxy1.example"]
    bye = d.request("BYE", "SIP/2.0/UDP me;branch=z9hG4bKx")
    assert str(bye.uri) == "sip:alice@192.0.2.7:5062"
    assert bye.headers.get_all("Route") == ["<sip:proxy2.example;lr>", "<sip:proxy1.example;lr>"]
    assert bye.from_.tag == "bbb" and bye.to.tag == "aaa" and bye.cseq.seq == 1
    assert d.request("INFO", "SIP/2.0/UDP me;branch=z9hG4bKy").cseq.seq == 2
    assert d.next_hop().host == "proxy2.example"


def test_uac_dialog_reverses_record_route() -> None:
    req = parse(INVITE)
    assert isinstance(req, Request)
    ok = make_response(req, 200, to_tag="bbb")
    ok.headers.add("Contact", "<sip:agent@10.0.0.5:5070>")
    resp = parse(ok.serialize())
    assert isinstance(resp, Response)
    d = Dialog.from_uac(req, resp)
    assert [r.uri.host for r in d.route_set] == ["proxy1.example", "proxy2.example"]
    assert d.remote_target.port == 5070 and d.local_tag == "aaa" and d.remote_tag == "bbb"
    ack = d.request("ACK", "SIP/2.0/UDP me;branch=z9hG4bKz", cseq=7)
    assert ack.cseq.seq == 7 and ack.cseq.method == "ACK"


def test_strict_router_gets_the_request_uri() -> None:
    req = parse(INVITE.replace(b"<sip:proxy2.example;lr>", b"<sip:strict.example>"))
    assert isinstance(req, Request)
    d = Dialog.from_uas(req, "bbb")
    bye = d.request("BYE", "SIP/2.0/UDP me;branch=z9hG4bKx")
    assert bye.uri.host == "strict.example"
    assert bye.headers.get_all("Route")[-1] == "<sip:alice@192.0.2.7:5062>"


def test_remote_cseq_must_grow_and_target_refreshes() -> None:
    req = parse(INVITE)
    assert isinstance(req, Request)
    d = Dialog.from_uas(req, "bbb")
    old = parse(INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 7 INVITE"))
    assert isinstance(old, Request)
    assert not d.accept_remote(old)
    re_invite = parse(INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 8 INVITE").replace(b"5062", b"5064"))
    assert isinstance(re_invite, Request)
    assert d.accept_remote(re_invite) and d.remote_target.port == 5064
