"""Sentence splitting of streamed text, resampling and framing."""

from __future__ import annotations

import numpy as np

from tts.audio import frames, resample, trim_silence
from tts.sentences import SentenceSplitter


def feed_all(text: str, step: int = 3) -> list[str]:
    s = SentenceSplitter()
    out: list[str] = []
    for i in range(0, len(text), step):
        out += s.feed(text[i : i + step])
    return out + s.flush()


def test_sentences_with_abbreviations_and_decimals() -> None:
    text = "Dr. Smith said it costs 3.5 dollars, e.g. for a month. Call us at 9 a.m. tomorrow! Thanks"
    # The first sentence is long enough to be cut at its comma (first audio sooner).
    assert feed_all(text) == ["Dr. Smith said it costs 3.5 dollars,", "e.g. for a month.",
                              "Call us at 9 a.m. tomorrow!", "Thanks"]


def test_long_first_sentence_is_cut_at_a_clause() -> None:
    out = feed_all("Sure, I can help with that today, no problem at all. Second one.")
    assert out == ["Sure, I can help with that today,", "no problem at all.", "Second one."]


def test_sentence_is_emitted_before_the_text_ends() -> None:
    s = SentenceSplitter()
    assert s.feed("Hello there. How") == ["Hello there."]
    assert s.feed(" are you") == []
    assert s.flush() == ["How are you"]


def test_ellipsis_and_runaway_text() -> None:
    assert feed_all("Well... maybe. ") == ["Well...", "maybe."]
    words = " ".join(["word"] * 40)
    out = feed_all(words)
    assert len(out) >= 2 and all(len(x.split()) <= 31 for x in out)


def test_resample_keeps_frequency_and_length() -> None:
    tone = np.sin(2 * np.pi * 440 * np.arange(24000) / 24000).astype(np.float32)
    for rate in (8000, 16000, 48000):
        out = resample(tone, 24000, rate)
        assert len(out) == rate
        assert abs(int(np.argmax(np.abs(np.fft.rfft(out)))) - 440) <= 1


def test_frames_and_trim() -> None:
    audio = np.concatenate([np.zeros(4000, np.float32), np.full(1000, 0.5, np.float32), np.zeros(4000, np.float32)])
    trimmed = trim_silence(audio, 8000, keep_ms=10, tail_ms=100)
    assert len(trimmed) == 80 + 1000 + 800
    fs = frames(np.ones(330, np.float32), 8000)
    assert [len(f) for f in fs] == [160, 160, 160] and fs[-1][10] == 0.0
    assert frames(np.ones(160, np.float32), 8000, dtype="int16")[0].dtype == np.int16
