"""The call session with the real VAD and Whisper, and a fake brain and voice."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from asr.audio import load_audio, resample
from asr.streaming import UtteranceRecognizer
from tests.voice_agent.fakes import FakeBrain, FakeVoice
from voice_agent.metrics import exposition
from voice_agent.session import CallResult, CallSession, SessionSettings
from voice_agent.simulate import FileSource

Gen = tuple[Path, dict[str, Any]]
RATE = 16000
METRICS = [("voice_agent_voice_to_voice_seconds_count", None), ("voice_agent_asr_final_seconds_count", None),
           ("voice_agent_calls_total", {"outcome": "transferred"}),
           ("voice_agent_call_events_total", {"type": "transfer"})]


@pytest.fixture(scope="module")
def recognizer() -> UtteranceRecognizer:
    return UtteranceRecognizer("whisper-tiny.en")


async def simulate(
    recognizer: UtteranceRecognizer,
    audio: np.ndarray,
    brain: FakeBrain | None = None,
    settings: SessionSettings | None = None,
    echo_db: float | None = None,
    recording: Path | None = None,
    interrupt_at: float | None = None,
    cues: list[float] | None = None,
) -> tuple[CallResult, np.ndarray]:
    """Run a fast simulated call; optionally feed the agent's audio back into the caller side.

    ``interrupt_at``: the caller's audio from there waits until the agent has spoken 1 s of an answer (the line
    time it went out is appended to ``cues``).
    """
    session = CallSession(recognizer, brain or FakeBrain(), FakeVoice(), RATE, settings=settings,
                          recording_path=recording)
    source = FileSource(audio, RATE, fast=True, busy=lambda: session.busy > 0, hold=session.holding_line,
                        wait_at=interrupt_at, ready=lambda: bool(session.turns) and session.agent_speaking_s >= 1.0)
    sent: deque[np.ndarray] = deque([np.zeros(320, np.float32)] * 5)  # 100 ms of echo path delay
    agent_out: list[np.ndarray] = []

    async def frames():  # type: ignore[no-untyped-def]
        async for frame in source.frames():
            if echo_db is not None:
                frame = frame + sent.popleft() * (10 ** (echo_db / 20))
            yield frame

    async def sink(frame: np.ndarray) -> None:
        sent.append(frame)
        agent_out.append(frame)

    result = await session.run(frames(), sink)
    if cues is not None and source.cue_s is not None:
        cues.append(source.cue_s)
    return result, np.concatenate(agent_out)


async def test_turns_get_answers_with_latency(recognizer: UtteranceRecognizer, generated: Gen, tmp_path: Path) -> None:
    folder = generated[0]
    audio = load_audio(folder / "gaps.wav")[0]
    rec_path = tmp_path / "call.wav"
    before = {name: REGISTRY.get_sample_value(name, labels) or 0.0 for name, labels in METRICS}
    result, _ = await simulate(recognizer, audio, recording=rec_path)
    after = {name: REGISTRY.get_sample_value(name, labels) or 0.0 for name, labels in METRICS}
    spoken = [t.caller_text.lower() for t in result.turns]
    # the last gap is 1.5 s: when Whisper is slow (a loaded CPU) the fourth utterance arrives before the
    # agent has started answering the third, and the session rightly merges it into that turn
    assert len(spoken) in (3, 4), spoken
    keys = ["internet", "bill", "moving", "technician"]
    assert [next(i for i, text in enumerate(spoken) if key in text) for key in keys] == [0, 1, 2, len(spoken) - 1]
    assert result.outcome == "transferred"  # the fake brain escalates on "technician"
    assert [e["type"] for e in result.events].count("transfer") == 1
    for turn in result.turns:
        assert turn.end_of_speech is not None and turn.voice_to_voice_ms is not None
        assert turn.end_of_speech <= turn.asr_final <= turn.llm_first_token <= turn.tts_first_audio  # type: ignore[operator]
        assert 0 < turn.voice_to_voice_ms < 3000
    # The recording: stereo, caller left (the file), agent right, aligned frame by frame.
    rec = load_audio(rec_path)
    assert rec.shape[0] == 2
    assert abs(rec.shape[1] - result.duration * RATE) <= RATE * 0.05
    n = min(len(audio), rec.shape[1])
    assert np.corrcoef(rec[0, :n], audio[:n])[0, 1] > 0.99
    report = result.report()
    assert report["summary"]["p50_voice_to_voice_ms"] is not None
    assert {s["speaker"] for s in report["transcript"]} == {"caller", "agent"}
    # Prometheus: a histogram sample per turn and stage, the call and its transfer counted
    gained = {name: after[name] - before[name] for name in after}
    answered = sum(t.voice_to_voice_ms is not None for t in result.turns)
    assert answered == len(result.turns)
    # an answer that started and was then merged with the caller's late fragment was heard: it counts too
    assert answered <= gained["voice_agent_voice_to_voice_seconds_count"] <= 4
    assert gained["voice_agent_asr_final_seconds_count"] == gained["voice_agent_voice_to_voice_seconds_count"]
    assert gained["voice_agent_calls_total"] == 1 and gained["voice_agent_call_events_total"] == 1
    text, content_type = exposition()
    assert b"voice_agent_voice_to_voice_seconds_bucket" in text and content_type.startswith("text/plain")


async def test_barge_in_stops_agent_quickly(recognizer: UtteranceRecognizer, generated: Gen) -> None:
    """The caller talks over a long answer: agent audio stops within 200 ms of the decision point."""
    folder, _ = generated
    first = load_audio(folder / "utt_bill.wav")[0]
    second = load_audio(folder / "utt_cancel.wav")[0]
    # The caller cuts in once the agent has spoken 1 s of its long answer (however slow Whisper is on a loaded
    # machine); every time below is the call's own line clock.
    gap = np.zeros(int(RATE * 1.0), np.float32)
    lead = np.zeros(RATE, np.float32)
    audio = np.concatenate([lead, first, gap, second, np.zeros(RATE * 2, np.float32)])
    cues: list[float] = []
    result, agent = await simulate(recognizer, audio, FakeBrain(answer_words=60),
                                   settings=SessionSettings(filler_after_s=5.0),
                                   interrupt_at=(len(lead) + len(first) + len(gap)) / RATE, cues=cues)
    barge = [e for e in result.events if e["type"] == "barge_in"]
    assert len(barge) == 1
    [cut_in] = cues
    first = next(e for e in result.events if e["type"] == "barge_in_candidate")
    assert first["t"] - cut_in < 0.8
    # The agent frames sent were speech just before the first candidate (the agent pauses there) and are
    # silence from 200 ms after the candidate that became the barge-in (Whisper may have heard too little in an
    # earlier one, and then the agent resumed until the next).
    decided = result.events.index(barge[0])
    candidate = next(e for e in reversed(result.events[:decided]) if e["type"] == "barge_in_candidate")
    loud = np.abs(agent.reshape(-1, 320)).max(axis=1) > 0.01
    at, noticed = round(candidate["t"] / 0.02), round(first["t"] / 0.02)
    assert loud[noticed - 10 : noticed].any() and not loud[at + 10 : at + 40].any()
    assert result.turns[0].interrupted
    assert "cancel" in result.turns[-1].caller_text.lower()


async def test_own_echo_does_not_interrupt(recognizer: UtteranceRecognizer, generated: Gen) -> None:
    folder, _ = generated
    first = load_audio(folder / "utt_bill.wav")[0]
    lead = np.zeros(RATE, np.float32)  # let the greeting finish
    audio = np.concatenate([lead, first, np.zeros(RATE * 8, np.float32)])
    result, _ = await simulate(recognizer, audio, FakeBrain(answer_words=40), echo_db=-10.0,
                               settings=SessionSettings(filler_after_s=5.0))
    types = [e["type"] for e in result.events]
    assert "barge_in" not in types
    assert not result.turns[0].interrupted
    assert len(result.turns) == 1  # the echo never became a caller turn


async def test_backchannel_does_not_interrupt(recognizer: UtteranceRecognizer, tmp_path: Path) -> None:
    from audio_fixtures.make_fixtures import speak

    question = speak("What are your opening hours on Saturday?")
    okay = speak("Okay.", speed=120)
    gap = np.zeros(int(RATE * 2.5), np.float32)
    lead = np.zeros(RATE, np.float32)
    audio = np.concatenate([lead, question, gap, okay, np.zeros(RATE * 6, np.float32)])
    result, _ = await simulate(recognizer, audio, FakeBrain(answer_words=40),
                               settings=SessionSettings(filler_after_s=5.0))
    types = [e["type"] for e in result.events]
    assert "barge_in" not in types
    assert not result.turns[0].interrupted


async def test_silence_only_caller_reprompts_then_hangs_up(recognizer: UtteranceRecognizer) -> None:
    audio = np.zeros(RATE * 30, np.float32)
    s = SessionSettings(reprompt_after_s=5.0, max_reprompts=2)
    result, _ = await simulate(recognizer, audio, settings=s)
    types = [e["type"] for e in result.events]
    assert types.count("reprompt") == 2
    assert "hangup" in types
    assert result.turns == []
    assert result.outcome == "abandoned"


async def test_noise_only_caller_invents_nothing(recognizer: UtteranceRecognizer, generated: Gen) -> None:
    noise = load_audio(generated[0] / "white_noise.wav")[0]
    audio = np.concatenate([noise, noise, noise])
    result, _ = await simulate(recognizer, audio, settings=SessionSettings(reprompt_after_s=6.0))
    assert result.turns == []
    assert "reprompt" in [e["type"] for e in result.events]


async def test_late_fragment_is_merged(recognizer: UtteranceRecognizer) -> None:
    """A caller pausing mid-sentence gets one answer to the whole sentence."""
    from audio_fixtures.make_fixtures import speak

    a = speak("I want to move my internet")
    b = speak("to my new flat next month.")
    lead = np.zeros(RATE, np.float32)
    audio = np.concatenate([lead, a, np.zeros(int(RATE * 0.7), np.float32), b, np.zeros(RATE * 4, np.float32)])
    brain = FakeBrain(token_delay=0.3)
    result, _ = await simulate(recognizer, audio, brain, settings=SessionSettings(filler_after_s=5.0))
    assert len(result.turns) == 1
    text = result.turns[0].caller_text.lower()
    assert "move" in text and "month" in text


def test_phone_rate_resampling_round_trip() -> None:
    from voice_agent.session import Resampler

    up = Resampler(8000, 16000)
    tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
    out = np.concatenate([up(tone[i : i + 160]) for i in range(0, 8000, 160)])
    ref = resample(tone, 8000, 16000)
    assert abs(len(out) - 16000) < 64
    spectrum = np.abs(np.fft.rfft(out[:16000] if len(out) >= 16000 else np.pad(out, (0, 16000 - len(out)))))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2
    assert len(ref) == 16000
