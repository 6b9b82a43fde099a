"""Latency as the caller hears it, in the session's own figures: first sound and first answer word.

The caller's line is scripted tick by tick (as in test_session_api) and turns start with a key, so the
figures are exact: each is checked against the agent frames actually sent (the right channel of the
recording), not against another clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from tests.voice_agent.fakes import FakeReply, FakeVoice, tone
from tests.voice_agent.test_session_api import RATE, ClosableBrain, DeafRecognizer, Line, until
from voice_agent.engine import Engine
from voice_agent.ports import Spoken, TurnInput, TurnOutcome
from voice_agent.session import CallSession, SessionSettings, TurnRecord, content_offset, trailing_silence


class ScriptedReply(FakeReply):
    """Streams its words; stalls after ``stall_after`` words until ``gate`` is set."""

    def __init__(self, text: str, stall_after: int | None, gate: asyncio.Event) -> None:
        super().__init__(text, TurnOutcome(), 0.0)
        self.stall_after = stall_after
        self.gate = gate

    async def stream(self) -> AsyncIterator[str]:
        for i, word in enumerate(self.text.split()):
            if self.stall_after is not None and i >= self.stall_after:
                await self.gate.wait()
            await asyncio.sleep(0)
            yield word + " "


class ScriptedBrain(ClosableBrain):
    def __init__(self, text: str, stall_after: int | None = None) -> None:
        super().__init__()
        self.text = text
        self.stall_after = stall_after
        self.gate = asyncio.Event()

    async def respond(self, turn: TurnInput) -> ScriptedReply:  # type: ignore[override]
        self.turns.append(turn)
        return ScriptedReply(self.text, self.stall_after, self.gate)


class SentenceVoice(FakeVoice):
    """Speaks whole sentences, 0.06 s of tone per word, and says which text each piece is (like TtsVoice)."""

    async def speak(self, chunks: AsyncIterator[str], rate: int) -> AsyncIterator[Spoken]:  # type: ignore[override]
        text = ""
        async for chunk in chunks:
            text += chunk
            if text.rstrip().endswith("."):
                yield Spoken(tone(rate, 0.06 * len(text.split())), text.strip())
                text = ""
        if text.strip():
            yield Spoken(tone(rate, 0.06 * len(text.split())), text.strip())


def make_line(brain: ClosableBrain, voice: FakeVoice | None = None, **settings: Any) -> tuple[Line, list[TurnRecord]]:
    reported: list[TurnRecord] = []

    def on_turn(turn: TurnRecord) -> None:
        # what a live call stores (and admission control judges) at this moment
        reported.append(TurnRecord(**{k: v for k, v in vars(turn).items()}))

    session = CallSession(DeafRecognizer(), brain, voice or FakeVoice(), RATE,  # type: ignore[arg-type]
                          settings=SessionSettings(**settings), on_turn=on_turn)
    return Line(session, 0, _press_at_40), reported


async def _press_at_40(session: CallSession, tick: int) -> None:
    if tick == 40:
        session.press("1")


def onsets(line: Line) -> list[float]:
    """Line times (s) where the agent's sent audio starts after a silent frame: the recording's rising edges."""
    loud = [float(np.abs(f).max()) > 0.01 for f in line.sent]
    return [i * 0.02 for i in range(len(loud)) if loud[i] and (i == 0 or not loud[i - 1])]


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.mark.parametrize("voice", [FakeVoice(), SentenceVoice()], ids=["word-audio", "sentence-audio"])
async def test_first_sound_is_the_ack_and_the_answer_follows_it(voice: FakeVoice) -> None:
    brain = ScriptedBrain("Okay. Saturday hours are nine to five.")
    line, reported = make_line(brain, voice, filler_after_s=5.0)
    line.ticks, line.script = 120, _press_at_40
    before = (sample("voice_agent_first_audio_seconds_count"), sample("voice_agent_answer_audio_seconds_count"))
    result = await line.run()
    [turn] = result.turns
    assert turn.first_audio_kind == "ack"
    # The first sound is the reply's first frame on the line (the recording's rising edge after the key).
    assert turn.first_audio_out == pytest.approx(onsets(line)[1], abs=1e-6)
    assert turn.first_audio_ms == turn.voice_to_voice_ms and turn.first_audio_ms is not None
    # The answer is the first agent audio on the line after the "Okay." (one word of tone, then maybe a gap).
    ack_frames = 4 if not isinstance(voice, SentenceVoice) else 3
    loud = [float(np.abs(f).max()) > 0.01 for f in line.sent]
    assert turn.first_audio_out is not None
    first = round(turn.first_audio_out / 0.02)
    answer = next(i for i in range(first + ack_frames, len(loud)) if loud[i])
    assert turn.answer_audio_out == pytest.approx(answer * 0.02, abs=1e-6)
    assert turn.answer_audio_ms == pytest.approx(turn.first_audio_ms + (answer - first) * 20, abs=0.2)
    stages = [turn.end_of_speech, turn.asr_final, turn.llm_first_token, turn.answer_first_text,
              turn.answer_tts_audio, turn.answer_audio_out]
    assert all(s is not None for s in stages) and stages == sorted(stages), stages  # type: ignore[type-var]
    # Prometheus: one sample of each; the stored turn (on_turn) already has the answer's latency.
    after = (sample("voice_agent_first_audio_seconds_count"), sample("voice_agent_answer_audio_seconds_count"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    assert [t.answer_audio_ms for t in reported] == [turn.answer_audio_ms]
    s = result.report()["summary"]
    assert s["p50_first_audio_ms"] == turn.first_audio_ms and s["p50_answer_audio_ms"] == turn.answer_audio_ms
    assert s["p50_voice_to_voice_ms"] == turn.first_audio_ms  # the old name, the same figure
    assert "loop_lag_p99_ms" in s and "loop_lag_max_ms" in s


async def test_an_answer_in_the_same_audio_as_its_ack_starts_inside_it() -> None:
    brain = ScriptedBrain("Sure, Saturday hours are nine to five.")
    line, _ = make_line(brain, SentenceVoice(), filler_after_s=5.0)
    line.ticks = 120
    result = await line.run()
    [turn] = result.turns
    assert turn.first_audio_kind == "ack"
    assert turn.first_audio_out is not None and turn.answer_audio_out is not None
    # "Sure, " is 6 of the sentence's 38 characters: the answer starts that share into its audio
    share = len("Sure, ") / len("Sure, Saturday hours are nine to five.") * 0.06 * 7
    assert turn.answer_audio_out - turn.first_audio_out == pytest.approx(share, abs=1e-3)  # stamps are in ms


async def test_a_filler_is_the_first_sound_and_the_answer_is_timed_when_it_plays() -> None:
    brain = ScriptedBrain("Right. Saturday hours are nine to five.", stall_after=0)
    line, reported = make_line(brain, filler_after_s=0.3)

    async def script(s: CallSession, tick: int) -> None:
        await _press_at_40(s, tick)
        if tick == 60:
            # the filler is due 0.3 s (tick 55) after the key; the session polls for it on the wall clock,
            # so wait for it here (this line runs faster than real time)
            await until(lambda: any(e["type"] == "filler" for e in s.events))
        if tick == 100:
            brain.gate.set()  # the model answers, 1.2 s after the key

    line.ticks, line.script = 200, script
    result = await line.run()
    [turn] = result.turns
    assert turn.filler and turn.first_audio_kind == "filler"
    assert turn.first_audio_ms is not None and 300 <= turn.first_audio_ms <= 440
    assert turn.answer_audio_ms is not None and turn.answer_audio_ms >= 1200  # the model answered at 1.2 s
    assert turn.first_audio_out in [pytest.approx(t, abs=1e-6) for t in onsets(line)]
    assert turn.llm_first_token is not None and turn.answer_first_text is not None
    assert 1.2 <= turn.llm_first_token - 0.8 <= turn.answer_first_text - 0.8  # both after the gate (tick 100)
    assert [t.answer_audio_ms for t in reported] == [turn.answer_audio_ms]


async def test_an_answer_cut_off_before_its_content_has_no_answer_latency() -> None:
    brain = ScriptedBrain("Okay. Saturday hours are nine to five.", stall_after=1)
    line, _ = make_line(brain, filler_after_s=5.0)

    async def script(s: CallSession, tick: int) -> None:
        await _press_at_40(s, tick)
        if tick == 60:
            await s.interrupt()

    line.ticks, line.script = 100, script
    result = await line.run()
    [turn] = result.turns
    assert turn.first_audio_ms is not None and turn.answer_audio_ms is None and turn.answer_audio_out is None


def test_content_words_match_the_recording_tool() -> None:
    # ../shared/peers/answer_latency.py's idea of an acknowledgement: its ACK list, words stripped of .,!?'"
    assert content_offset("Okay.") is None
    assert content_offset("Sure. Let me check.") is None
    assert content_offset("Okay. Saturday") == 6
    assert content_offset("I'm sorry about the trouble.") == 0  # an empathy opener is content there
    assert content_offset("Okay. Satur", complete=False) is None  # a word still streaming is not yet a word
    assert content_offset("Okay. Saturday ", complete=False) == 6


async def test_admission_judges_by_the_answer_when_there_is_one() -> None:
    brain = ScriptedBrain("Okay. Saturday hours are nine to five.")
    engine = Engine(DeafRecognizer(), FakeVoice(), lambda: brain, SessionSettings(filler_after_s=5.0))  # type: ignore[arg-type]
    noted: list[float | None] = []
    engine.load.note_answer = noted.append  # type: ignore[method-assign,assignment]
    session = engine.session(RATE)
    line = Line(session, 120, _press_at_40)
    result = await line.run()
    assert noted == [result.turns[0].answer_audio_ms] and noted[0] is not None
    assert noted[0] > (result.turns[0].first_audio_ms or 0)


def test_end_of_speech_is_the_last_voiced_audio_not_silero_s_late_release() -> None:
    rng = np.random.default_rng(1)
    speech = tone(RATE, 1.5)
    quiet = (rng.standard_normal(int(RATE * 0.5)) * 1e-4).astype(np.float32)  # a line's noise floor
    audio = np.concatenate([quiet[:3200], speech, quiet])
    # Silero counted 0.436 s of silence (its chunks and release); the audio says 0.5 s
    assert trailing_silence(audio, 0.436) == pytest.approx(0.5, abs=0.006)
    # nothing clear (all noise) or an edge far from Silero's: Silero's figure stands
    assert trailing_silence(quiet, 0.3) == 0.3
    assert trailing_silence(np.concatenate([speech, quiet, quiet]), 0.3) == 0.3


async def test_listening_runs_off_the_event_loop_and_loop_lag_is_measured() -> None:
    import threading
    import time

    brain = ScriptedBrain("Okay. Saturday hours are nine to five.")
    line, _ = make_line(brain, filler_after_s=5.0)
    threads: set[str] = set()
    feed = line.session._vad.feed  # the test looks inside: which thread Silero runs on

    def spy(audio: np.ndarray) -> list[float]:
        threads.add(threading.current_thread().name)
        return feed(audio)

    line.session._vad.feed = spy  # type: ignore[method-assign]

    async def script(s: CallSession, tick: int) -> None:
        if tick == 10:
            # something blocks the loop for 120 ms (the thing measured, not a wait): the loop watch is always
            # asleep toward a tick due within 20 ms, so it wakes at least 100 ms late
            time.sleep(0.12)

    line.ticks, line.script = 40, script
    result = await line.run()
    assert threads and all(name.startswith("vad") for name in threads), threads
    assert result.loop_lag["max_ms"] is not None and result.loop_lag["max_ms"] >= 100
    assert result.report()["summary"]["loop_lag_max_ms"] == result.loop_lag["max_ms"]
