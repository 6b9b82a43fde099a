"""RFC 4028 session timers, UAS side: Session-Expires / Min-SE negotiation and when to refresh or give up."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.sip.errors import SipParseError
from telephony.sip.headers import parse_params
from telephony.sip.message import Request

MIN_SE = 90  # RFC 4028 section 4: the smallest Min-SE anyone may ask for


class IntervalTooSmall(SipParseError):
    """The offered Session-Expires is below our Min-SE: the request gets 422 with our Min-SE."""

    def __init__(self, min_se: int) -> None:
        super().__init__(f"Session-Expires below Min-SE {min_se}", status=422)
        self.min_se = min_se


@dataclass
class SessionExpires:
    """``Session-Expires: 1800;refresher=uac``."""

    interval: int
    refresher: str | None = None  # "uac" | "uas" | None (not chosen yet)

    @classmethod
    def parse(cls, value: str) -> SessionExpires:
        """Parse a Session-Expires value; SipParseError when malformed."""
        delta, _, rest = value.strip().partition(";")
        if not delta.strip().isdigit() or len(delta.strip()) > 10:
            raise SipParseError(f"bad Session-Expires: {value[:60]!r}")
        refresher = parse_params(rest).get("refresher")
        if refresher is not None and refresher.lower() not in ("uac", "uas"):
            raise SipParseError(f"bad Session-Expires refresher: {value[:60]!r}")
        return cls(int(delta), refresher.lower() if refresher else None)

    def __str__(self) -> str:
        return f"{self.interval};refresher={self.refresher or 'uas'}"

    @property
    def we_refresh(self) -> bool:
        """Whether we (the UAS) send the refreshes; otherwise we only watch for them."""
        return self.refresher == "uas"

    def refresh_after(self) -> float:
        """When the refresher sends its refresh: half the interval (RFC 4028 section 10)."""
        return self.interval / 2

    def expire_after(self) -> float:
        """When the other side gives up without a refresh: interval minus min(32, interval/3) (section 10)."""
        return self.interval - min(32.0, self.interval / 3)


def negotiate(request: Request, min_se: int = MIN_SE) -> SessionExpires | None:
    """The session timer a 2xx to this (re-)INVITE sets up, or None when the caller asked for none.

    Raises IntervalTooSmall (422) when the caller's interval is below our Min-SE. A caller that
    supports timers but left the refresher open refreshes itself; one that does not support them
    gets us as the refresher (RFC 4028 section 9).
    """
    value = request.headers.get("Session-Expires")
    if value is None:
        return None
    se = SessionExpires.parse(value)
    if se.interval < min_se:
        raise IntervalTooSmall(min_se)
    if se.refresher is None:
        tags = {t.strip().lower() for v in request.headers.get_all("Supported") + request.headers.get_all("Require")
                for t in v.split(",")}
        se.refresher = "uac" if "timer" in tags else "uas"
    return se
