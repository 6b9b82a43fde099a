"""A phone call taken over from the console: a SIP caller (our UA, real RTP on loopback) and an agent's
WebRTC peer meet through the server, with the model-free engine so the call runs in real time."""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from asr.audio import load_audio, resample
from telephony.media import RtpSession
from telephony.sip.transaction import Timers
from telephony.sip.ua import Call, UserAgent
from telephony.webrtc import allow_loopback_candidates
from tests.voice_agent.fakes import tone
from voice_agent.config import Config
from voice_agent.phone import PhoneFrontend, engine_factory
from voice_agent.store import CallStore
from voice_agent.web.api import STATE
from voice_agent.web.server import make_app

from .conftest import fake_engine, sign_in
from .rtc_client import RATE, RtcPeer

Gen = tuple[Path, dict[str, Any]]
PHONE = 8000


def speech(generated: Gen, name: str, rate: int) -> np.ndarray:
    audio = load_audio(generated[0] / name).mean(axis=0)
    return np.concatenate([resample(audio, 16000, rate).astype(np.float32), np.zeros(rate, np.float32)])


class Phone:
    """The SIP caller's media: plays what it is given at the line's pace, keeps what it hears."""

    def __init__(self, call: Call) -> None:
        self.media: Any = call.media
        self.call = call
        self.queue = np.zeros(0, np.float32)
        self.heard: list[np.ndarray] = []
        self.tasks = [asyncio.ensure_future(self._send()), asyncio.ensure_future(self._read())]

    def play(self, audio: np.ndarray) -> None:
        self.queue = np.concatenate([self.queue, audio.astype(np.float32)])

    async def _send(self) -> None:
        t0 = time.monotonic()
        n = 0
        while self.call.state != "ended":
            frame, self.queue = self.queue[:160], self.queue[160:]
            await self.media.send(np.pad(frame, (0, 160 - len(frame))))
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * 0.02 - time.monotonic()))

    async def _read(self) -> None:
        async for frame in self.media.frames():
            self.heard.append(frame)

    def last(self, seconds: float) -> np.ndarray:
        return np.concatenate(self.heard)[-int(seconds * PHONE):] if self.heard else np.zeros(1, np.float32)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def peak_ratio(audio: np.ndarray, rate: int, freq: float) -> float:
    """How far the spectrum at ``freq`` stands above the median of the speech band."""
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    return float(spectrum[(freqs > freq - 10) & (freqs < freq + 10)].max()
                 / np.median(spectrum[(freqs > 100) & (freqs < 3500)]))


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture()
async def served(web_config: Config, store: CallStore) -> AsyncIterator[tuple[TestClient[Any, Any], PhoneFrontend]]:
    """The web app and a SIP front end sharing one engine and one live-call registry, as ``serve`` runs them."""
    allow_loopback_candidates(True)
    engine = fake_engine()
    app = make_app(web_config, store, engine)
    web_config.sip.listen = "127.0.0.1:0"
    web_config.sip.t1_ms = 50
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        state: Any = client.app[STATE]
        phone = PhoneFrontend(web_config, engine_factory(engine), media=_rtp, store=store, live=state.live)
        await phone.start()
        try:
            yield client, phone
        finally:
            await phone.stop(1)
    allow_loopback_candidates(False)


async def _rtp(host: str) -> RtpSession:
    return await RtpSession.open(host=host)


async def _idle(call: Call) -> None:
    await call.ended.wait()


