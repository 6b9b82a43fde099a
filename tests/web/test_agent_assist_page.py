"""Agent assist in real Chromium with the model-free engine: an agent takes over a browser call, the caller's
question brings KB suggestions to the console, one click puts one in the notes, and after the caller hangs up
the drafted wrap-up is edited, saved and shown on the call page.

The caller is a Python WebRTC peer (tests/web/rtc_client.py); the suggestions come from the real KB documents
through ``Engine.suggest`` with a word-overlap ranking standing in for the embedding models.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dialog.kb import Hit, Passage, Retrieval, load_passages
from telephony.webrtc import allow_loopback_candidates
from tests.conftest import need
from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.server import make_app

from .conftest import PASSWORDS, FakeRecognizer, fake_engine
from .rtc_client import RtcPeer
from .test_browser_pages import CHROMIUM, FAKE_MIC, browser
from .test_webrtc import Gen, speech

BILL = "You can pay your bill by card or by direct debit from the account page."


class WordKb:
    """The KB's own passages ranked by shared words (no models): what ``Engine.suggest`` searches here."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    def retrieve(self, query: str, k: int = 3) -> Retrieval:
        words = set(re.findall(r"[a-z]+", query.lower()))
        scored = [Hit(p, len(words & set(re.findall(r"[a-z]+", p.lexical_text().lower()))) / max(len(words), 1))
                  for p in self.passages]
        return Retrieval(sorted(scored, key=lambda h: h.score, reverse=True)[:k], 0.0)


@pytest.fixture()
async def served(web_config: Config, store: CallStore) -> AsyncIterator[tuple[TestClient[Any, Any], Any]]:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    need(importlib.util.find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
    kb = Path(web_config.dialog.kb_dir)
    (kb / "billing.md").write_text(f"# How can I pay my bill\n\n{BILL}\n")
    (kb / "moving.md").write_text("# Moving house\n\nTell us your new address two weeks before you move.\n")
    engine = fake_engine()
    engine.knowledge = WordKb(load_passages(kb))
    allow_loopback_candidates(True)
    async with TestClient(TestServer(make_app(web_config, store, engine), host="127.0.0.1")) as client:
        yield client, engine
    allow_loopback_candidates(False)


async def test_agent_gets_suggestions_notes_and_a_wrapup(served: tuple[TestClient[Any, Any], Any], store: CallStore,
                                                         generated: Gen) -> None:
    from playwright.async_api import async_playwright, expect

    client, engine = served
    recognizer: FakeRecognizer = engine.recognizer
    caller = RtcPeer(speech(generated, "utt_bill.wav"))  # heard as "what are your opening hours"
    body = await caller.connect(client, "/api/webrtc/offer")
    cid = body["call_id"]
    base = str(client.make_url("")).rstrip("/")
    try:
        await caller.wait_for("agent_text", timeout=30)
        async with async_playwright() as p:
            b = await browser(p, *FAKE_MIC)
            page = await b.new_page(viewport={"width": 1280, "height": 1100}, bypass_csp=True)
            await page.goto(base + "/console")
            await page.fill("input[name=username]", "ann")
            await page.fill("input[name=password]", PASSWORDS["ann"])
            await page.click("#signin-form button")
            await page.click("#live-rows button[data-action=takeover]", timeout=10000)
            await page.wait_for_selector("#takeover:not([hidden])", timeout=15000)
            await caller.wait_for("takeover", agent="ann")
            # The question asked before the takeover is looked up at once.
            first = page.locator("#assist-suggestions li[data-suggestion]").first
            await expect(first).to_contain_text("Opening hours", timeout=10000)
            await expect(page.locator("#assist-summary")).to_contain_text("what are your opening hours")
            # The caller asks something else: the suggestions follow.
            recognizer.text = "how can I pay my bill"
            caller.track.play(speech(generated, "utt_bill.wav"))
            await expect(page.locator("#assist-for")).to_contain_text("how can I pay my bill", timeout=20000)
            await expect(first).to_contain_text("How can I pay my bill")
            await expect(first).to_contain_text(BILL)
            await caller.wait_for("caller_turn", text="how can I pay my bill")
            assert "suggestions" not in caller.types()  # the caller's page never gets them
            await expect(page.locator("#assist-summary")).to_contain_text("how can I pay my bill")
            await first.locator("button.insert").click()
            await expect(page.locator("#agent-notes")).to_have_value(re.compile(re.escape(BILL)))
            where = os.environ.get("VOICE_AGENT_SCREENSHOTS")
            if where:
                await page.screenshot(path=str(Path(where) / "console-assist.png"))
            # The caller hangs up: the wrap-up is drafted from the stored call (and the notes), edited and saved.
            caller.send({"type": "hangup"})
            form = page.locator("#wrapup")
            await expect(page.locator("#wrapup-save")).to_be_enabled(timeout=20000)
            summary = form.locator("textarea[name=summary]")
            await expect(summary).to_have_value(re.compile("how can I pay my bill"))
            await expect(summary).to_have_value(re.compile("Notes: .*direct debit"))
            await expect(form.locator("input[name=outcome]")).to_have_value(re.compile(r"\S"))
            await summary.fill("Caller asked how to pay; explained card and direct debit.")
            await form.locator("textarea[name=follow_ups]").fill("Send the payment page link")
            await page.click("#wrapup-save")
            await expect(page.locator("#wrapup-state")).to_have_text("Saved with the call.")
            await page.click("#wrapup-open")
            shown = page.locator("#detail-wrapup")
            await expect(shown).to_be_visible(timeout=10000)
            await expect(shown).to_contain_text("explained card and direct debit")
            await expect(shown).to_contain_text("Send the payment page link")
            await expect(shown).to_contain_text("by ann")
            await b.close()
    finally:
        await caller.close()
    saved = store.wrapup(cid)
    assert saved is not None and saved["follow_ups"] == "Send the payment page link" and saved["by"] == "ann"
    assert ("ann", "save_wrapup", cid) in {(r["user"], r["action"], r["target"]) for r in Users(store).audit_rows()}


async def test_handed_back_call_gets_its_wrapup_when_it_ends(served: tuple[TestClient[Any, Any], Any],
                                                             store: CallStore, generated: Gen) -> None:
    from playwright.async_api import async_playwright, expect

    client, _ = served
    caller = RtcPeer(speech(generated, "utt_bill.wav"))
    cid = (await caller.connect(client, "/api/webrtc/offer"))["call_id"]
    base = str(client.make_url("")).rstrip("/")
    try:
        await caller.wait_for("agent_text", timeout=30)
        async with async_playwright() as p:
            b = await browser(p, *FAKE_MIC)
            page = await b.new_page(bypass_csp=True)
            await page.goto(base + "/console")
            await page.fill("input[name=username]", "ann")
            await page.fill("input[name=password]", PASSWORDS["ann"])
            await page.click("#signin-form button")
            await page.click("#live-rows button[data-action=takeover]", timeout=10000)
            await caller.wait_for("takeover", agent="ann")
            await page.fill("#agent-notes", "caller will call back")
            await page.click("#handback")
            await caller.wait_for("released", agent="ann")
            await expect(page.locator("#wrapup-state")).to_have_text("The wrap-up is drafted when the call ends.")
            caller.send({"type": "hangup"})
            await expect(page.locator("#wrapup-save")).to_be_enabled(timeout=20000)
            await expect(page.locator("#wrapup-id")).to_have_text(cid)
            await expect(page.locator("#wrapup textarea[name=summary]")).to_have_value(
                re.compile("Taken over by ann.*Notes: caller will call back", re.S))
            await b.close()
    finally:
        await caller.close()
