"""The KB-gap loop end to end: real browser calls on the real engine (Whisper, MiniLM, SmolLM2, hibari).

A caller asks a question the example KB cannot answer; the call's analytics and /api/analytics list it;
a support agent opens the console's dashboard in Chromium (charts drawn), clicks the question's
'Add to KB' button, writes the answer, and the KB re-indexes; the next caller who asks the same
question is answered from the new entry. VOICE_AGENT_SCREENSHOTS=docs refreshes docs/console-analytics.png.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.conftest import need
from tests.e2e.test_browser_calls import CHROMIUM, launch, mic_file, shot_dir, sign_in
from voice_agent.auth import Users
from voice_agent.config import Config, load_config
from voice_agent.engine import Engine
from voice_agent.records import save_call
from voice_agent.session import CallResult, TurnRecord
from voice_agent.store import CallStore
from voice_agent.web.server import WebFrontend

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PW, AGENT_PW = "admin-password-e2e", "agent-password-e2e"
QUESTION = "Do you have an office in Paris?"
ANSWER = "Our only office is in Manchester; we have no office in Paris."


@pytest.fixture(scope="module")
def loop_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, Path]:
    """The real engine with a copy of the example KB (the test adds an entry to it) in a temporary home."""
    need(importlib.util.find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    from dialog import example_kb_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = tmp_path_factory.mktemp("analytics-home")
    shutil.copytree(example_kb_dir(), home / "kb")
    for part in ("dialog", "tts"):  # converted models are shared with the other e2e runs; the KB index is not
        shared = ROOT / "var" / "test-home" / "cache" / part
        shared.mkdir(parents=True, exist_ok=True)
        (home / "cache").mkdir(exist_ok=True)
        (home / "cache" / part).symlink_to(shared, target_is_directory=True)
    config = load_config(env={"VOICE_AGENT_HOME": str(home)}, overrides={"dialog": {"kb_dir": str(home / "kb")}})
    return Engine.from_config(config), home


@pytest.fixture()
async def served(loop_engine: tuple[Engine, Path], tmp_path: Path) -> AsyncIterator[tuple[WebFrontend, str]]:
    """The web front end of `serve` on a free loopback port; returns it and an admin's API token."""
    engine, home = loop_engine
    config: Config = load_config(env={"VOICE_AGENT_HOME": str(home)},
                                 overrides={"dialog": {"kb_dir": str(home / "kb")}})
    config.store.url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = CallStore(config.store_url)
    Users(store).add("ada", "admin", ADMIN_PW)
    Users(store).add("ann", "agent", AGENT_PW)
    _history(store)
    web = WebFrontend(config, engine, store, listen="127.0.0.1:0")
    await web.start()
    await engine.warm_up()
    try:
        yield web, Users(store).issue_token("ada", "e2e")
    finally:
        await web.stop()
        store.close()


def _history(store: CallStore) -> None:
    """A week of earlier calls (deterministic), so that the charts have days and hours to show."""
    rng = random.Random(13)
    now = time.time()
    reasons = ["the caller asked for a human", "the caller has been upset for 3 turns",
               "the knowledge base could not answer 2 questions in a row"]
    topics = ["hours-shops", "bill-date", "outage-check", "bill-payment-methods", "moving-notice"]
    for n in range(36):
        started = now - rng.uniform(1, 7) * 86400
        outcome = rng.choice(["resolved"] * 6 + ["transferred"] * 2 + ["abandoned"])
        mood = rng.uniform(-0.6, 0.6)
        sorry = "I'm sorry about that. " if rng.random() < 0.7 else ""
        turns = [TurnRecord(index=i, caller_text="a question", agent_text=f"{sorry}An answer.",
                            sentiment="negative" if mood < -0.3 else "neutral", end_of_speech=4.0 + 9 * i,
                            voice_to_voice_ms=rng.uniform(900, 2200), action="answer",
                            sources=[{"id": rng.choice(topics), "score": 0.8}])
                 for i in range(rng.randint(1, 4))]
        result = CallResult(call_id=f"h{n:03d}", outcome=outcome, duration=rng.uniform(30, 240), turns=turns,
                            events=[{"t": 0.0, "type": "greeting", "text": "Hello."}],
                            transcript=[{"start": 0.2, "end": 3.5, "speaker": "agent", "text": "Hello."}],
                            sentiment_timeline=[{"turn": t.index, "mood": mood} for t in turns], recording=None,
                            transfer={"reason": rng.choice(reasons)} if outcome == "transferred" else None)
        save_call(store, result, "webrtc", "browser", started_at=started)


def _question_wav(tmp: Path, name: str, voice: str) -> Path:
    """The caller: 6 s of silence while the greeting plays, the question, then 14 s to hear the answer."""
    from audio_fixtures.make_fixtures import SR, speak, write_wav

    speech = speak(QUESTION, voice=voice)
    audio = np.concatenate([np.zeros(6 * SR, np.float32), speech, np.zeros(14 * SR, np.float32)])
    path = tmp / name
    write_wav(path, audio)
    return path


ANSWERED_JS = """(words) => [...document.querySelectorAll('#captions .line.agent')]
  .some((l) => words.some((w) => l.textContent.toLowerCase().includes(w)))"""


