"""Wiring who-is-calling into calls: identify, look up (off the event loop), tell the dialog, store the link.

``Callers`` is one per process (the SIP and web front ends share it). Each call gets a ``CallerLink``: the
customer found at the start (by number or signed reference) or by the account + postcode dialogue, what
the console shows, and the details stored with the call (``customer_id``, which erasure looks calls up by).

Log lines carry a hash of the customer id at most: never a name, number, account or postcode.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from dialog.caller import CallerContext
from voice_agent.config import CustomersConfig
from voice_agent.customers.directory import Customer, Directory, DirectoryError, open_directory
from voice_agent.customers.identity import check_reference, hashed, sip_caller_number
from voice_agent.logs import log_event
from voice_agent.privacy import private_words

log = logging.getLogger("voice_agent.customers")


def when_phrase(then: float, now: float | None = None) -> str:
    """"earlier today", "yesterday", "on Monday" (this week), "on 3 November"."""
    a = dt.datetime.fromtimestamp(then).date()
    b = dt.datetime.fromtimestamp(time.time() if now is None else now).date()
    days = (b - a).days
    if days <= 0:
        return "earlier today"
    if days == 1:
        return "yesterday"
    if days < 7:
        return f"on {a.strftime('%A')}"
    return f"on {a.day} {a.strftime('%B')}"


def last_call_phrase(started_at: float, topics: list[str], outcome: str | None, now: float | None = None) -> str:
    """An earlier call as the assistant may mention it: "yesterday about outages and was put through to a colleague"."""
    text = when_phrase(started_at, now)
    if topics:
        about = [t.lower() for t in topics[:2]]
        text += " about " + " and ".join(about)
    if outcome == "transferred":
        text += " and was put through to a colleague"
    return text


def dialog_call_of(brain: Any) -> Any:
    """The per-call dialog (``dialog.Call``) inside the session's brain wrappers, or None (a test's fake brain)."""
    node = brain
    for _ in range(8):
        if node is None:
            return None
        if callable(getattr(node, "set_caller", None)):
            return node
        inner = getattr(node, "call", None)
        if callable(getattr(inner, "set_caller", None)):
            return inner
        node = getattr(node, "inner", None) or getattr(node, "brain", None)
    return None


class CallerLink:
    """One call's link to a customer."""

    def __init__(self, callers: Callers, customer: Customer | None, how: str, context: CallerContext | None) -> None:
        self.callers = callers
        self.customer = customer
        self.how = how  # phone | reference | verified | ""
        self.context = context
        self.dialog: Any = None
        self.call_id = ""

    def _private(self) -> None:
        if self.customer is not None and self.call_id:
            private_words(self.call_id, self.customer.name.split())

    @property
    def customer_id(self) -> str:
        """The linked customer's id ('' when the caller stayed anonymous)."""
        return self.customer.id if self.customer is not None else ""

    @property
    def may_record(self) -> bool:
        """False when the customer refused recording (the call's audio is then not kept)."""
        return self.customer is None or self.customer.consent_recording

    def attach(self, brain: Any, call_id: str = "") -> None:
        """Tell the call's dialog who is calling, and give it the verifier (the policy says whether to ask).

        The customer's name is kept out of the call's log lines from now on (the agent says it).
        """
        self.call_id = call_id
        self._private()
        self.dialog = dialog_call_of(brain)
        if self.dialog is None:
            return
        settings = self.callers.settings
        verifier = self._verify if self.callers.location else None
        self.dialog.set_caller(self.context, verifier, settings.verify)

    async def _verify(self, account: str, postcode: str) -> CallerContext | None:
        customer = await self.callers.run(lambda d: d.verify(account, postcode), "verify")
        log_event(log, "customer_verification", verified=customer is not None,
                  customer=hashed(customer.id) if customer is not None else None)
        if customer is None:
            return None
        self.customer, self.how = customer, "verified"
        self._private()
        self.context = await self.callers.context(customer, "verified")
        return self.context

    def card(self) -> dict[str, Any] | None:
        """What the console shows about the caller: name, plan, tickets, last calls (no number or address)."""
        if self.customer is None:
            return None
        last = self.context.last_calls if self.context is not None else []
        return {**self.customer.card(), "identified_by": self.how, "last_calls": list(last)}

    def meta(self) -> dict[str, Any]:
        """What is stored with the call: the customer id and how it was found; the KB topics of the call."""
        out: dict[str, Any] = {}
        if self.customer is not None:
            out.update(customer_id=self.customer.id, identified_by=self.how)
            if not self.customer.consent_recording:
                out["recording_refused"] = True
        topics = getattr(self.dialog, "topics", None)
        if callable(topics):
            found = list(topics())
            if found:
                out["topics"] = found
        return out


