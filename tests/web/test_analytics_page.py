"""The console's analytics dashboard in real Chromium against stored calls (no models: fast).

The whole loop with real calls (an unanswerable question, the entry written from the dashboard, the next
call answered from it) is tests/e2e/test_analytics_loop.py.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialog.kb import load_passages
from tests.conftest import need
from voice_agent.config import Config
from voice_agent.records import save_call
from voice_agent.session import CallResult, TurnRecord
from voice_agent.store import CallStore
from voice_agent.web.server import WebFrontend

from .conftest import PASSWORDS
from .test_browser_pages import CHROMIUM, browser

CARD = "4532 0151 1283 0366"


def _call(call_id: str, outcome: str, question: str, reason: str = "") -> CallResult:
    turns = [TurnRecord(index=0, caller_text="when are you open", agent_text="Monday to Friday, 8 AM to 8 PM.",
                        sentiment="neutral", end_of_speech=3.0, voice_to_voice_ms=850.0, action="answer",
                        sources=[{"id": "hours-0", "score": 0.9}]),
             TurnRecord(index=1, caller_text=question, agent_text="I'm sorry, I don't have information about that.",
                        sentiment="negative", sentiment_score=0.7, end_of_speech=9.0, voice_to_voice_ms=1300.0,
                        action="not_found")]
    return CallResult(call_id=call_id, outcome=outcome, duration=30.0, turns=turns,
                      events=[{"t": 0.0, "type": "greeting", "text": "Hello."}, {"t": 5.0, "type": "barge_in"}],
                      transcript=[{"start": 0.0, "end": 2.0, "speaker": "agent", "text": "Hello."},
                                  {"start": 1.5, "end": 3.0, "speaker": "caller", "text": "when are you open"}],
                      sentiment_timeline=[{"turn": 0, "mood": 0.1}, {"turn": 1, "mood": -0.4}], recording=None,
                      transfer={"reason": reason} if reason else None)


@pytest.fixture()
async def site(web_config: Config, store: CallStore) -> AsyncIterator[WebFrontend]:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    need(importlib.util.find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
    now = time.time()
    save_call(store, _call("a1", "resolved", f"do you sell gift cards? my card is {CARD}"), "webrtc", "browser",
              started_at=now - 2 * 86400)
    save_call(store, _call("a2", "transferred", "Do you sell gift cards?", "the caller asked for a human"), "phone",
              "sip:x", started_at=now - 86400)
    save_call(store, _call("a3", "resolved", "can I bring my dog to the shop"), "webrtc", "browser",
              started_at=now - 600)
    web = WebFrontend(web_config, None, store, listen="127.0.0.1:0")
    await web.start()
    yield web
    await web.stop()


async def _sign_in(page: Any, base: str, name: str) -> None:
    await page.goto(base + "/console")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", PASSWORDS[name])
    await page.click("#signin-form button")
    await page.wait_for_selector("#tabs:not([hidden])")


async def test_dashboard_charts_gaps_csv_and_a_new_kb_entry(site: WebFrontend, web_config: Config) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await browser(p)
        page = await b.new_page(viewport={"width": 1280, "height": 1000}, bypass_csp=True)
        await _sign_in(page, site.url, "ann")
        await page.click("button[data-tab=analytics]")
        await page.wait_for_selector("#an-kpis [data-kpi=calls]")
        assert await page.inner_text("#an-kpis [data-kpi=calls] b") == "3"
        assert await page.inner_text("#an-kpis [data-kpi=containment] b") == "67%"
        # every chart drew its marks: stacked day bars, hour bars, a line per day, reasons, latency, QA, topics
        assert await page.locator("#an-days svg rect").count() >= 3
        assert await page.locator("#an-hours svg rect").count() >= 1
        assert await page.locator("#an-sentiment svg circle").count() >= 2
        assert await page.locator("#an-containment svg polyline").count() == 1
        assert "caller asked for a person" in await page.inner_text("#an-reasons")
        assert await page.locator("#an-latency svg rect").count() == 4
        assert "greeted the caller" in await page.inner_text("#an-qa")
        assert "hours-0" in await page.inner_text("#an-topics")
        # the unanswered questions, grouped, redacted, biggest group first
        gap_rows = page.locator("#an-gaps tr")
        assert await gap_rows.count() == 2
        first = await gap_rows.first.inner_text()
        assert "gift cards" in first.lower() and CARD not in first and "[CARD]" in first
        # CSV export through the page's own session
        href = await page.get_attribute("#an-csv-calls", "href")
        assert href is not None and "format=csv" in href
        text = await page.evaluate("async (u) => (await fetch(u)).text()", href)
        assert text.splitlines()[0].startswith("call_id,started_at") and len(text.splitlines()) == 4
        # a date range narrows everything
        today = time.strftime("%Y-%m-%d", time.gmtime())
        await page.fill("#an-filter input[name=since]", today)
        await page.click("#an-filter button")
        await page.wait_for_function("document.querySelector('#an-kpis [data-kpi=calls] b').textContent === '1'")
        await page.fill("#an-filter input[name=since]", "")
        await page.click("#an-filter button")
        await page.wait_for_function("document.querySelector('#an-kpis [data-kpi=calls] b').textContent === '3'")

        # one call's numbers in the past-calls detail
        await page.click("button[data-tab=calls]")
        await page.click("#call-rows tr[data-call=a2]")
        await page.wait_for_selector("#detail:not([hidden])")
        detail = await page.inner_text("#detail-analytics")
        assert "transferred (caller asked for a person)" in detail and "barge-ins 1" in detail, detail
        await page.click("button[data-tab=analytics]")
        await page.wait_for_selector("#an-gaps tr button[data-action=kb-entry]")

        # the loop: a gap becomes a KB entry, prefilled with the callers' question
        await gap_rows.first.locator("button[data-action=kb-entry]").click()
        await page.wait_for_selector("#an-entry:not([hidden])")
        assert (await page.input_value("#an-entry-form input[name=question]")).lower().startswith("do you sell gift")
        assert "[CARD]" in await page.input_value("#an-entry-form textarea[name=also]")
        await page.fill("#an-entry-form textarea[name=answer]", "Gift cards from 10 to 100 dollars are sold in "
                                                                "every Brightline shop.")
        await page.click("#an-entry-form button.primary")
        await page.wait_for_function("window.voiceConsole.analytics.lastEntry !== null")
        made = await page.evaluate("window.voiceConsole.analytics.lastEntry")
        await page.wait_for_function("document.querySelectorAll('#an-gaps tr').length === 1")
        assert "dog" in (await page.inner_text("#an-gaps")).lower()
        await b.close()
    kb = Path(web_config.dialog.kb_dir)
    entry = [x for x in load_passages(kb) if x.id == made["id"]]
    assert entry and (kb / made["name"]).is_file() and "10 to 100 dollars" in entry[0].answer


async def test_a_viewer_sees_the_dashboard_without_the_kb_button(site: WebFrontend) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await browser(p)
        page = await b.new_page(bypass_csp=True)
        await _sign_in(page, site.url, "vic")
        await page.click("button[data-tab=analytics]")
        await page.wait_for_selector("#an-gaps tr")
        assert await page.locator("#an-gaps button").count() == 0
        await b.close()
