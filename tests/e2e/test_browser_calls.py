"""Browser calls in real Chromium against the real engine (Whisper, MiniLM, SmolLM2, hibari).

Pages run with bypass_csp so that Playwright can evaluate its waiting predicates (the
console's CSP forbids eval, as it should).

Chromium's fake microphone plays a generated caller recording; the page talks to
the server over WebRTC. Set VOICE_AGENT_SCREENSHOTS=docs to refresh the README's
screenshots.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from voice_agent.auth import Users
from voice_agent.config import Config, load_config
from voice_agent.engine import Engine
from voice_agent.store import CallStore
from voice_agent.web.api import STATE
from voice_agent.web.server import WebFrontend

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
         "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ADMIN_PW, AGENT_PW = "admin-password-e2e", "agent-password-e2e"
Gen = tuple[Path, dict[str, Any]]

# Inbound audio energy and level as the page's WebRTC stack measured them.
STATS_JS = """async (pc) => {
  let energy = 0, level = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      energy += r.totalAudioEnergy || 0;
      level = Math.max(level, r.audioLevel || 0);
    }
  });
  return {energy, level};
}"""


@pytest.fixture(scope="session")
def browser_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, Path]:
    """The real engine, loaded once, with its data dir in a temporary folder."""
    need(importlib.util.find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    from dialog import example_kb_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = tmp_path_factory.mktemp("browser-home")
    # A copy of the example KB, so that editing it from the console leaves the repository alone.
    shutil.copytree(example_kb_dir(), home / "kb")
    config = load_config(env={"VOICE_AGENT_HOME": str(home)}, overrides={"dialog": {"kb_dir": str(home / "kb")}})
    return Engine.from_config(config), home


def mic_file(src: Path, tmp: Path, loop: bool) -> str:
    """The recording as 48 kHz 16-bit PCM WAV, which Chromium's fake capture reads; %noloop plays it once.

    A looped file gets 2 s of silence after it, so that each repetition is a turn of its own.
    """
    need(shutil.which("sox") is not None, "sox is needed to convert the fake microphone file")
    out = tmp / f"{src.stem}-48k.wav"
    pad = ["pad", "0", "2"] if loop else []
    subprocess.run(["sox", str(src), "-r", "48000", "-b", "16", "-c", "1", str(out), *pad], check=True)
    return f"{out}" if loop else f"{out}%noloop"


@pytest.fixture()
async def server(browser_engine: tuple[Engine, Path], tmp_path: Path) -> AsyncIterator[tuple[WebFrontend, Config]]:
    """The web front end on a free loopback port, with an admin and an agent."""
    engine, home = browser_engine
    config = load_config(env={"VOICE_AGENT_HOME": str(home)}, overrides={"dialog": {"kb_dir": str(home / "kb")}})
    config.store.url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = CallStore(config.store_url)
    Users(store).add("ada", "admin", ADMIN_PW)
    Users(store).add("ann", "agent", AGENT_PW)
    web = WebFrontend(config, engine, store, listen="127.0.0.1:0")
    await web.start()
    await engine.warm_up()
    try:
        yield web, config
    finally:
        await web.stop()
        store.close()


async def launch(playwright: Any, fake_mic: str) -> Any:
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                            args=[*FLAGS, f"--use-file-for-fake-audio-capture={fake_mic}"])


def shot_dir() -> Path | None:
    where = os.environ.get("VOICE_AGENT_SCREENSHOTS")
    return Path(where) if where else None


async def sign_in(page: Any, base: str, name: str, password: str) -> None:
    await page.goto(base + "/console")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", password)
    await page.click("#signin-form button")
    await page.wait_for_selector("#tabs:not([hidden])")


async def test_browser_call_captions_audio_and_console(server: tuple[WebFrontend, Config], generated: Gen,
                                                       tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    web, _ = server
    mic = mic_file(generated[0] / "caller_multiturn.wav", tmp_path, loop=False)
    async with async_playwright() as p:
        browser = await launch(p, mic)
        page = await browser.new_page(viewport={"width": 900, "height": 900}, bypass_csp=True)
        await page.goto(web.url + "/")
        await page.click("#call")
        await page.wait_for_function("document.getElementById('status').textContent === 'Connected'", timeout=20000)
        # The caller's first question (5-8 s into the file) comes back as a caption, then the answer.
        caller_line = page.locator("#captions .line.caller").first
        await caller_line.wait_for(timeout=40000)
        assert "saturday" in (await caller_line.inner_text()).lower()
        await page.wait_for_function(
            "[...document.querySelectorAll('#captions .line.agent')].length >= 2", timeout=40000)
        greeting = await page.locator("#captions .line.agent").first.inner_text()
        assert "Brightline" in greeting
        # The second question (21-25 s into the file) and its answer, so the stored call has both sides.
        await page.wait_for_function(
            "[...document.querySelectorAll('#captions .line.caller')].length >= 2", timeout=40000)
        await page.wait_for_function(
            "[...document.querySelectorAll('#captions .line.agent')].length >= 3", timeout=40000)
        await asyncio.sleep(6.0)
        stats = await page.evaluate(f"({STATS_JS})(window.voiceCall.pc)")
        assert stats["energy"] > 0, stats  # the assistant's voice reached the browser
        call_id = await page.evaluate("window.voiceCall.callId")
        if shot_dir():
            await page.screenshot(path=str(shot_dir() / "caller-page.png"))  # type: ignore[operator]
        await page.click("#hangup")
        await page.wait_for_function("document.getElementById('status').textContent === 'Call ended'")
        for _ in range(100):
            if web.app is not None and call_id not in web.app[STATE].live.calls:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.1)

        # The support team finds the call in the console with its transcript.
        console = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        await sign_in(console, web.url, "ada", ADMIN_PW)
        await console.click("button[data-tab=calls]")
        row = console.locator(f"#call-rows tr[data-call='{call_id}']")
        await row.wait_for(timeout=10000)
        await row.click()
        await console.wait_for_selector("#detail:not([hidden])")
        transcript = (await console.locator("#detail-transcript").inner_text()).lower()
        assert "saturday" in transcript
        assert await console.locator("#detail-chart svg circle").count() >= 1
        assert await console.locator("#detail-turns tr").count() >= 1
        assert (await console.get_attribute("#detail-audio", "src")) == f"/api/calls/{call_id}/recording"
        if shot_dir():
            await console.screenshot(path=str(shot_dir() / "console-call.png"), full_page=True)  # type: ignore[operator]
        await browser.close()
    rows = Users(web.store).audit_rows(target=call_id)
    assert ("ada", "read_transcript") in {(r["user"], r["action"]) for r in rows}


async def test_agent_takes_over_from_the_console(server: tuple[WebFrontend, Config], generated: Gen,
                                                 tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    web, _ = server
    caller_mic = mic_file(generated[0] / "caller_multiturn.wav", tmp_path, loop=False)
    agent_mic = mic_file(generated[0] / "utt_bill.wav", tmp_path, loop=True)
    async with async_playwright() as p:
        caller_browser = await launch(p, caller_mic)
        agent_browser = await launch(p, agent_mic)
        caller = await caller_browser.new_page(bypass_csp=True)
        await caller.goto(web.url + "/")
        await caller.click("#call")
        # Wait for the assistant's first answer, then the supervisor takes the call.
        await caller.wait_for_function(
            "[...document.querySelectorAll('#captions .line.agent')].length >= 2", timeout=60000)
        console = await agent_browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        await sign_in(console, web.url, "ann", AGENT_PW)
        takeover = console.locator("#live-rows button[data-action=takeover]")
        await takeover.wait_for(timeout=10000)
        await console.click("#live-rows tr td.caption")  # watch the live transcript first
        await console.locator("#watch-captions .line.caller").first.wait_for(timeout=10000)
        if shot_dir():
            await console.screenshot(path=str(shot_dir() / "console-live.png"))  # type: ignore[operator]
        await takeover.click()
        await console.wait_for_selector("#takeover:not([hidden])", timeout=15000)
        await caller.wait_for_function("document.getElementById('status').textContent === 'Talking to ann'",
                                       timeout=15000)
        before = await caller.evaluate(f"({STATS_JS})(window.voiceCall.pc)")
        # The caller's second question (21-25 s into the file) reaches the agent as audio and as a caption,
        # and the assistant does not answer it.
        caller_caption = console.locator("#takeover-captions .line.caller").first
        await caller_caption.wait_for(timeout=40000)
        caption = (await caller_caption.inner_text()).lower()
        assert "move" in caption or "address" in caption or "cost" in caption, caption
        # Agent assist with the real retrieval: the question brings the KB's moving entries to the console.
        suggested = console.locator("#assist-suggestions li[data-suggestion]").first
        await suggested.wait_for(timeout=20000)
        entry = (await suggested.inner_text()).lower()
        assert "mov" in entry or "address" in entry or "fee" in entry, entry
        # The call so far is the dialog's own summary (mood and turns), with the caller's latest words.
        summary = await console.inner_text("#assist-summary")
        assert "They sound" in summary and "Latest:" in summary, summary
        agent_heard = await console.evaluate(f"({STATS_JS})(window.voiceConsole.takeover.pc)")
        assert agent_heard["energy"] > 0, agent_heard
        after = await caller.evaluate(f"({STATS_JS})(window.voiceCall.pc)")
        assert after["energy"] > before["energy"], (before, after)  # the agent's voice reached the caller
        agent_lines = await caller.locator("#captions .line.agent").count()
        await asyncio.sleep(3.0)
        assert await caller.locator("#captions .line.agent").count() == agent_lines  # the assistant stays quiet
        # The person's words (the agent's microphone says "I have a question about my bill") reach the
        # caller's captions, transcribed by the server.
        human_line = caller.locator("#captions .line.human", has_text="bill")
        await human_line.first.wait_for(timeout=30000)
        if shot_dir():
            await console.screenshot(path=str(shot_dir() / "console-takeover.png"))  # type: ignore[operator]
        await console.click("#handback")
        await caller.click("#hangup")
        await caller_browser.close()
        await agent_browser.close()
    audit = {(r["user"], r["action"]) for r in Users(web.store).audit_rows()}
    assert ("ann", "takeover") in audit


async def test_console_edits_the_knowledge_base_and_transcribes_uploads(
        server: tuple[WebFrontend, Config], browser_engine: tuple[Engine, Path], generated: Gen,
        tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    web, _ = server
    engine, home = browser_engine
    doc = home / "kb" / "parking.md"
    async with async_playwright() as p:
        browser = await launch(p, mic_file(generated[0] / "utt_bill.wav", tmp_path, loop=True))
        page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        await sign_in(page, web.url, "ann", AGENT_PW)
        await page.click("button[data-tab=kb]")
        await page.fill("#kb-new input[name=name]", "parking.md")
        await page.click("#kb-new button")
        await page.fill("#kb-text", "# Parking at the shop\n\nCustomers park for free behind the Brightline shop "
                                    "on Station Road for up to two hours.\n")
        await page.click("#kb-save")
        await page.wait_for_function(
            "document.getElementById('kb-index').textContent.includes('entries')", timeout=120000)
        assert doc.is_file()
        await page.wait_for_selector("#kb-docs a:text('parking.md')")
        brain = engine.brain_factory().call.brain
        hits = brain.kb.search("where can I park my car", k=1)
        assert hits[0].passage.source.endswith("parking.md") and "Station Road" in hits[0].passage.answer
        if shot_dir():
            await page.screenshot(path=str(shot_dir() / "console-kb.png"))  # type: ignore[operator]

        await page.click("button[data-tab=jobs]")
        await page.set_input_files("#upload input[name=file]", str(generated[0] / "stereo_call.wav"))
        await page.click("#upload button")
        await page.wait_for_selector("#job-rows tr a:text('SRT')", timeout=120000)
        href = await page.get_attribute("#job-rows tr a:text('VTT')", "href")
        assert href is not None
        vtt = await page.evaluate("async (u) => (await fetch(u)).text()", href)
        assert vtt.startswith("WEBVTT") and "internet" in vtt.lower()
        if shot_dir():
            await page.screenshot(path=str(shot_dir() / "console-jobs.png"))  # type: ignore[operator]
        await browser.close()