class Callers:
    """The customer directory and the call store's history of each customer, for every call of the process."""

    def __init__(self, settings: CustomersConfig, store: Any = None, *, trunks: list[Any] | None = None,
                 directory: Directory | None = None) -> None:
        self.settings = settings
        self.location = settings.directory
        self.store = store
        self.trunks = list(trunks or [])
        self.directory = directory
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        """Open the directory now (a clear log line, not an exception, when it cannot be read: calls go on)."""
        await self._directory()

    async def _directory(self) -> Directory | None:
        if self.directory is not None or not self.location:
            return self.directory
        async with self._opening:
            if self.directory is None:
                s = self.settings
                try:
                    self.directory = await asyncio.to_thread(
                        open_directory, s.directory, timeout_s=s.timeout_s, api_key=s.api_key,
                        country_code=s.country_code)
                    log_event(log, "customer_directory_open", kind=type(self.directory).__name__)
                except DirectoryError as exc:
                    log_event(log, "customer_directory_unavailable", logging.ERROR, error=str(exc),
                              fallback="calls go on anonymously")
        return self.directory

    async def run(self, ask: Any, what: str) -> Customer | None:
        """One blocking directory question in a worker thread; None (and an error line) when it fails."""
        directory = await self._directory()
        if directory is None:
            return None
        try:
            found: Customer | None = await asyncio.wait_for(asyncio.to_thread(ask, directory),
                                                           self.settings.timeout_s + 1)
            return found
        except (DirectoryError, TimeoutError) as exc:
            log_event(log, "customer_lookup_failed", logging.ERROR, lookup=what,
                      error=str(exc) or "timed out", fallback="the call goes on anonymously")
        except Exception as exc:  # a directory bug must not end the call
            log_event(log, "customer_lookup_failed", logging.ERROR, lookup=what, error=type(exc).__name__,
                      fallback="the call goes on anonymously")
        return None

    async def context(self, customer: Customer, how: str) -> CallerContext:
        """What the dialog is told: first name, plan, tickets and the customer's last calls from the store."""
        last: list[str] = []
        if self.store is not None and self.settings.recent_calls > 0:
            try:
                calls = await asyncio.to_thread(self.store.customer_calls, customer.id, self.settings.recent_calls)
                last = [last_call_phrase(c.started_at, list(c.meta.get("topics") or []), c.outcome) for c in calls]
            except Exception as exc:  # the store's trouble must not stop the call
                log_event(log, "customer_history_failed", logging.WARNING, error=type(exc).__name__)
        return CallerContext(customer.id, first_name=customer.first_name, plan=customer.plan,
                             open_tickets=customer.open_tickets, last_calls=last, how=how)

    async def _link(self, customer: Customer | None, how: str, source: str = "") -> CallerLink:
        if customer is None:
            return CallerLink(self, None, "", None)
        log_event(log, "customer_identified", customer=hashed(customer.id), by=how, header=source or None)
        return CallerLink(self, customer, how, await self.context(customer, how))

    async def for_sip(self, call: Any) -> CallerLink:
        """The caller of a SIP call: P-Asserted-Identity from a trusted trunk, else From."""
        number, source = sip_caller_number(call.remote_party, getattr(call, "asserted_identity", ""),
                                           getattr(call, "peer", ("", 0))[0], self.trunks,
                                           self.settings.country_code)
        customer = await self.run(lambda d: d.lookup_by_phone(number), "phone") if number else None
        return await self._link(customer, "phone" if customer is not None else "", source)

    async def for_reference(self, reference: str | None) -> CallerLink:
        """The caller of a browser call from the widget's signed reference (ignored, and logged, when not signed)."""
        if not reference:
            return await self._link(None, "")
        customer_id = check_reference(self.settings.reference_secret, reference)
        if customer_id is None:
            why = "no customers.reference_secret is configured" if not self.settings.reference_secret else \
                "unsigned or badly signed"
            log_event(log, "customer_reference_rejected", logging.WARNING, reason=why)
            return await self._link(None, "")
        customer = await self.run(lambda d: d.lookup_by_id(customer_id), "reference")
        return await self._link(customer, "reference" if customer is not None else "")

    async def card_for(self, customer_id: str) -> dict[str, Any] | None:
        """A stored call's customer for the console (looked up now), or None."""
        if not customer_id:
            return None
        customer = await self.run(lambda d: d.lookup_by_id(customer_id), "console")
        if customer is None:
            return None
        context = await self.context(customer, "")
        return {**customer.card(), "last_calls": context.last_calls}
