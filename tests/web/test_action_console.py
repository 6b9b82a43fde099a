"""The console shows the actions a call carried out (from the call's stored events), personal slots masked."""

from __future__ import annotations

import time

from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.server import WebFrontend

from .test_browser_pages import browser, site  # noqa: F401 - the fixture is used by name


async def test_call_detail_lists_its_actions(site: WebFrontend, store: CallStore,  # noqa: F811
                                             web_config: Config) -> None:
    from playwright.async_api import async_playwright

    from .conftest import PASSWORDS
    from .test_api import seed_call

    cid = seed_call(store, web_config, "can you book a technician", "resolved", "neutral", time.time() - 60)
    store.add_events(cid, [{"t": 30.0, "type": "action", "name": "book_technician", "outcome": "ok",
                            "slots": {"date": "2026-12-08", "slot": "morning", "postcode": "[POSTCODE]"},
                            "latency_ms": 41.7},
                           {"t": 50.0, "type": "action", "name": "text_status_link", "outcome": "failed",
                            "error": "timeout", "slots": {"mobile": "[DIGITS]"}, "latency_ms": 5002.0}])
    async with async_playwright() as p:
        b = await browser(p)
        page = await b.new_page(bypass_csp=True)
        await page.goto(site.url + "/console")
        await page.fill("input[name=username]", "ada")
        await page.fill("input[name=password]", PASSWORDS["ada"])
        await page.click("#signin-form button")
        await page.click("button[data-tab=calls]")
        await page.click(f"#call-rows tr[data-call='{cid}']")
        await page.wait_for_selector("#detail:not([hidden])")
        text = await page.locator("#detail-analytics").inner_text()
        await b.close()
    assert "action book_technician: ok, 42 ms [date=2026-12-08, slot=morning, postcode=[POSTCODE]]" in text
    assert "action text_status_link: failed (timeout), 5002 ms [mobile=[DIGITS]]" in text
