"""The agent's own voice coming back on a phone line must not interrupt it; the caller's voice over it must.

A phone call at 8 kHz: the agent speaks with the real TTS voice (hibari, synthesized once for the module),
its audio goes out through G.711 mu-law, comes back through a hybrid-like echo path (delay, attenuation,
line noise) mixed into the caller's side, and the caller's side goes through G.711 again. The session runs
with the real Silero VAD, the real echo guard and Whisper confirming barge-ins. The echo levels are ones
that DO trip the VAD: every echo path is also run with the guard switched off (``echo_residual=0``) and
there the agent interrupts itself, so a guard that stops working turns these tests red.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.audio import load_audio, resample
from asr.streaming import UtteranceRecognizer
from tests.voice_agent.fakes import FakeBrain, FakeReply
from voice_agent.ports import Spoken, TurnInput, TurnOutcome
from voice_agent.session import CallResult, CallSession, SessionSettings
from voice_agent.simulate import FileSource, phone_line

Gen = tuple[Path, dict[str, Any]]
RATE = 8000
N = RATE // 50
ANSWER = ("Phone support is open Monday to Friday from eight AM to eight PM, and on Saturday from nine AM "
          "to five PM. We are closed on Sundays and public holidays. You can also reach us by chat on our "
          "website at any time, and most questions about bills, moves and outages are answered there.")
# (delay ms, attenuation dB): the ends of the range a phone hybrid gives, and the middle
PATHS = [(40, -6.0), (120, -12.0), (250, -20.0)]
ENDS = [PATHS[0], PATHS[-1]]


class RecordedVoice:
    """The real voice, synthesized ahead: each sentence's hibari audio as Spoken, the same on every run."""

    def __init__(self, sentences: dict[str, np.ndarray], prompts: dict[str, np.ndarray]) -> None:
        self.sentences = sentences
        self.prompts = prompts

    async def speak(self, chunks: AsyncIterator[str], rate: int) -> AsyncIterator[Spoken]:
        text = ""
        async for chunk in chunks:
            text += chunk
        for sentence, audio in self.sentences.items():
            if sentence in text:
                yield Spoken(audio, sentence)

    async def prompt(self, text: str, rate: int) -> np.ndarray:
        return self.prompts[text]


class LongAnswerBrain(FakeBrain):
    async def respond(self, turn: TurnInput) -> FakeReply:
        self.turns.append(turn)
        return FakeReply(ANSWER, TurnOutcome(), 0.0)


@pytest.fixture(scope="module")
def recognizer() -> UtteranceRecognizer:
    return UtteranceRecognizer("whisper-tiny.en")


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> RecordedVoice:
    from tts import Synthesizer
    from tts.sentences import SentenceSplitter

    synth = Synthesizer(cache_dir=tmp_path_factory.mktemp("tts"))
    splitter = SentenceSplitter()
    sentences = [*splitter.feed(ANSWER + " "), *splitter.flush()]
    return RecordedVoice({s: synth.synthesize(s, RATE) for s in sentences},
                         {t: synth.synthesize(t, RATE) for t in ("Hello.", "Okay.", "Sure.", "Right.")})


def phone(audio16: np.ndarray) -> np.ndarray:
    """A 16 kHz fixture as the caller's 8 kHz G.711 line audio."""
    return phone_line(resample(audio16, 16000, RATE)).astype(np.float32)


