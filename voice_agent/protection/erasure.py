"""Erasure on request: every call of one caller (phone number) or customer, with every copy, and a receipt.

Calls, segments, turns, events, analytics and KB-gap rows, transcription jobs with their results and
uploaded audio, and recordings go. The receipt says what went, how much, when and on whose request;
it is kept in the audit log without the number or id it was asked for (only its last characters).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from voice_agent.protection.cipher import normalize_phone
from voice_agent.store import CallStore


class ErasureError(ValueError):
    """The request does not name one caller or customer; the message says how to."""


def _masked(kind: str, value: str) -> str:
    tail = normalize_phone(value)[-2:] if kind == "phone" else value.strip()[-2:]
    return f"…{tail}" if tail else "…"


def erase_subject(store: CallStore, *, phone: str | None = None, customer: str | None = None,
                  by: str, via: str = "") -> dict[str, Any]:
    """Erase one caller's or customer's calls with every copy; the receipt (blocking: run it in a thread)."""
    if bool(phone) == bool(customer):
        raise ErasureError("name one subject: a phone number (--phone / \"phone\") or a customer id "
                           "(--customer / \"customer_id\")")
    kind, value = ("phone", str(phone)) if phone else ("customer", str(customer))
    if kind == "phone" and len(normalize_phone(value)) < 3:
        raise ErasureError("the phone number has fewer than 3 digits; give it as dialled, e.g. +44 7700 900123")
    if len(value) > 200:
        raise ErasureError("the phone number or customer id is too long")
    ended, active = store.calls_of(kind, value)
    deleted = store.erase_calls(ended)
    store.compact()
    now = time.time()
    receipt: dict[str, Any] = {
        "receipt": uuid.uuid4().hex,
        "subject": {"kind": kind, "masked": _masked(kind, value)},
        "requested_by": by,
        "via": via,
        "at": now,
        "at_utc": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
        "deleted": deleted,
        "call_ids": ended,
        "active_calls_not_erased": active,
        "kept": "the audit log: call ids, who acted and when; nothing said or dialled",
    }
    store.add_audit(by, "erasure", receipt["receipt"], {k: v for k, v in receipt.items() if k != "receipt"})
    return receipt


__all__ = ["ErasureError", "erase_subject"]