async def _call(p: Any, web: WebFrontend, mic: str, expect: list[str]) -> str:
    """One browser call: waits for an agent line with one of `expect`, hangs up, waits until the call is stored."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    browser = await launch(p, mic)
    page = await browser.new_page(bypass_csp=True)
    await page.goto(web.url + "/")
    await page.click("#call")
    await page.wait_for_function("document.getElementById('status').textContent === 'Connected'", timeout=20000)
    await page.locator("#captions .line.caller").first.wait_for(timeout=60000)
    try:
        await page.wait_for_function(ANSWERED_JS, arg=expect, timeout=60000)
    except PlaywrightTimeout:
        heard = await page.locator("#captions .line").all_inner_texts()
        pytest.fail(f"no agent line with {expect} in the call: {heard}")
    call_id = str(await page.evaluate("window.voiceCall.callId"))
    assert web.live is not None
    # The caption comes as the text is generated; the turn (with the brain's decision) is complete once the
    # voice has synthesized all of it. Hanging up earlier would cancel the reply.
    live = web.live.calls.get(call_id)
    for _ in range(1200):
        session = live.session if live is not None else None
        if session is None or any(t.agent_text for t in session.turns):
            break
        await asyncio.sleep(0.05)
    await page.click("#hangup")
    await page.wait_for_function("document.getElementById('status').textContent === 'Call ended'")
    await browser.close()
    for _ in range(300):  # saved (with its analytics) before it leaves the live list
        if call_id not in web.live.calls:
            break
        await asyncio.sleep(0.05)
    return call_id


async def _analytics(web: WebFrontend, token: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.get(web.url + "/api/analytics") as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())


async def test_an_unanswered_question_becomes_a_kb_entry_and_the_next_call_is_answered(
        served: tuple[WebFrontend, str], tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    web, token = served
    store = web.store
    before = await _analytics(web, token)
    assert before["calls"] == 36 and before["kb_gaps"] == []
    first_mic = mic_file(_question_wav(tmp_path, "paris-1.wav", "en-us"), tmp_path, loop=False)
    second_mic = mic_file(_question_wav(tmp_path, "paris-2.wav", "en-us"), tmp_path, loop=False)
    async with async_playwright() as p:
        # 1. A caller asks what the KB cannot answer.
        # (not found, or a guess the caller never confirms: both leave the question unanswered)
        call_id = await _call(p, web, first_mic, ["don't have information", "just to check"])
        row = store.call_analytics(call_id)
        assert row is not None and row["turns"] >= 1 and row["data"]["qa"]["greeted"] is True
        assert row["caller_talk_s"] > 1.0 and row["agent_talk_s"] > 3.0
        data = await _analytics(web, token)
        assert data["calls"] == 37
        assert data["kb_gaps"], store.turns(call_id)
        gap = data["kb_gaps"][0]
        assert gap["count"] == 1 and "paris" in gap["question"].lower(), gap

        # 2. The support agent sees it on the dashboard and writes the answer.
        browser = await launch(p, first_mic)
        console = await browser.new_page(viewport={"width": 1400, "height": 1300}, bypass_csp=True)
        await sign_in(console, web.url, "ann", AGENT_PW)
        await console.click("button[data-tab=analytics]")
        await console.wait_for_selector("#an-gaps tr button[data-action=kb-entry]")
        for chart in ("an-days", "an-hours", "an-reasons", "an-latency", "an-qa", "an-topics"):
            assert await console.locator(f"#{chart} svg rect").count() >= 1, chart
        assert await console.locator("#an-sentiment svg circle").count() >= 2
        assert await console.inner_text("#an-kpis [data-kpi=calls] b") == "37"
        assert "paris" in (await console.inner_text("#an-gaps")).lower()
        await console.click("#an-gaps tr button[data-action=kb-entry]")
        await console.wait_for_selector("#an-entry:not([hidden])")
        assert "paris" in (await console.input_value("#an-entry-form input[name=question]")).lower()
        assert "paris" in (await console.input_value("#an-entry-form textarea[name=also]")).lower()
        await console.fill("#an-entry-form input[name=question]", QUESTION)
        await console.fill("#an-entry-form textarea[name=answer]", ANSWER)
        if shot_dir():
            await console.screenshot(path=str(shot_dir() / "console-analytics.png"), full_page=True)  # type: ignore[operator]
        await console.click("#an-entry-form button.primary")
        await console.wait_for_function("window.voiceConsole.analytics.lastEntry !== null")
        await console.wait_for_function("window.voiceConsole.analytics.kbIndex === 'ready'", timeout=120000)
        entry = await console.evaluate("window.voiceConsole.analytics.lastEntry")
        assert entry["covered"] == 1
        await console.wait_for_selector("#an-gaps-empty:not([hidden])")
        await browser.close()
        home = Path(web.config.dialog.kb_dir)
        assert (home / entry["name"]).is_file()

        # 3. The next caller asks the same question and is answered from the new entry.
        call_id = await _call(p, web, second_mic, ["manchester"])
    answered = [t for t in store.turns(call_id) if t.get("action") == "answer"]
    assert answered and answered[0]["sources"][0]["id"] == entry["id"], store.turns(call_id)
    after = await _analytics(web, token)
    assert after["calls"] == 38 and after["kb_gaps"] == []
    assert {"id": entry["id"], "count": 1} in after["topics"]
