"""Browser calls over WebRTC with a Python aiortc peer: captions, agent audio, DTMF, takeover, storage."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from asr.audio import load_audio, resample
from dialog.pii import Redactor
from telephony.webrtc import FrameReader, OutgoingAudio, allow_loopback_candidates
from tests.voice_agent.fakes import tone
from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.api import STATE
from voice_agent.web.server import make_app

from .conftest import fake_engine, sign_in
from .rtc_client import RATE, RtcPeer

Gen = tuple[Path, dict[str, Any]]


def speech(generated: Gen, name: str) -> np.ndarray:
    """A generated caller utterance as 48 kHz mono with silence after it."""
    audio = load_audio(generated[0] / name).mean(axis=0)
    return np.concatenate([np.zeros(RATE // 2, np.float32), resample(audio, 16000, RATE).astype(np.float32),
                           np.zeros(RATE * 3, np.float32)])


@pytest.fixture()
async def call_client(web_config: Config, store: CallStore) -> AsyncIterator[TestClient[Any, Any]]:
    """The app with a model-free engine, so calls run in real time without loading models."""
    allow_loopback_candidates(True)
    app = make_app(web_config, store, fake_engine())
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c
    allow_loopback_candidates(False)


async def wait_saved(client: TestClient[Any, Any], call_id: str, timeout: float = 10.0) -> None:
    live = client.app[STATE].live
    for _ in range(int(timeout / 0.05)):
        if call_id not in live.calls:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the call did not end")


async def test_browser_call_captions_agent_audio_and_store(call_client: TestClient[Any, Any], store: CallStore,
                                                           generated: Gen) -> None:
    caller = RtcPeer(speech(generated, "utt_bill.wav"))
    body = await caller.connect(call_client, "/api/webrtc/offer")
    assert "opus/48000" in body["sdp"].split("m=audio")[1].split("a=rtpmap")[1].lower()  # the first codec
    try:
        greeting = await caller.wait_for("greeting")
        assert greeting["text"] == "Hello."
        turn = await caller.wait_for("caller_turn", timeout=30)
        assert turn["text"] == "what are your opening hours"
        answer = await caller.wait_for("agent_text")
        assert answer["text"] == "You said what are your opening hours"
        await caller.wait_for("sentiment")
        await asyncio.sleep(1.0)
        # The fake voice speaks a 300 Hz tone for prompts and 220 Hz for answers: the caller hears it.
        assert caller.heard_rms() > 0.01
        caller.send({"type": "dtmf", "digit": "5"})
        await caller.wait_for("dtmf", digit="5")
        caller.send({"type": "hangup"})
        await caller.wait_for("call_end")
    finally:
        await caller.close()
    await wait_saved(call_client, body["call_id"])
    rec = store.get_call(body["call_id"])
    assert rec.kind == "webrtc"
    assert "what are your opening hours" in rec.text
    segments = store.segments(rec.id)
    assert {s["speaker"] for s in segments} == {"caller", "agent"}
    assert Path(rec.meta["recording"]).is_file()
    turns = store.turns(rec.id)
    assert turns[0]["voice_to_voice_ms"] is not None and turns[0]["voice_to_voice_ms"] > 0


async def test_takeover_caller_and_agent_hear_each_other(call_client: TestClient[Any, Any], store: CallStore,
                                                         generated: Gen) -> None:
    caller = RtcPeer(speech(generated, "utt_bill.wav"))
    body = await caller.connect(call_client, "/api/webrtc/offer")
    agent = RtcPeer(np.zeros(RATE, np.float32))
    try:
        await caller.wait_for("agent_text", timeout=30)
        # Viewers may not take over; the CSRF header is needed with the session cookie.
        csrf = await sign_in(call_client, "vic")
        r = await call_client.post(f"/api/live/{body['call_id']}/takeover", json={"sdp": "x"},
                                   headers={"X-CSRF-Token": csrf})
        assert r.status == 403
        csrf = await sign_in(call_client, "ann")
        live = await (await call_client.get("/api/live")).json()
        assert [c["id"] for c in live["calls"]] == [body["call_id"]]
        await agent.connect(call_client, f"/api/live/{body['call_id']}/takeover", headers={"X-CSRF-Token": csrf})
        await caller.wait_for("takeover", agent="ann")
        second = await call_client.post(f"/api/live/{body['call_id']}/takeover", json={"sdp": "v=0"},
                                        headers={"X-CSRF-Token": csrf})
        assert second.status == 409 and "ann already has this call" in (await second.json())["error"]
        turns_before = caller.types().count("agent_text")
        heard_before = caller.types().count("caller_turn")
        agent.track.play(tone(RATE, 2.0, 440.0))  # the agent speaks
        caller.track.play(speech(generated, "utt_move.wav"))  # and the caller, at the same time
        await asyncio.sleep(2.5)
        # The caller hears the agent's 440 Hz voice; the agent hears the caller.
        heard = np.concatenate(caller.heard)[-int(2.5 * RATE):]
        spectrum = np.abs(np.fft.rfft(heard))
        freqs = np.fft.rfftfreq(len(heard), 1 / RATE)
        assert spectrum[(freqs > 430) & (freqs < 450)].max() > 5 * np.median(spectrum[(freqs > 100) & (freqs < 4000)])
        assert agent.heard_rms(2.5) > 0.01
        # The assistant stays quiet: the caller's new turn is transcribed but not answered.
        for _ in range(200):
            if caller.types().count("caller_turn") > heard_before:
                break
            await asyncio.sleep(0.05)
        assert caller.types().count("caller_turn") == heard_before + 1
        await asyncio.sleep(1.0)
        assert caller.types().count("agent_text") == turns_before
        # The person's words are transcribed too (the session itself only listens to the caller).
        agent.track.play(speech(generated, "utt_bill.wav"))
        said = await caller.wait_for("human_text", timeout=20, agent="ann")
        assert said["text"] == "what are your opening hours"
        caller.send({"type": "hangup"})
        await caller.wait_for("call_end")
    finally:
        await caller.close()
        await agent.close()
    await wait_saved(call_client, body["call_id"])
    rec = store.get_call(body["call_id"])
    assert rec.meta["human_agents"] == ["ann"]
    human = [s for s in store.segments(rec.id) if s.get("human") == "ann"]
    assert len(human) >= 1 and human[0]["speaker"] == "agent" and human[0]["channel"] == 1


async def test_escalation_holds_the_caller_for_a_human_then_gives_up(web_config: Config, store: CallStore,
                                                                      generated: Gen) -> None:
    allow_loopback_candidates(True)
    web_config.http.hold_timeout_s = 2.0
    app = make_app(web_config, store, fake_engine(heard="i want to talk to a human"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        caller = RtcPeer(np.concatenate([speech(generated, "utt_technician.wav"), np.zeros(RATE * 6, np.float32)]))
        body = await caller.connect(client, "/api/webrtc/offer")
        try:
            transfer = await caller.wait_for("transfer", timeout=30)
            assert transfer["reason"] == "asked"
            await caller.wait_for("waiting")
            said = await caller.wait_for("agent_text")
            assert said["text"].endswith("Please hold for a moment.")
            r = await client.get(f"/api/live/{body['call_id']}",
                                 headers={"Authorization": f"Bearer {Users(store).issue_token('vic')}"})
            assert (await r.json())["status"] == "waiting"
            # Nobody takes the call within the hold timeout: the caller is told and the call ends.
            ended = await caller.wait_for("hangup", timeout=15)
            assert ended["reason"] == "no agent available"
            await caller.wait_for("call_end")
        finally:
            await caller.close()
        await wait_saved(client, body["call_id"])
    allow_loopback_candidates(False)
    rec = store.get_call(body["call_id"])
    assert rec.outcome == "abandoned" and rec.meta["transfer"]["reason"] == "asked"


async def test_console_and_store_never_see_a_card_number(web_config: Config, store: CallStore,
                                                        generated: Gen) -> None:
    allow_loopback_candidates(True)
    app = make_app(web_config, store, fake_engine(heard="my card number is 4111 1111 1111 1111"))
    viewer = {"Authorization": f"Bearer {Users(store).issue_token('vic')}"}
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        caller = RtcPeer(speech(generated, "utt_bill.wav"))
        body = await caller.connect(client, "/api/webrtc/offer")
        try:
            turn = await caller.wait_for("caller_turn", timeout=30)
            assert turn["text"] == "my card number is [CARD]"  # the caller's page shows no card number either
            await caller.wait_for("agent_text")
            live = await (await client.get(f"/api/live/{body['call_id']}", headers=viewer)).text()
            assert "[CARD]" in live and "4111" not in live
            listed = await (await client.get("/api/live", headers=viewer)).text()
            assert "4111" not in listed
            caller.send({"type": "hangup"})
            await caller.wait_for("call_end")
        finally:
            await caller.close()
        await wait_saved(client, body["call_id"])
        stored = await (await client.get(f"/api/calls/{body['call_id']}", headers=viewer)).text()
    allow_loopback_candidates(False)
    assert "[CARD]" in stored and "4111" not in stored
    assert not [e for e in caller.events if "4111" in json.dumps(e)]


# How Whisper writes a phone number and a card read digit by digit (issue 12): none of it may leave the call.
SAID = "call me on 5, 5, 5, 0, 1, 4, 3 or 2-0-2, 5-5-5, 0-1-4-3 and my card is 4-5-3-9, 5-7-8-7, 6-3-6-2, 1-4-8-6"
DIGITS = ("5550143", "2025550143", "4539578763621486")


def texts(value: Any) -> str:
    """Every string in a JSON-like value (JSON held in strings opened up), one per line: numbers are timings
    and ids, and two of them side by side ("12.55, 50.14") can look like digits of a said number."""
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            return value
        return texts(inner) if isinstance(inner, dict | list) else value
    if isinstance(value, dict):
        return "\n".join(texts(v) for v in value.values())
    if isinstance(value, list | tuple):
        return "\n".join(texts(v) for v in value)
    return ""


def leaks(text: str) -> list[str]:
    """Runs of 4+ digits (however separated) of the numbers said above."""
    found = []
    for m in re.finditer(r"\d(?:[\s,.\-]{0,3}\d){3,}", text):
        digits = re.sub(r"\D", "", m.group(0))
        if any(digits[i : i + 4] in number for number in DIGITS for i in range(len(digits) - 3)):
            found.append(m.group(0))
    return found


async def test_numbers_as_whisper_writes_them_never_leave_the_call(web_config: Config, store: CallStore,
                                                                   generated: Gen,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from voice_agent.privacy import RedactingFilter

    caplog.set_level(logging.DEBUG)
    redacting = RedactingFilter(Redactor(web_config.dialog.redact))
    caplog.handler.addFilter(redacting)
    allow_loopback_candidates(True)
    app = make_app(web_config, store, fake_engine(heard=SAID))
    viewer = {"Authorization": f"Bearer {Users(store).issue_token('vic')}"}
    agent = RtcPeer(np.zeros(RATE, np.float32))
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            caller = RtcPeer(speech(generated, "utt_bill.wav"))
            body = await caller.connect(client, "/api/webrtc/offer")
            try:
                turn = await caller.wait_for("caller_turn", timeout=30)
                assert "[PHONE]" in turn["text"] and "[CARD]" in turn["text"], turn
                await caller.wait_for("agent_text")
                live = await (await client.get(f"/api/live/{body['call_id']}", headers=viewer)).text()
                listed = await (await client.get("/api/live", headers=viewer)).text()
                assert "[PHONE]" in live and not leaks(live) and not leaks(listed), (live, listed)
                # a human agent who takes the call gets the captions on the data channel, redacted
                csrf = await sign_in(client, "ann")
                await agent.connect(client, f"/api/live/{body['call_id']}/takeover", headers={"X-CSRF-Token": csrf})
                await caller.wait_for("takeover", agent="ann")
                caller.track.play(speech(generated, "utt_bill.wav"))
                await agent.wait_for("caller_turn", timeout=30)
                caller.send({"type": "hangup"})
                await caller.wait_for("call_end")
            finally:
                await caller.close()
                await agent.close()
            await wait_saved(client, body["call_id"])
            stored = await (await client.get(f"/api/calls/{body['call_id']}", headers=viewer)).text()
            previews = await (await client.get("/api/calls", headers=viewer)).text()
    finally:
        allow_loopback_candidates(False)
        caplog.handler.removeFilter(redacting)
    channel = texts(caller.events) + "\n" + texts(agent.events)
    assert "[PHONE]" in channel and not leaks(channel), leaks(channel)
    stored, previews = texts(stored), texts(previews)
    assert "[PHONE]" in stored and not leaks(stored), leaks(stored)
    assert body["call_id"] in previews and not leaks(previews), leaks(previews)
    with store.transaction() as db:
        rows = [texts([c for c in r if isinstance(c, str)]) for t in ("calls", "segments", "turns", "events")
                for r in db.execute(f"SELECT * FROM {t}")]
    assert not leaks("\n".join(rows)), leaks("\n".join(rows))
    logged = "\n".join(r.getMessage() + "\n" + texts(getattr(r, "fields", {}))
                       for r in caplog.records if r.name.startswith("voice_agent"))
    assert "[PHONE]" in logged and not leaks(logged), leaks(logged)


async def test_console_transfers_then_hangs_up_a_live_call(call_client: TestClient[Any, Any], store: CallStore,
                                                           generated: Gen) -> None:
    caller = RtcPeer(speech(generated, "utt_bill.wav"))
    body = await caller.connect(call_client, "/api/webrtc/offer")
    call_id = body["call_id"]
    agent = {"Authorization": f"Bearer {Users(store).issue_token('ann')}"}
    viewer = {"Authorization": f"Bearer {Users(store).issue_token('vic')}"}
    try:
        await caller.wait_for("greeting")
        assert (await call_client.post(f"/api/live/{call_id}/hangup", headers=viewer)).status == 403
        r = await call_client.post(f"/api/live/{call_id}/transfer", headers=agent)
        assert (await r.json())["status"] == "waiting"
        await caller.wait_for("waiting")
        listed = await (await call_client.get("/api/live", headers=viewer)).json()
        assert listed["calls"][0]["status"] == "waiting"
        for _ in range(3):  # the console polls; the audit log says once who watched
            watched = await (await call_client.get(f"/api/live/{call_id}", headers=viewer)).json()
        assert "greeting" in [e["type"] for e in watched["events"]]
        assert listed["calls"][0]["escalation"]["reason"] == "requested by ann"
        r = await call_client.post(f"/api/live/{call_id}/hangup", headers=agent)
        assert r.status == 200
        ended = await caller.wait_for("hangup")
        assert ended["reason"] == "ended by ann"
        await caller.wait_for("call_end")
    finally:
        await caller.close()
    await wait_saved(call_client, call_id)
    assert (await call_client.post(f"/api/live/{call_id}/hangup", headers=agent)).status == 404
    actions = [r["action"] for r in Users(store).audit_rows(target=call_id)]
    assert sorted(actions) == ["hangup", "read_live", "transfer"]


async def test_offer_rate_limit_and_bad_sdp(call_client: TestClient[Any, Any], web_config: Config) -> None:
    r = await call_client.post("/api/webrtc/offer", json={"sdp": "v=0\r\nnot really sdp\r\n", "type": "offer"})
    assert r.status == 400 and "no audio" in (await r.json())["error"]
    r = await call_client.post("/api/webrtc/offer", json={"sdp": "v=0", "type": "answer"})
    assert r.status == 400
    statuses = [(await call_client.post("/api/webrtc/offer", json={"sdp": "v=0"})).status
                for _ in range(web_config.http.offers_per_minute)]
    assert statuses[-1] == 429


def test_frame_reader_and_outgoing_track_make_20ms_frames() -> None:
    import av

    reader = FrameReader()
    stereo = np.zeros((1, 2 * 1024), np.int16)
    stereo[0, ::2] = 1000
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48000
    out = reader.feed(frame) + reader.feed(frame)
    assert [len(f) for f in out] == [960, 960]
    # Stereo is mixed down at -3 dB per channel.
    assert abs(float(out[0][500]) * 32768 - 1000 / np.sqrt(2)) < 2

    track = OutgoingAudio(max_queue_s=0.1)
    track.push(np.ones(960 * 10, np.float32) * 0.5)
    assert len(track._queue) == 5  # bounded: the oldest audio is dropped



async def test_outgoing_track_paces_20ms_frames_and_fills_gaps_with_silence() -> None:
    import time

    track = OutgoingAudio()
    track.push(np.full(960 * 5, 0.25, np.float32))
    t0 = time.monotonic()
    frames = [await track.recv() for _ in range(15)]
    elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed <= 0.6  # 14 intervals of 20 ms after the first frame
    levels = [int(np.abs(f.to_ndarray()).max()) for f in frames]
    assert levels[:5] == [8191] * 5 and levels[5:] == [0] * 10
    assert [f.pts for f in frames] == [i * 960 for i in range(15)]
    assert track.frames_voiced == 5
    track.stop()


async def test_loopback_candidates_only_when_asked() -> None:
    from telephony.webrtc import PeerCall

    async def answer_candidates() -> str:
        offerer = RtcPeer(np.zeros(RATE, np.float32))
        await offerer.pc.setLocalDescription(await offerer.pc.createOffer())
        peer = PeerCall(label="test")
        try:
            answer = await peer.answer(offerer.pc.localDescription.sdp)
        finally:
            await peer.close()
            await offerer.close()
        return "\n".join(line for line in answer.sdp.splitlines() if line.startswith("a=candidate"))

    allow_loopback_candidates(False)
    assert " 127.0.0.1 " not in await answer_candidates()
    allow_loopback_candidates(True)
    try:
        assert " 127.0.0.1 " in await answer_candidates()
    finally:
        allow_loopback_candidates(False)
