"""Who is calling, from the wire: phone numbers from SIP headers, signed customer references from the widget.

Nothing here logs a number or an id; ``hashed`` is what log lines may carry.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

_REF_SEPARATOR = "."
_MAX_REF = 200


def normalise_number(value: str, country_code: str = "44") -> str:
    """A phone number, SIP/tel URI or user part as E.164-ish ``+<digits>``; '' when it is not a number.

    ``+44 7700 900123``, ``0044 7700-900123``, ``sip:+447700900123@host;user=phone``, ``tel:+44-7700-900123`` and
    (with country code 44) the national ``07700 900123`` all give ``+447700900123``. A user part with letters
    (``sip:alice@host``) or fewer than 5 digits (an extension) is not a number.
    """
    text = (value or "").strip()
    if text.lower().startswith(("sip:", "sips:", "tel:")):
        text = text.split(":", 1)[1]
    text = text.split("@", 1)[0].split(";", 1)[0].strip()
    if not text or re.search(r"[A-Za-z]", text) or not re.fullmatch(r"[+\d\s().\-/]+", text):
        return ""
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        pass
    elif digits.startswith("00"):
        digits = digits[2:]
    elif digits.startswith("0") and country_code:
        digits = country_code + digits[1:]
    if not 5 <= len(digits) <= 15:
        return ""
    return "+" + digits


def _uri_of(header: str) -> str:
    """The URI inside a name-addr (``"Anna" <sip:+44...@host>;tag=1``) or a bare one."""
    match = re.search(r"<([^>]*)>", header or "")
    return (match.group(1) if match else (header or "").split(";", 1)[0]).strip()


def trusted_peer(host: str, trunks: Iterable[Any]) -> bool:
    """Whether an INVITE from ``host`` comes from a trunk whose P-Asserted-Identity we believe (``trust_identity``)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    for trunk in trunks:
        if not getattr(trunk, "trust_identity", False):
            continue
        for net in getattr(trunk, "allow_ips", []):
            try:
                if ip in ipaddress.ip_network(net, strict=False):
                    return True
            except ValueError:
                continue
    return False


def sip_caller_number(remote_party: str, asserted: str, peer_host: str, trunks: Iterable[Any],
                      country_code: str = "44") -> tuple[str, str]:
    """(number, where from): the P-Asserted-Identity from a trusted trunk, else the From header; ('', '') when none.

    RFC 3325: a P-Asserted-Identity is only meaningful inside a trust domain; from anyone else it is ignored
    (anyone can write one), and the From number is used as the caller claims it.
    """
    if asserted and trusted_peer(peer_host, trunks):
        # one header may list a sip: and a tel: identity, comma-separated; the first number wins
        for part in re.split(r",(?![^<]*>)", asserted):
            number = normalise_number(_uri_of(part), country_code)
            if number:
                return number, "p-asserted-identity"
    number = normalise_number(_uri_of(remote_party), country_code)
    return (number, "from") if number else ("", "")


def sign_reference(secret: str, customer_id: str) -> str:
    """The widget's signed customer reference: ``<id>.<hex HMAC-SHA256(secret, id)>`` (made by the site's backend)."""
    mac = hmac.new(secret.encode("utf-8"), customer_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{customer_id}{_REF_SEPARATOR}{mac}"


def check_reference(secret: str, reference: str) -> str | None:
    """The customer id of a correctly signed reference; None when unsigned, badly signed or no secret is set."""
    if not secret or not reference or len(reference) > _MAX_REF:
        return None
    customer_id, sep, mac = reference.rpartition(_REF_SEPARATOR)
    if not sep or not customer_id or not re.fullmatch(r"[0-9a-f]{64}", mac):
        return None
    expected = hmac.new(secret.encode("utf-8"), customer_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return customer_id if hmac.compare_digest(expected, mac) else None


def hashed(customer_id: str) -> str:
    """What a log line may say about a customer: a short one-way hash of the id."""
    return hashlib.sha256(f"customer:{customer_id}".encode()).hexdigest()[:12]
