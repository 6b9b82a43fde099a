"""The session's public API with no models: say, interrupt, hold/resume, press, human audio and words.

The caller's line is scripted tick by tick (silence frames), and replies are started with DTMF keys,
so every test is deterministic and runs in well under a second.
"""

from __future__ import annotations

import asyncio
import gc
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from asr.streaming import Recognition
from tests.voice_agent.fakes import FakeBrain, FakeReply, FakeVoice, tone
from voice_agent.ports import TurnInput, TurnOutcome
from voice_agent.records import save_call
from voice_agent.session import CallResult, CallSession, Playout, SessionSettings
from voice_agent.store import CallStore

RATE = 16000
N = RATE // 50
Script = Callable[[CallSession, int], Awaitable[None]]


class DeafRecognizer:
    """Never hears words (the scripted line is silence; replies come from keys)."""

    def recognize(self, audio: np.ndarray, beam_size: int = 1) -> Recognition:
        return Recognition("", -0.1, 0.9)

    recognize_final = recognize


class ClosableReply(FakeReply):
    """A reply that records ``aclose()`` and stops streaming once closed."""

    def __init__(self, *args: Any, fail_after: int | None = None, wait_after: int | None = None) -> None:
        super().__init__(*args)
        self.closed = False
        self.fail_after = fail_after
        self.wait_after = wait_after  # a slow model: the rest of the text never comes
        self.gate = asyncio.Event()
        self.log: list[str] | None = None

    async def stream(self) -> AsyncIterator[str]:
        for i, word in enumerate(self.text.split()):
            if self.closed:
                return
            if self.fail_after is not None and i >= self.fail_after:
                raise RuntimeError("the model went away")
            if self.wait_after is not None and i >= self.wait_after:
                await self.gate.wait()
            await asyncio.sleep(self.delay)
            yield word + " "

    async def aclose(self) -> None:
        await asyncio.sleep(0.01)  # closing a real generation takes a moment (a model thread to stop)
        self.closed = True
        if self.log is not None:
            self.log.append(f"closed {self.text.split()[2]}")


class ClosableBrain(FakeBrain):
    def __init__(self, token_delay: float = 0.0, answer_words: int = 20, fail_after: int | None = None,
                 wait_after: int | None = None) -> None:
        super().__init__(token_delay, answer_words)
        self.replies: list[ClosableReply] = []
        self.fail_after = fail_after
        self.wait_after = wait_after
        self.log: list[str] = []  # respond / close, in the order the dialog saw them

    async def respond(self, turn: TurnInput) -> ClosableReply:
        self.turns.append(turn)
        reply = ClosableReply(f"You pressed {turn.dtmf}" + " and more" * self.answer_words, TurnOutcome(),
                              self.delay, fail_after=self.fail_after, wait_after=self.wait_after)
        reply.log = self.log
        self.log.append(f"respond {turn.dtmf}")
        self.replies.append(reply)
        return reply


class Line:
    """Drives a session: silence from the caller, a script run before each tick, what the agent sent."""

    def __init__(self, session: CallSession, ticks: int, script: Script) -> None:
        self.session = session
        self.ticks = ticks
        self.script = script
        self.sent: list[np.ndarray] = []
        self.events: list[dict[str, Any]] = []

    async def frames(self) -> AsyncIterator[np.ndarray]:
        for i in range(self.ticks):
            await self.script(self.session, i)
            yield np.zeros(N, np.float32)
            await asyncio.sleep(0)  # let the reply and model tasks run between ticks

    async def sink(self, frame: np.ndarray) -> None:
        self.sent.append(frame)

    def voiced(self) -> int:
        return sum(1 for f in self.sent if float(np.abs(f).max()) > 0.01)

    async def run(self) -> CallResult:
        return await self.session.run(self.frames(), self.sink)


def make(brain: FakeBrain | None = None, recording: Path | None = None, **settings: Any) -> Line:
    events: list[dict[str, Any]] = []
    session = CallSession(DeafRecognizer(), brain or ClosableBrain(), FakeVoice(), RATE,  # type: ignore[arg-type]
                          settings=SessionSettings(**settings), recording_path=recording, on_event=events.append)
    line = Line(session, 0, _nothing)
    line.events = events
    return line


