"""The caller page, widget and keypad in real Chromium against a model-free engine (fast)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telephony.webrtc import allow_loopback_candidates
from tests.conftest import need
from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.server import WebFrontend

from .conftest import fake_engine

CHROMIUM = Path("/usr/bin/chromium")
BASE_FLAGS = ["--allow-loopback-in-peer-connection", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FAKE_MIC = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture()
async def site(web_config: Config, store: CallStore) -> AsyncIterator[WebFrontend]:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    need(importlib.util.find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
    web = WebFrontend(web_config, fake_engine(), store, listen="127.0.0.1:0")
    await web.start()
    yield web
    await web.stop()
    allow_loopback_candidates(False)


async def browser(p: Any, *flags: str) -> Any:
    return await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*BASE_FLAGS, *flags])


async def test_blocked_microphone_is_explained(site: WebFrontend) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await browser(p, "--use-fake-device-for-media-stream")  # no fake UI: the permission is refused
        page = await b.new_page()
        await page.goto(site.url + "/")
        await page.click("#call")
        message = page.locator("#message")
        await message.wait_for(state="visible", timeout=10000)
        assert "microphone is blocked" in (await message.inner_text())
        assert await page.is_enabled("#call")
        await b.close()


async def test_refused_call_is_explained(site: WebFrontend) -> None:
    from playwright.async_api import async_playwright

    site.config.http.max_calls = 0
    if site.app is not None:
        from voice_agent.web.api import STATE

        site.app[STATE].live.max_calls = 0  # type: ignore[attr-defined]
    async with async_playwright() as p:
        b = await browser(p, *FAKE_MIC)
        page = await b.new_page()
        await page.goto(site.url + "/")
        await page.click("#call")
        message = page.locator("#message")
        await message.wait_for(state="visible", timeout=15000)
        assert "lines are busy" in await message.inner_text()
        await b.close()


async def test_keypad_digits_reach_the_call(site: WebFrontend, store: CallStore) -> None:
    from playwright.async_api import async_playwright

    token = Users(store).issue_token("vic")
    async with async_playwright() as p:
        b = await browser(p, *FAKE_MIC)
        page = await b.new_page()
        await page.goto(site.url + "/")
        await page.click("#call")
        await page.locator("#captions .line.agent").first.wait_for(timeout=15000)  # the greeting
        await page.click("details.keypad-box summary")
        for digit in "42#":
            await page.click(f"#keypad button:text-is('{digit}')")
        call_id = await page.evaluate("window.voiceCall.callId")
        import aiohttp

        digits: list[str] = []
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(50):
                async with http.get(f"{site.url}/api/live/{call_id}") as r:
                    events = (await r.json())["events"]
                digits = [e["digit"] for e in events if e["type"] == "dtmf"]
                if len(digits) == 3:
                    break
                await asyncio.sleep(0.1)
        assert digits == ["4", "2", "#"]
        await page.click("#hangup")
        await page.wait_for_selector("#call:enabled")
        await b.close()


async def test_widget_puts_a_call_button_on_another_site(site: WebFrontend) -> None:
    from aiohttp import web
    from playwright.async_api import async_playwright

    # Another site (a different origin: another port) with the one-line embed.
    shop = web.Application()
    html = f'<html><body><h1>Shop</h1><script src="{site.url}/widget.js"></script></body></html>'

    async def home(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    shop.router.add_get("/", home)
    runner = web.AppRunner(shop)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    async with async_playwright() as p:
        b = await browser(p, *FAKE_MIC)
        page = await b.new_page()
        await page.goto(f"http://127.0.0.1:{port}/")
        button = page.get_by_role("button", name="Call us")
        await button.wait_for(timeout=10000)
        await button.click()
        frame = page.frame_locator("iframe[title='Call support']")
        await frame.locator("#call").wait_for(timeout=10000)
        assert await frame.locator("h1").inner_text() == "Talk to support"
        await b.close()
    await runner.cleanup()


async def test_console_search_detail_audit_and_delete(site: WebFrontend, store: CallStore, web_config: Config) -> None:
    import time

    from playwright.async_api import async_playwright

    from .conftest import PASSWORDS
    from .test_api import seed_call

    doomed = seed_call(store, web_config, "my router keeps dropping the internet", "transferred", "negative",
                     time.time() - 60)
    other = seed_call(store, web_config, "what are your opening hours", "resolved", "neutral", time.time() - 30)
    async with async_playwright() as p:
        b = await browser(p)
        page = await b.new_page(bypass_csp=True)
        await page.goto(site.url + "/console")
        await page.fill("input[name=username]", "ada")
        await page.fill("input[name=password]", PASSWORDS["ada"])
        await page.click("#signin-form button")
        await page.click("button[data-tab=calls]")
        await page.fill("#search input[name=q]", "router")
        await page.select_option("#search select[name=sentiment]", "negative")
        await page.click("#search button")
        await page.wait_for_function("document.getElementById('calls-total').textContent === '1 call(s)'")
        assert await page.locator(f"#call-rows tr[data-call='{other}']").count() == 0
        await page.click(f"#call-rows tr[data-call='{doomed}']")
        await page.wait_for_selector("#detail:not([hidden])")
        assert "router" in await page.locator("#detail-transcript").inner_text()
        assert await page.locator("#detail-chart svg circle.dot.negative").count() == 1
        assert "850 ms" in await page.locator("#detail-turns").inner_text()
        src = await page.get_attribute("#detail-audio", "src")
        assert src == f"/api/calls/{doomed}/recording"
        # The player's request carries the session cookie: the recording plays for a signed-in admin.
        head = await page.evaluate(
            "async (u) => { const r = await fetch(u); const b = new Uint8Array(await r.arrayBuffer());"
            " return [r.status, String.fromCharCode(...b.slice(0, 4))]; }", src)
        assert head == [200, "RIFF"]
        await page.click("#audit-tab")
        await page.wait_for_selector(f"#audit-rows tr:has-text('{doomed}')")
        assert "read_transcript" in await page.locator("#audit-rows").inner_text()
        await page.click("button[data-tab=calls]")
        await page.click(f"#call-rows tr[data-call='{doomed}']")
        page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await page.click("#detail-delete")
        await page.wait_for_selector("#detail", state="hidden")
        await b.close()
    assert [c.id for c in store.list_calls()] == [other]
