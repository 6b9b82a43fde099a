"""Real-time VAD, endpointing and utterance recognition on generated speech."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.audio import load_audio
from asr.metrics import wer
from asr.streaming import (
    Endpointer,
    EndpointSettings,
    Event,
    StreamingVad,
    UtteranceRecognizer,
    required_silence_ms,
)

Gen = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def recognizer() -> UtteranceRecognizer:
    return UtteranceRecognizer("whisper-tiny.en")


def run_turns(audio: np.ndarray) -> list[tuple[float, float, float]]:
    """(speech start, turn end, pause) times in seconds from 20 ms frames."""
    vad, ep = StreamingVad(), Endpointer()
    turns = []
    start = pause = 0.0
    t = 0.0
    for i in range(0, len(audio), 320):
        for prob in vad.feed(audio[i : i + 320]):
            t += 0.032
            ev = ep.feed(prob)
            if ev is Event.SPEECH_START:
                start = t
            elif ev is Event.PAUSE:
                pause = t
            elif ev is Event.TURN_END:
                turns.append((start, t, pause))
    return turns


def test_turns_follow_speech(generated: Gen) -> None:
    spans = generated[1]["files"]["gaps.wav"]["spans"]
    turns = run_turns(load_audio(generated[0] / "gaps.wav")[0])
    assert len(turns) == len(spans)
    for (start, end, pause), (a, b) in zip(turns, spans, strict=True):
        assert abs(start - a) < 0.35  # speech start is noticed within min_speech + a chunk
        assert 0.4 <= end - b <= 0.75  # the default 500 ms end-of-turn silence
        assert 0.05 <= pause - b <= 0.4  # a pause needs a few silent VAD windows after the last sound


@pytest.mark.parametrize("name", ["silence.wav", "white_noise.wav", "hold_music.wav"])
def test_no_turns_without_speech(generated: Gen, name: str) -> None:
    assert run_turns(load_audio(generated[0] / name)[0]) == []


def test_required_silence_follows_transcript() -> None:
    s = EndpointSettings()
    assert required_silence_ms("", s) == s.silence_ms
    assert required_silence_ms("My bill is wrong.", s) == s.complete_silence_ms
    assert required_silence_ms("My bill is wrong and", s) == s.hesitant_silence_ms
    assert required_silence_ms("I was wondering um", s) == s.hesitant_silence_ms
    assert required_silence_ms("my account number", s) == s.silence_ms


def test_short_pause_resumes_the_turn() -> None:
    ep = Endpointer()
    events = [ep.feed(0.9) for _ in range(10)] + [ep.feed(0.0) for _ in range(8)] + [ep.feed(0.9)]
    assert events[4] is Event.SPEECH_START
    assert Event.PAUSE in events and events[-1] is Event.RESUME
    assert Event.TURN_END not in events


def test_recognizer_on_phone_audio(recognizer: UtteranceRecognizer, generated: Gen) -> None:
    folder, manifest = generated
    audio = load_audio(folder / "utt_outage_ulaw8k.wav")[0]
    rec = recognizer.recognize(audio)
    assert wer(manifest["files"]["utt_outage_ulaw8k.wav"]["text"], rec.text) <= 0.25


def test_recognizer_on_silence(recognizer: UtteranceRecognizer) -> None:
    assert recognizer.recognize(np.zeros(16000, np.float32)).text == ""
    assert recognizer.recognize(np.zeros(100, np.float32)).text == ""
