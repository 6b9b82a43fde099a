"""Decoding: every supported format, bounded blocks, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.audio import as_channels, load_audio, probe, resample, stream_decode
from asr.errors import AudioDecodeError

Gen = tuple[Path, dict[str, Any]]


@pytest.mark.parametrize(
    "name",
    ["utt_bill.wav", "utt_bill_ulaw8k.wav", "utt_bill_alaw8k.wav", "utt_bill.mp3", "utt_bill.ogg",
     "utt_bill.m4a", "utt_bill_24bit.flac", "utt_bill_float44k.wav"],
)
def test_formats_decode_to_16k(generated: Gen, name: str) -> None:
    audio = load_audio(generated[0] / name)
    assert audio.dtype == np.float32 and audio.shape[0] == 1
    assert 2.8 < audio.shape[1] / 16000 < 3.8
    assert 0.2 < float(np.abs(audio).max()) <= 1.0


def test_stereo_keeps_channels(generated: Gen) -> None:
    audio = load_audio(generated[0] / "stereo_call_ulaw8k.wav")
    assert audio.shape[0] == 2
    # Caller (left) speaks first at ~4 s, the agent (right) at 0.5 s: channels differ.
    assert np.abs(audio[1, : 16000 * 3]).max() > 0.1
    assert np.abs(audio[0, : 16000 * 3]).max() < 0.01


def test_stream_decode_blocks_are_bounded(generated: Gen) -> None:
    blocks = list(stream_decode(generated[0] / "gaps.wav", block_seconds=2.0))
    assert all(b.shape[1] <= 32000 for b in blocks)
    assert len(blocks) >= 12
    whole = load_audio(generated[0] / "gaps.wav")
    assert np.allclose(np.concatenate(blocks, axis=1), whole)


def test_probe(generated: Gen) -> None:
    info = probe(generated[0] / "utt_bill_ulaw8k.wav")
    assert (info.codec, info.channels, info.sample_rate) == ("pcm_mulaw", 1, 8000)
    assert info.duration is not None and 3.0 < info.duration < 4.0


@pytest.mark.parametrize(
    ("name", "reason"),
    [("empty.wav", "empty"), ("corrupt.wav", "not a readable audio file"),
     ("not_audio.mp3", "not a readable audio file"), ("truncated.flac", "truncated"),
     ("missing.wav", "not found")],
)
def test_bad_files_raise_clear_errors(generated: Gen, name: str, reason: str) -> None:
    with pytest.raises(AudioDecodeError) as err:
        load_audio(generated[0] / name)
    assert reason in str(err.value)
    assert name in str(err.value)


def test_as_channels_and_resample() -> None:
    mono = np.zeros(800, dtype=np.int16)
    assert as_channels(mono).shape == (1, 800)
    assert as_channels(np.zeros((800, 2), np.float32)).shape == (2, 800)
    tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
    up = resample(tone, 8000, 16000)
    assert up.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(up))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1
