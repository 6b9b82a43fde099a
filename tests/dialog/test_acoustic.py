"""Acoustic cues: loudness, pitch variability, rate, and arousal against the caller's own baseline."""

from __future__ import annotations

import numpy as np

from dialog.acoustic import ArousalTracker, extract_features
from dialog.mood import MoodTracker

RATE = 16000


def voice(f0: float, amp: float, vibrato: float, syllables: float, seconds: float = 2.0) -> np.ndarray:
    """A voiced test signal: harmonics, pitch movement, syllable-rate loudness envelope."""
    t = np.arange(int(RATE * seconds)) / RATE
    freq = f0 * (1 + vibrato * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    env = 0.5 + 0.5 * np.sin(2 * np.pi * syllables * t)
    return (amp * env * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def test_features_measure_pitch_loudness_and_rate() -> None:
    f = extract_features(voice(120, 0.05, 0.02, 4), RATE)
    assert 110 < f.pitch_hz < 130
    assert -40 < f.rms_db < -20
    assert 3 < f.speech_rate < 6
    loud = extract_features(voice(180, 0.3, 0.15, 6), RATE)
    assert loud.rms_db > f.rms_db + 10 and loud.pitch_std_st > f.pitch_std_st


def test_arousal_is_relative_to_the_callers_baseline() -> None:
    tracker = ArousalTracker()
    assert tracker.arousal(voice(120, 0.05, 0.02, 4), RATE)[0] == 0.0  # no baseline yet
    calm = tracker.arousal(voice(122, 0.05, 0.03, 4), RATE)[0]
    assert abs(calm) < 0.3
    excited = tracker.arousal(voice(180, 0.3, 0.15, 6), RATE)[0]
    assert excited > 0.7
    # a naturally loud caller is not "aroused" for being loud: baseline is theirs
    loud_caller = ArousalTracker()
    loud_caller.arousal(voice(180, 0.3, 0.15, 6), RATE)
    assert abs(loud_caller.arousal(voice(180, 0.3, 0.15, 6), RATE)[0]) < 0.3


def test_silence_and_short_audio() -> None:
    assert extract_features(np.zeros(RATE, dtype=np.float32), RATE).voiced_ratio == 0.0
    assert extract_features(np.zeros(10, dtype=np.float32), RATE).duration_s < 0.01
    assert ArousalTracker().arousal(np.zeros(10, dtype=np.float32), RATE)[0] == 0.0


def test_mood_tracker() -> None:
    m = MoodTracker()
    m.update(-0.9)
    assert m.upset and m.describe() == "angry"
    m.update(0.9)
    m.update(0.9)
    assert not m.upset and m.negative_streak == 0