async def _nothing(session: CallSession, tick: int) -> None:
    return None


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (without blocking the loop) until the condition holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_playout_marks_say_what_was_heard_and_clear_drops_the_rest() -> None:
    p = Playout(RATE)
    p.put(np.ones(N * 2, np.float32), "one")
    p.put(np.ones(N * 2, np.float32), "two")
    p.mark("tail")
    assert p.heard() == []
    assert p.next() is not None and p.heard() == ["one"]
    assert p.next() is not None and p.heard() == []
    assert p.next() is not None and p.heard() == ["two"]
    assert p.clear() == 1 and p.heard() == [] and not p.pending  # "tail" was never played
    p.mark("now")  # nothing queued: heard at once
    assert p.heard() == ["now"]
    bounded = Playout(RATE, limit=3)
    bounded.put(np.arange(N * 5, dtype=np.float32), "x")
    first = bounded.next()
    assert first is not None and first[0] == 2 * N  # the two oldest frames were dropped
    assert bounded.heard() == ["x"]


async def test_interrupt_closes_the_reply_and_keeps_only_what_was_heard() -> None:
    brain = ClosableBrain(wait_after=12)  # 12 words come at once, then the model stalls
    line = make(brain)
    done: dict[str, Any] = {}

    async def script(s: CallSession, tick: int) -> None:
        if tick == 40:
            s.press("1")
            done["voiced"] = line.voiced()
        if tick > 40 and "stopped" not in done and line.voiced() - done["voiced"] >= 6:
            await s.interrupt()
            # interrupt() returns once the reply is closed: nothing of it is left to play.
            assert brain.replies[0].closed
            done["stopped"] = len(line.sent)

    line.ticks, line.script = 160, script
    result = await line.run()
    assert "stopped" in done
    assert all(float(np.abs(f).max()) == 0 for f in line.sent[done["stopped"]:])
    answer = [t for t in result.transcript if t["speaker"] == "agent" and t["text"].startswith("You pressed")]
    assert len(answer) == 1 and answer[0]["interrupted"] is True
    full = "You pressed 1" + " and more" * 20
    heard = answer[0]["text"]
    assert full.startswith(heard) and len(heard) < len(full), heard
    assert answer[0]["end"] <= done["stopped"] * 0.02 + 0.02
    assert "interrupted" in kinds(line.events)


async def test_hold_transcribes_without_answering_and_holds_the_silence_timer() -> None:
    brain = ClosableBrain()
    line = make(brain, reprompt_after_s=1.0, max_reprompts=5)

    async def script(s: CallSession, tick: int) -> None:
        if tick == 30:
            s.hold_assistant("takeover by ann")
        if tick == 60:
            s.press("2")
        if tick == 300:
            assert s.held
            s.resume_assistant()

    line.ticks, line.script = 400, script
    result = await line.run()
    assert brain.turns == []  # held: the key press was recorded, not answered
    assert [(t.caller_text, t.action) for t in result.turns] == [("", "held")]
    assert any(t["text"] == "[DTMF 2]" for t in result.transcript)
    reprompts = [e["t"] for e in line.events if e["type"] == "reprompt"]
    # Only the resumed assistant re-prompts, one timer period after resuming.
    assert reprompts and all(t >= 300 * 0.02 + 1.0 for t in reprompts), reprompts
    assert {"assistant_held", "assistant_resumed"} <= set(kinds(line.events))


