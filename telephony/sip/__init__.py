"""Native asyncio SIP (RFC 3261): messages, transports, transactions, dialogs, digest, user agent.

The small public API::

    ua = UserAgent(on_call, host="127.0.0.1", port=5060, policy=TrunkPolicy(trunks))
    await ua.start()                       # UDP and TCP on one port
    call = await ua.invite("sip:bob@host")  # outbound; inbound calls reach on_call(call)
    await call.refer("sip:queue@pbx")       # blind transfer (RFC 3515)
    await call.hangup()
    await ua.stop(timeout=30)               # 503 to new calls, drain, BYE the rest
"""

from telephony.sip.digest import Challenge, DigestClient, DigestServer
from telephony.sip.errors import CallFailed, SipError, SipParseError, TransactionTimeout
from telephony.sip.message import Request, Response, parse
from telephony.sip.registration import Registration
from telephony.sip.transaction import Timers
from telephony.sip.transport import TcpLimits
from telephony.sip.ua import Call, TransferResult, Trunk, TrunkPolicy, UserAgent
from telephony.sip.uri import SipUri

__all__ = [
    "Call", "CallFailed", "Challenge", "DigestClient", "DigestServer", "Registration", "Request", "Response",
    "SipError", "SipParseError", "SipUri", "TcpLimits", "Timers", "TransactionTimeout", "TransferResult", "Trunk",
    "TrunkPolicy", "UserAgent", "parse",
]