async def call(recognizer: UtteranceRecognizer, voice: RecordedVoice, caller: np.ndarray, delay_ms: int,
               gain_db: float, guard: bool = True, interrupt_at: float | None = None,
               cues: list[float] | None = None) -> tuple[CallResult, np.ndarray]:
    """A phone call whose caller side carries the agent's own voice back (and the caller's speech, if any).

    ``interrupt_at``: the caller's audio from there waits until the agent has spoken 1 s of its answer (the
    line time it went out is appended to ``cues``).
    """
    settings = SessionSettings(filler_after_s=5.0, echo_residual=0.35 if guard else 0.0)
    session = CallSession(recognizer, LongAnswerBrain(), voice, RATE, settings=settings, outgoing=phone_line)
    source = FileSource(caller, RATE, fast=True, busy=lambda: session.busy > 0, hold=session.holding_line,
                        wait_at=interrupt_at, ready=lambda: bool(session.turns) and session.agent_speaking_s >= 1.0)
    path: deque[np.ndarray] = deque([np.zeros(N, np.float32)] * (delay_ms // 20))
    gain = 10 ** (gain_db / 20)
    noise = np.random.default_rng(7)
    sent: list[np.ndarray] = []

    async def line() -> AsyncIterator[np.ndarray]:
        async for frame in source.frames():
            if not guard and any(e["type"] == "barge_in" for e in session.events):
                return  # the control has shown what it shows: the caller hangs up
            echo = path.popleft() * gain if path else np.zeros(N, np.float32)
            hiss = noise.standard_normal(N).astype(np.float32) * 10 ** (-60 / 20)
            yield phone_line(np.clip(frame + echo + hiss, -1, 1)).astype(np.float32)

    async def sink(frame: np.ndarray) -> None:
        path.append(frame)  # already through G.711 on the way out (outgoing=phone_line)
        sent.append(frame)

    result = await session.run(line(), sink)
    if cues is not None and source.cue_s is not None:
        cues.append(source.cue_s)
    return result, np.concatenate(sent)


def kinds(result: CallResult) -> list[str]:
    return [e["type"] for e in result.events]


@pytest.mark.parametrize(("delay_ms", "gain_db"), PATHS, ids=[f"{d}ms{g:+.0f}dB" for d, g in PATHS])
async def test_the_agents_own_echo_never_interrupts_it(recognizer: UtteranceRecognizer, voice: RecordedVoice,
                                                       generated: Gen, delay_ms: int, gain_db: float) -> None:
    question = phone(load_audio(generated[0] / "utt_bill.wav")[0])
    caller = np.concatenate([np.zeros(RATE, np.float32), question, np.zeros(RATE * 16, np.float32)])
    result, _ = await call(recognizer, voice, caller, delay_ms, gain_db)
    assert "barge_in" not in kinds(result) and "barge_in_candidate" not in kinds(result), result.events
    assert len(result.turns) == 1, [t.caller_text for t in result.turns]  # the echo never became a turn
    assert not result.turns[0].interrupted
    spoken = [s for s in result.transcript if s["speaker"] == "agent" and "Phone support" in s["text"]]
    assert len(spoken) == 1 and "interrupted" not in spoken[0] and "answered there" in spoken[0]["text"]


@pytest.mark.parametrize(("delay_ms", "gain_db"), ENDS, ids=[f"{d}ms{g:+.0f}dB" for d, g in ENDS])
async def test_without_the_guard_that_echo_interrupts_the_agent(
        recognizer: UtteranceRecognizer, voice: RecordedVoice, generated: Gen, delay_ms: int, gain_db: float) -> None:
    """The control: the same echo with the guard off trips the VAD and Whisper hears words in it."""
    question = phone(load_audio(generated[0] / "utt_bill.wav")[0])
    caller = np.concatenate([np.zeros(RATE, np.float32), question, np.zeros(RATE * 16, np.float32)])
    result, _ = await call(recognizer, voice, caller, delay_ms, gain_db, guard=False)
    assert "barge_in" in kinds(result), result.events


@pytest.mark.parametrize(("delay_ms", "gain_db"), ENDS, ids=[f"{d}ms{g:+.0f}dB" for d, g in ENDS])
async def test_the_caller_over_the_echo_still_interrupts(recognizer: UtteranceRecognizer, voice: RecordedVoice,
                                                         generated: Gen, delay_ms: int, gain_db: float) -> None:
    question = phone(load_audio(generated[0] / "utt_bill.wav")[0])
    cancel = phone(load_audio(generated[0] / "utt_cancel.wav")[0])
    lead, gap = np.zeros(RATE, np.float32), np.zeros(RATE, np.float32)
    caller = np.concatenate([lead, question, gap, cancel, np.zeros(RATE * 6, np.float32)])
    # the caller cuts in once the agent has spoken 1 s of its answer, however slow the models are
    cues: list[float] = []
    result, sent = await call(recognizer, voice, caller, delay_ms, gain_db,
                              interrupt_at=(len(lead) + len(question) + len(gap)) / RATE, cues=cues)
    [cut_in] = cues
    events = [(e["t"], e["type"], e.get("text", e.get("residual"))) for e in result.events]
    assert "barge_in" in kinds(result), events
    # noticed on the line clock within VAD onset + 300 ms of speech
    first = next(e for e in result.events if e["type"] == "barge_in_candidate")
    assert 0 <= first["t"] - cut_in < 0.8, events
    # the candidate that became the barge-in (Whisper may have heard too little in an earlier one): the agent
    # was speaking just before it and is silent from 200 ms after it (measured on the frames sent)
    stop = kinds(result).index("barge_in")
    candidate = next(e for e in reversed(result.events[:stop]) if e["type"] == "barge_in_candidate")
    loud = np.abs(sent.reshape(-1, N)).max(axis=1) > 0.01
    at, noticed = round(candidate["t"] / 0.02), round(first["t"] / 0.02)
    assert loud[noticed - 10 : noticed].any(), events  # speaking when the caller cut in (paused from here)
    assert not loud[at + 10 : at + 40].any(), events
    assert result.turns[0].interrupted
    assert "cancel" in result.turns[-1].caller_text.lower()