async def test_console_agent_takes_over_a_phone_call(served: tuple[TestClient[Any, Any], PhoneFrontend],
                                                     store: CallStore, generated: Gen) -> None:
    client, phone = served
    caller_ua = UserAgent(_idle, port=0, media=_rtp, timers=Timers(t1=0.05))
    await caller_ua.start()
    agent = RtcPeer(np.zeros(RATE, np.float32))
    line: Phone | None = None
    try:
        call = await caller_ua.invite(f"sip:agent@127.0.0.1:{phone.address[1]}", timeout=5)
        line = Phone(call)
        csrf = await sign_in(client, "ann")

        async def listed() -> list[dict[str, Any]]:
            calls: list[dict[str, Any]] = (await (await client.get("/api/live")).json())["calls"]
            return calls

        # The phone call is in the console's list beside browser calls.
        for _ in range(100):
            calls = await listed()
            if calls:
                break
            await asyncio.sleep(0.05)
        assert [(c["kind"], c["id"][:4]) for c in calls] == [("phone", "sip-")], calls
        cid = calls[0]["id"]

        async def events() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await (await client.get(f"/api/live/{cid}")).json())["events"]
            return found

        # The assistant answers the caller's question, and the console sees both sides.
        line.play(speech(generated, "utt_bill.wav", PHONE))
        for _ in range(300):
            if "agent_text" in [e["type"] for e in await events()]:
                break
            await asyncio.sleep(0.05)
        assert {"greeting", "caller_turn", "agent_text"} <= {e["type"] for e in await events()}

        await agent.connect(client, f"/api/live/{cid}/takeover", headers={"X-CSRF-Token": csrf})
        await agent.wait_for("takeover", agent="ann")
        # Agent assist reaches the agent on a phone call too: the call so far, from the caller's words.
        assist = await agent.wait_for("suggestions")
        assert "what are your opening hours" in assist["summary"], assist
        assert (await (await client.get(f"/api/live/{cid}")).json())["status"] == "human"
        answered = [e["type"] for e in await events()].count("agent_text")
        heard_turns = [e["type"] for e in await events()].count("caller_turn")
        # Both speak at once: the agent a 440 Hz tone, the caller a new question.
        mark, agent_mark = len(line.heard), len(agent.heard)
        agent.track.play(tone(RATE, 2.0, 440.0))
        line.play(speech(generated, "utt_move.wav", PHONE))

        def caller_heard_the_tone() -> bool:
            since = line.heard[mark:]
            return len(since) > 50 and peak_ratio(np.concatenate(since), PHONE, 440.0) > 5

        def agent_heard_the_caller() -> bool:
            since = agent.heard[agent_mark:]
            return bool(since) and float(np.sqrt(np.mean(np.concatenate(since) ** 2))) > 0.01

        await until(caller_heard_the_tone, 10, "the person's voice at the phone caller, over RTP")
        await until(agent_heard_the_caller, 10, "the phone caller's voice at the agent's browser")
        # The caller is still transcribed; the assistant says nothing.
        for _ in range(200):
            if [e["type"] for e in await events()].count("caller_turn") > heard_turns:
                break
            await asyncio.sleep(0.05)
        assert [e["type"] for e in await events()].count("caller_turn") == heard_turns + 1
        assert [e["type"] for e in await events()].count("agent_text") == answered
        # The person's words are transcribed by the server and reach the console.
        agent.track.play(speech(generated, "utt_bill.wav", RATE))
        said = await agent.wait_for("human_text", timeout=20, agent="ann")
        assert said["text"] == "what are your opening hours"
        await call.hangup()
        await agent.wait_for("call_end")  # the console ends its takeover when the phone hangs up
        await until(lambda: len(phone.results) == 1, 20, "the call to be stored")
    finally:
        if line is not None:
            await line.close()
        await agent.close()
        await caller_ua.stop(1)
    result = phone.results[0]
    assert result.call_id == cid and client.app[STATE].live.get(cid) is None
    rec = store.get_call(cid)
    assert rec.meta["human_agents"] == ["ann"]
    human = [s for s in store.segments(cid) if s.get("human") == "ann"]
    assert [(s["speaker"], s["channel"], s["text"]) for s in human] == [("agent", 1, "what are your opening hours")]
    # The person's voice is in the stored recording's agent channel, where the tone was played.
    with wave.open(str(result.recording)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)[:, 1].astype(np.float64) / 32767
    held = next(e["t"] for e in result.events if e["type"] == "assistant_held")
    window = pcm[int(held * PHONE): int((held + 4.0) * PHONE)]
    assert peak_ratio(window, PHONE, 440.0) > 5
