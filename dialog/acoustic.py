"""Acoustic cues from the caller's audio: loudness, pitch variability and speaking rate against their own baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FRAME_S = 0.032
HOP_S = 0.016


@dataclass(frozen=True)
class AcousticFeatures:
    """Per-turn measurements; NaN-free (0 when there was nothing to measure)."""

    rms_db: float  # loudness of the voiced part, dBFS
    pitch_hz: float  # median F0 of voiced frames
    pitch_std_st: float  # F0 variability in semitones
    speech_rate: float  # energy peaks (syllable nuclei) per second of speech
    voiced_ratio: float
    duration_s: float


def _frames(audio: np.ndarray, rate: int) -> np.ndarray:
    size = int(FRAME_S * rate)
    hop = int(HOP_S * rate)
    if len(audio) < size:
        return np.zeros((0, size), dtype=np.float32)
    count = 1 + (len(audio) - size) // hop
    idx = np.arange(size)[None, :] + hop * np.arange(count)[:, None]
    return audio[idx]


def _pitch(frame: np.ndarray, rate: int, fmin: float = 70.0, fmax: float = 400.0) -> float:
    """F0 by normalised autocorrelation; 0 when the frame is not periodic enough."""
    x = frame - frame.mean()
    n = len(x)
    spec = np.fft.rfft(x * np.hanning(n), 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:n]
    if ac[0] <= 0:
        return 0.0
    ac = ac / ac[0]
    lo, hi = int(rate / fmax), min(int(rate / fmin), n - 1)
    if hi <= lo:
        return 0.0
    lag = lo + int(np.argmax(ac[lo:hi]))
    return rate / lag if ac[lag] > 0.45 else 0.0


def extract_features(audio: np.ndarray, rate: int) -> AcousticFeatures:
    """Loudness, pitch and rate of one caller turn (float32 mono at any sample rate)."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration = len(x) / rate if rate else 0.0
    frames = _frames(x, rate)
    if len(frames) == 0:
        return AcousticFeatures(-100.0, 0.0, 0.0, 0.0, 0.0, duration)
    energy = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-10
    db = 20 * np.log10(energy)
    # speech frames: within 30 dB of the loudest, and above an absolute floor
    active = (db > db.max() - 30) & (db > -60)
    if not active.any():
        return AcousticFeatures(float(db.mean()), 0.0, 0.0, 0.0, 0.0, duration)
    rms_db = float(10 * np.log10(np.mean(energy[active] ** 2)))
    pitches = np.array([_pitch(f, rate) if a else 0.0 for f, a in zip(frames, active, strict=True)])
    voiced = pitches > 0
    if voiced.sum() >= 3:
        f0 = pitches[voiced]
        semis = 12 * np.log2(f0 / np.median(f0))
        pitch_hz, pitch_std = float(np.median(f0)), float(np.std(semis))
    else:
        pitch_hz, pitch_std = 0.0, 0.0
    # syllable nuclei: peaks of the smoothed loudness envelope that stand out from their surroundings
    env = np.convolve(db, np.ones(5) / 5, mode="same")
    peaks = 0
    for i in range(1, len(env) - 1):
        if active[i] and env[i] >= env[i - 1] and env[i] > env[i + 1]:
            window = env[max(0, i - 8) : i + 9]
            if env[i] - window.min() > 4.0:
                peaks += 1
    speech_s = max(active.sum() * HOP_S, 1e-6)
    return AcousticFeatures(rms_db, pitch_hz, pitch_std, float(peaks / speech_s), float(voiced.mean()), duration)


@dataclass
class _Running:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def std(self, floor: float) -> float:
        return max(math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0, floor)


# (feature, weight, smallest credible spread): louder, more varied pitch, faster speech = more aroused
_WEIGHTS = (("rms_db", 0.5, 3.0), ("pitch_std_st", 0.3, 0.8), ("speech_rate", 0.2, 0.6))


@dataclass
class ArousalTracker:
    """Arousal per turn in -1..1 relative to this caller's earlier turns (0 until there is a baseline)."""

    stats: dict[str, _Running] = field(default_factory=lambda: {name: _Running() for name, _, _ in _WEIGHTS})

    def update(self, features: AcousticFeatures) -> float:
        """Arousal of this turn against the baseline so far, then fold the turn into the baseline."""
        if features.voiced_ratio <= 0 and features.rms_db <= -99:
            return 0.0
        z = 0.0
        have_baseline = self.stats["rms_db"].n > 0
        for name, weight, floor in _WEIGHTS:
            run = self.stats[name]
            value = float(getattr(features, name))
            if have_baseline:
                z += weight * (value - run.mean) / run.std(floor)
            run.add(value)
        return float(math.tanh(z / 2)) if have_baseline else 0.0

    def arousal(self, audio: np.ndarray, rate: int) -> tuple[float, AcousticFeatures]:
        """Measure a turn's audio and return (arousal, features)."""
        features = extract_features(audio, rate)
        return self.update(features), features
