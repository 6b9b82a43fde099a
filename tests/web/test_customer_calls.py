"""A browser call with the widget's signed customer reference: greeted by name, shown and stored with the customer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dialog.caller import CallerDesk
from dialog.options import PII_KINDS
from dialog.pii import Redactor
from telephony.webrtc import allow_loopback_candidates
from tests.voice_agent.fakes import FakeBrain
from voice_agent.config import Config
from voice_agent.customers import sign_reference
from voice_agent.privacy import RedactingFilter
from voice_agent.store import CallStore
from voice_agent.web.api import STATE
from voice_agent.web.server import make_app

from .conftest import fake_engine, sign_in
from .rtc_client import RtcPeer
from .test_webrtc import Gen, speech

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "customers.csv"
SECRET = "widget-secret-for-tests"


class NamedBrain(FakeBrain):
    """The session tests' fake brain with the dialog's caller desk: greets as the real dialog does."""

    def __init__(self) -> None:
        super().__init__()
        self.caller = CallerDesk()

    def set_caller(self, context: Any, verifier: Any = None, policy: str = "account") -> None:
        self.caller = CallerDesk(verifier, policy=policy)
        self.caller.context = context

    def greeting(self) -> str:
        return self.caller.greet("Thank you for calling.")


@pytest.fixture()
async def call_client(web_config: Config, store: CallStore) -> AsyncIterator[TestClient[Any, Any]]:
    web_config.customers.directory = str(SAMPLE)
    web_config.customers.reference_secret = SECRET
    # Anna called yesterday about an outage; the brain is told, the console shows it.
    store.add_call("phone", "sip:+447700900123@pbx", started_at=time.time() - 86400, duration=40,
                   outcome="contained", meta={"customer_id": "C-1001", "topics": ["Outages"]})
    allow_loopback_candidates(True)
    app = make_app(web_config, store, fake_engine(NamedBrain))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c
    allow_loopback_candidates(False)


async def _ended(client: TestClient[Any, Any], call_id: str) -> None:
    live = client.app[STATE].live
    for _ in range(400):
        if call_id not in live.calls:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the call did not end")


async def _call(client: TestClient[Any, Any], extra: dict[str, Any], generated: Gen
                ) -> tuple[RtcPeer, dict[str, Any]]:
    caller = RtcPeer(speech(generated, "utt_bill.wav"))  # one question, so the call has a turn and is stored
    return caller, await caller.connect(client, "/api/webrtc/offer", extra=extra)


async def test_signed_reference_greets_by_name_shows_and_stores_the_customer(
        call_client: TestClient[Any, Any], store: CallStore, caplog: pytest.LogCaptureFixture,
        generated: Gen) -> None:
    caplog.set_level(logging.INFO)
    # what serve installs on every log handler (dialog.redact_logs): PII and the linked customer's name masked
    caplog.handler.addFilter(RedactingFilter(Redactor(PII_KINDS)))
    caller, body = await _call(call_client, {"customer_ref": sign_reference(SECRET, "C-1001")}, generated)
    try:
        greeting = await caller.wait_for("greeting")
        assert greeting["text"] == "Hello Anna, thank you for calling."
        await sign_in(call_client, "ann")
        live = await (await call_client.get("/api/live")).json()
        (shown,) = live["calls"]
        customer = shown["customer"]
        assert customer["name"] == "Anna Lindqvist" and customer["plan"] == "Fiber 500"
        assert customer["open_tickets"] == 1 and customer["identified_by"] == "reference"
        assert customer["last_calls"] == ["yesterday about outages"]
        assert "phones" not in customer and "postcode" not in customer and "account" not in customer
        await caller.wait_for("agent_text", timeout=30)  # a turn, so the call is stored
        caller.send({"type": "hangup"})
        await caller.wait_for("call_end")
    finally:
        await caller.close()
    await _ended(call_client, body["call_id"])
    rec = store.get_call(body["call_id"])
    assert rec.meta["customer_id"] == "C-1001" and rec.meta["identified_by"] == "reference"
    assert store.customer_calls("C-1001", 5)[0].id == rec.id  # the next call is told about this one
    page = await (await call_client.get(f"/api/calls/{rec.id}")).json()
    assert page["customer"]["name"] == "Anna Lindqvist" and page["customer"]["plan"] == "Fiber 500"
    logged = " ".join(r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str) for r in caplog.records)
    assert '"text": "Hello [NAME], thank you for calling."' in logged
    for personal in ("C-1001", "Anna", "Lindqvist"):
        assert personal not in logged, [(r.name, r.getMessage(), getattr(r, "fields", {})) for r in caplog.records
                                         if personal in r.getMessage() + json.dumps(getattr(r, "fields", {}),
                                                                                    default=str)]


async def test_a_badly_signed_reference_is_ignored_and_logged_without_it(
        call_client: TestClient[Any, Any], store: CallStore, caplog: pytest.LogCaptureFixture,
        generated: Gen) -> None:
    forged = sign_reference("not-the-secret", "C-1001")
    caller, body = await _call(call_client, {"customer_ref": forged}, generated)
    try:
        greeting = await caller.wait_for("greeting")
        assert greeting["text"] == "Thank you for calling."
        await caller.wait_for("agent_text", timeout=30)
        caller.send({"type": "hangup"})
        await caller.wait_for("call_end")
    finally:
        await caller.close()
    await _ended(call_client, body["call_id"])
    rec = store.get_call(body["call_id"])
    assert "customer_id" not in rec.meta
    rejected = [r for r in caplog.records if r.getMessage() == "customer_reference_rejected"]
    assert rejected and "badly signed" in json.dumps(getattr(rejected[0], "fields", {}))
    logged = " ".join(r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str) for r in caplog.records)
    assert "C-1001" not in logged and forged[-20:] not in logged


async def test_a_customer_who_refused_recording_is_not_recorded(call_client: TestClient[Any, Any], store: CallStore,
                                                                generated: Gen) -> None:
    # Chiara's record says consent_recording = no
    caller, body = await _call(call_client, {"customer_ref": sign_reference(SECRET, "C-1003")}, generated)
    try:
        assert (await caller.wait_for("greeting"))["text"] == "Hello Chiara, thank you for calling."
        await caller.wait_for("agent_text", timeout=30)
        caller.send({"type": "hangup"})
        await caller.wait_for("call_end")
    finally:
        await caller.close()
    await _ended(call_client, body["call_id"])
    rec = store.get_call(body["call_id"])
    assert rec.meta["customer_id"] == "C-1003" and rec.meta["recording_refused"] is True
    assert not rec.meta.get("recording")
    assert not list(Path(call_client.app[STATE].recordings).glob(f"*{rec.id}*"))
