"""In-band DTMF detection on real tone recordings; speech, music, noise and silence give no digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from telephony.goertzel import COLS, ROWS, DtmfDetector

NAMES = {**{str(d): str(d) for d in range(10)}, "star": "*", "pound": "#"}


def tone(low: float, high: float, seconds: float, rate: int = 8000, high_gain: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * low * t) + 0.2 * high_gain * np.sin(2 * np.pi * high * t)).astype(np.float32)


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio[:, 0], rate


@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_fixture_gives_its_digit_once(shared_fixtures: Path, name: str) -> None:
    audio, rate = read_mono(shared_fixtures / "dtmf" / f"dtmf-{name}.wav")
    assert rate == 8000
    assert DtmfDetector(rate).feed(audio) == [NAMES[name]]
    # Fed as the 20 ms frames an RTP leg delivers, and as int16.
    det = DtmfDetector(rate)
    digits = [d for i in range(0, len(audio), 160) for d in det.feed((audio[i : i + 160] * 32767).astype(np.int16))]
    assert digits == [NAMES[name]]


def test_fixture_sequence(shared_fixtures: Path) -> None:
    order = ["1", "2", "3", "pound", "star", "0", "0", "9"]
    audio = np.concatenate([read_mono(shared_fixtures / "dtmf" / f"dtmf-{n}.wav")[0] for n in order])
    assert DtmfDetector().feed(audio) == [NAMES[n] for n in order]


def test_wideband_rate() -> None:
    audio = tone(ROWS[2], COLS[1], 0.2, rate=16000)
    assert DtmfDetector(16000).feed(audio) == ["8"]


def test_short_blip_is_ignored() -> None:
    assert DtmfDetector().feed(tone(ROWS[0], COLS[0], 0.025)) == []
    assert DtmfDetector().feed(tone(ROWS[0], COLS[0], 0.08)) == ["1"]


def test_single_tone_quiet_tone_and_twist_are_rejected() -> None:
    t = np.arange(4000) / 8000
    assert DtmfDetector().feed((0.3 * np.sin(2 * np.pi * ROWS[1] * t)).astype(np.float32)) == []
    assert DtmfDetector().feed(tone(ROWS[1], COLS[1], 0.5) * 0.001) == []  # -60 dBFS
    assert DtmfDetector().feed(tone(ROWS[1], COLS[1], 0.5, high_gain=0.2)) == []  # 14 dB normal twist
    assert DtmfDetector().feed(tone(ROWS[1], COLS[1], 0.5, high_gain=3.0)) == []  # 9.5 dB reverse twist
    assert DtmfDetector().feed(tone(ROWS[1], COLS[1], 0.5, high_gain=0.5)) == ["5"]  # 6 dB is fine


def test_held_key_is_one_press_and_a_gap_makes_two() -> None:
    det = DtmfDetector()
    assert det.feed(tone(ROWS[3], COLS[2], 1.5)) == ["#"]
    gap = np.zeros(400, dtype=np.float32)
    assert det.feed(np.concatenate([gap, tone(ROWS[3], COLS[2], 0.1)])) == ["#"]


@pytest.mark.parametrize(
    "name",
    ["utt_bill_ulaw8k.wav", "utt_outage.wav", "caller_multiturn_ulaw8k.wav", "stereo_call.wav", "caller_noise.wav",
     "silence.wav", "white_noise.wav", "hold_music.wav"],
)
def test_speech_music_noise_silence_give_nothing(generated: tuple[Path, dict[str, Any]], name: str) -> None:
    audio, rate = read_mono(generated[0] / name)
    assert len(audio) > rate
    assert DtmfDetector(rate).feed(audio) == []


def test_real_speech_gives_nothing(shared_fixtures: Path) -> None:
    audio, rate = read_mono(shared_fixtures / "jfk.flac")
    assert DtmfDetector(rate).feed(audio) == []