async def test_human_voice_reaches_the_caller_the_recording_and_the_store(tmp_path: Path) -> None:
    recording = tmp_path / "call.wav"
    line = make(recording=recording)
    voice48 = tone(48000, 1.0, 300.0)

    async def script(s: CallSession, tick: int) -> None:
        if tick == 30:
            await s.interrupt()
            s.hold_assistant("takeover by ann")
        if 30 <= tick < 80:
            i = tick - 30
            s.play_human(voice48[i * 960:(i + 1) * 960], 48000)  # the agent's browser: 20 ms at 48 kHz
        if tick == 90:
            s.record_human("hello I can help", 0.6, 1.6, "ann")

    line.ticks, line.script = 120, script
    result = await line.run()
    human = np.concatenate(line.sent[31:80])
    assert float(np.sqrt(np.mean(human ** 2))) > 0.03  # the caller heard the person
    with wave.open(str(recording)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    agent_side = pcm[31 * N:80 * N, 1].astype(np.float64) / 32767
    assert float(np.sqrt(np.mean(agent_side ** 2))) > 0.03  # and it is in the recording's agent channel
    seg = [t for t in result.transcript if t.get("human")]
    assert seg == [{"speaker": "agent", "start": 0.6, "end": 1.6, "text": "hello I can help", "human": "ann"}]
    assert [(e["text"], e["agent"]) for e in line.events if e["type"] == "human_text"] == [("hello I can help", "ann")]
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    try:
        save_call(store, result, "phone", "test")
        stored = [s for s in store.segments(result.call_id) if s.get("human") == "ann"]
        assert len(stored) == 1 and stored[0]["channel"] == 1 and stored[0]["text"] == "hello I can help"
    finally:
        store.close()


async def test_say_speaks_and_transcribes_the_text() -> None:
    line = make()

    async def script(s: CallSession, tick: int) -> None:
        if tick == 40:
            await s.say("One moment please")

    line.ticks, line.script = 120, script
    result = await line.run()
    said = [t for t in result.transcript if t["text"] == "One moment please"]
    assert len(said) == 1 and said[0]["start"] >= 40 * 0.02 and "interrupted" not in said[0]
    assert "say" in kinds(line.events)


async def test_hang_up_mid_answer_stores_only_what_was_played() -> None:
    brain = ClosableBrain(answer_words=40)
    line = make(brain)
    pressed: dict[str, int] = {}

    async def script(s: CallSession, tick: int) -> None:
        if tick == 40:
            s.press("3")
            pressed["at"] = line.voiced()

    line.ticks, line.script = 70, script  # the caller hangs up 0.6 s into a 13 s answer
    result = await line.run()
    answer = [t for t in result.transcript if t["text"].startswith("You pressed")]
    assert len(answer) == 1 and answer[0]["interrupted"] is True
    assert len(answer[0]["text"].split()) < 20, answer[0]["text"]


async def test_a_failing_reply_is_collected_and_recorded() -> None:
    brain = ClosableBrain(fail_after=2)
    line = make(brain)
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))

    async def script(s: CallSession, tick: int) -> None:
        if tick == 30:
            s.press("4")
        if tick == 31:
            await until(lambda: any(e["type"] == "reply_failed" for e in line.events))

    line.ticks, line.script = 60, script
    try:
        await line.run()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    failed = [e for e in line.events if e["type"] == "reply_failed"]
    assert len(failed) == 1 and "the model went away" in failed[0]["error"]
    assert unhandled == []


async def test_a_key_mid_reply_closes_that_reply_before_the_next_one_starts() -> None:
    brain = ClosableBrain(wait_after=3)  # the first reply stalls mid-generation
    line = make(brain)

    async def script(s: CallSession, tick: int) -> None:
        if tick == 30:
            s.press("1")
        if tick == 40:
            s.press("2")  # interrupts reply 1 like speech would
        if tick == 41:
            await until(lambda: "respond 2" in brain.log)

    line.ticks, line.script = 80, script
    await line.run()
    # The dialog records what reply 1 streamed before it hears the next turn.
    assert brain.log[:3] == ["respond 1", "closed 1", "respond 2"], brain.log


class SlowPromptVoice(FakeVoice):
    """Prompts (the filler) take until the test lets them through."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked = 0

    async def prompt(self, text: str, rate: int) -> np.ndarray:
        if text != "Hello.":
            self.asked += 1
            await self.gate.wait()
        return await super().prompt(text, rate)


class GreetingBrain(ClosableBrain):
    def greeting(self) -> str:
        return "Hello."


async def test_a_filler_made_while_the_reply_is_interrupted_is_not_played() -> None:
    brain = GreetingBrain(wait_after=0)  # the answer never comes: the filler is due
    voice = SlowPromptVoice()
    events: list[dict[str, Any]] = []
    session = CallSession(DeafRecognizer(), brain, voice, RATE,  # type: ignore[arg-type]
                          settings=SessionSettings(filler_after_s=0.2), on_event=events.append)
    stopped: dict[str, int] = {}

    async def script(s: CallSession, tick: int) -> None:
        if tick == 30:
            s.press("1")
        if tick == 45:  # 0.3 s after the key: the filler is due, and being made
            await until(lambda: voice.asked == 1)
            voice.gate.set()  # the filler's audio is ready just as the reply is interrupted
            await s.interrupt()
            stopped["at"] = len(line.sent)

    line = Line(session, 80, script)
    await line.run()
    assert "at" in stopped
    assert all(float(np.abs(f).max()) == 0 for f in line.sent[stopped["at"]:])
    assert "filler" not in kinds(events)
