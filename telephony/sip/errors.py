"""SIP errors: every one is a TelephonyError so the CLI prints it as one line."""

from __future__ import annotations

try:
    from telephony.errors import TelephonyError
except ImportError:  # the media package's errors module lands separately
    class TelephonyError(Exception):  # type: ignore[no-redef]
        """Base of telephony errors."""


class SipError(TelephonyError):
    """A SIP protocol or call failure."""


class SipParseError(SipError):
    """A SIP message or header could not be parsed; ``status`` is the answer a request gets (400, 416, 505)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class TransactionTimeout(SipError):
    """No final response before timer B/F fired."""


class CallFailed(SipError):
    """An outbound request got a final error response."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"call failed: {status} {reason}")
        self.status = status
        self.reason = reason
