"""SIP dialogs (RFC 3261 section 12): identity, route set, CSeq and in-dialog requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from telephony.sip.errors import SipParseError
from telephony.sip.headers import NameAddr
from telephony.sip.message import Headers, Request, Response
from telephony.sip.uri import SipUri


def uas_targets(request: Request) -> tuple[SipUri, list[NameAddr]]:
    """The remote target and route set an incoming INVITE sets up; SipParseError when either is not SIP.

    A dialog must be able to send BYE: a Contact (or, without one, a From) or Record-Route that is
    not a sip/sips URI makes the INVITE unusable (RFC 3261 8.1.1.8, 12.1.1).
    """
    contact = request.contact
    target = contact.uri if contact is not None else request.from_.uri
    if not target.is_sip:
        raise SipParseError(f"Contact is not a SIP URI: {str(target)[:60]!r}")
    routes = [NameAddr.parse(v) for v in request.headers.get_all("Record-Route")]
    for r in routes:
        if not r.uri.is_sip:
            raise SipParseError(f"Record-Route is not a SIP URI: {str(r.uri)[:60]!r}")
    return target, routes


@dataclass
class Dialog:
    """One dialog as seen from our side."""

    call_id: str
    local_tag: str
    remote_tag: str
    local: NameAddr  # our From in requests we send
    remote: NameAddr  # our To in requests we send
    remote_target: SipUri  # the peer's Contact
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    role: str = "uas"
    state: str = "confirmed"  # "early" | "confirmed" | "terminated"

    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag)."""
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, local_seq: int = 0) -> Dialog:
        """The dialog an incoming INVITE creates on our (UAS) side (12.1.1)."""
        target, routes = uas_targets(request)
        return cls(request.call_id, local_tag, request.from_.tag or "", request.to.with_tag(local_tag),
                   request.from_, target, routes, local_seq, request.cseq.seq, "uas")

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 2xx (or 1xx with a tag) to our INVITE creates (12.1.2): Record-Route reversed."""
        contact = response.contact
        target = contact.uri if contact is not None and contact.uri.is_sip else request.uri
        routes = [r for r in (NameAddr.parse(v) for v in reversed(response.headers.get_all("Record-Route")))
                  if r.uri.is_sip]
        state = "confirmed" if 200 <= response.status < 300 else "early"
        return cls(request.call_id, request.from_.tag or "", response.to.tag or "", request.from_,
                   response.to, target, routes, request.cseq.seq, None, "uac", state)

    def update_from_2xx(self, response: Response) -> None:
        """An early dialog becomes confirmed; the 2xx's route set and target win (12.2.1.2)."""
        self.route_set = [r for r in (NameAddr.parse(v) for v in reversed(response.headers.get_all("Record-Route")))
                          if r.uri.is_sip]
        contact = response.contact
        if contact is not None and contact.uri.is_sip:
            self.remote_target = contact.uri
        self.state = "confirmed"

    def accept_remote(self, request: Request) -> bool:
        """Check and record the CSeq of an in-dialog request (12.2.2): False when out of order."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        contact = request.contact if request.method in ("INVITE", "UPDATE") else None
        if contact is not None and contact.uri.is_sip:
            self.remote_target = contact.uri  # target refresh
        return True

    def next_hop(self) -> SipUri:
        """Where a request in this dialog goes first: the first route, or the remote target."""
        if self.route_set:
            return self.route_set[0].uri
        return self.remote_target

    def request(self, method: str, via: str, contact: str | None = None, cseq: int | None = None) -> Request:
        """A new in-dialog request (12.2.1.1): route set, tags, CSeq incremented (ACK/CANCEL reuse it)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        h = Headers()
        h.add("Via", via)
        h.add("Max-Forwards", "70")
        uri = self.remote_target
        routes = list(self.route_set)
        if routes and "lr" not in routes[0].uri.params:
            # Strict router: it takes the Request-URI, our target goes last in the Route set.
            uri = routes[0].uri
            routes = [*routes[1:], NameAddr(self.remote_target)]
        for r in routes:
            h.add("Route", str(r))
        h.add("From", str(self.local))
        h.add("To", str(self.remote))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if contact:
            h.add("Contact", contact)
        return Request(h, b"", method, uri)
