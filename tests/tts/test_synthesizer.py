"""The real hibari voice: trimmed, streaming, cached, intelligible to Whisper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from asr import Transcriber
from asr.metrics import wer
from tts import BackendUnavailableError, Synthesizer, VoiceNotFoundError, load_voice


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesizer:
    return Synthesizer(cache_dir=tmp_path_factory.mktemp("tts"))


def test_output_is_speech_with_trimmed_silence(synth: Synthesizer) -> None:
    audio = synth.synthesize("Thank you for calling.", 24000)
    assert audio.dtype == np.float32 and len(audio) > 24000 * 0.5
    first_loud = int(np.flatnonzero(np.abs(audio) > 0.01)[0])
    assert first_loud / 24000 < 0.03  # hibari's ~320 ms of leading silence is gone


@pytest.mark.parametrize("rate", [8000, 24000])
def test_intelligible(synth: Synthesizer, transcriber: Transcriber, rate: int) -> None:
    text = "Your technician will arrive on Thursday between eight and noon."
    audio = synth.synthesize(text, rate)
    heard = transcriber.transcribe(audio, sample_rate=rate).text
    assert wer(text.replace("eight", "8"), heard.replace("eight", "8")) <= 0.25, heard


async def test_stream_starts_before_the_text_is_complete(synth: Synthesizer) -> None:
    fed: list[float] = []
    got: list[float] = []

    async def tokens() -> AsyncIterator[str]:
        for word in "Sure. Moving your service costs forty-nine dollars. The fee is waived on contract.".split():
            fed.append(time.perf_counter())
            await asyncio.sleep(0.05)
            yield word + " "

    chunks = []
    async for chunk in synth.stream(tokens(), 16000):
        got.append(time.perf_counter())
        chunks.append(chunk)
    assert [c.text for c in chunks] == ["Sure.", "Moving your service costs forty-nine dollars.",
                                        "The fee is waived on contract."]
    assert chunks[0].is_first and not chunks[1].is_first and chunks[0].rate == 16000
    assert got[0] < fed[-1]  # first audio before the last word arrived


async def test_stream_cancels(synth: Synthesizer) -> None:
    async def endless() -> AsyncIterator[str]:
        while True:
            await asyncio.sleep(0.01)
            yield "More words here. "

    stream = synth.stream(endless(), 8000)
    first = await stream.__anext__()
    assert first.samples.size
    await stream.aclose()  # barge-in: stops without error


async def test_prompt_cache(tmp_path: Path, synth: Synthesizer) -> None:
    cached = Synthesizer(cache_dir=tmp_path, backend=synth.backend)
    a = await cached.prompt("Please hold.", 8000)
    files = list((tmp_path / "prompts").glob("*.npy"))
    assert len(files) == 1
    again = Synthesizer(cache_dir=tmp_path, backend=synth.backend)
    t0 = time.perf_counter()
    b = await again.prompt("Please hold.", 8000)
    assert time.perf_counter() - t0 < 0.05 and np.array_equal(a, b)


def test_voice_errors(tmp_path: Path) -> None:
    with pytest.raises(VoiceNotFoundError, match="only 'heart' ships"):
        load_voice("hibari:emma")
    with pytest.raises(VoiceNotFoundError, match="unknown hibari voice"):
        load_voice("hibari:nobody")
    with pytest.raises(VoiceNotFoundError, match="unknown voice"):
        load_voice("festival")
    with pytest.raises(BackendUnavailableError, match=r"voice-agent\[coqui\]"):
        load_voice("coqui:tts_models/en/ljspeech/vits")
    with pytest.raises(BackendUnavailableError, match=r"voice-agent\[piper\]"):
        load_voice(f"piper:{tmp_path / 'voice.onnx'}")
