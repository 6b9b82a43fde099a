"""Audio helpers for the voice: silence trimming, resampling, 20 ms framing."""

from __future__ import annotations

from math import gcd

import numpy as np


def trim_silence(audio: np.ndarray, rate: int, threshold: float = 0.01, keep_ms: float = 10.0,
                 tail_ms: float = 120.0) -> np.ndarray:
    """Cut leading silence (keep ``keep_ms``) and trailing silence beyond ``tail_ms``."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio[:0]
    start = max(0, int(loud[0]) - int(rate * keep_ms / 1000))
    end = min(len(audio), int(loud[-1]) + 1 + int(rate * tail_ms / 1000))
    return audio[start:end]


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) of float32 mono audio."""
    if src == dst:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(src, dst)
    return resample_poly(audio, dst // g, src // g).astype(np.float32)


def frames(audio: np.ndarray, rate: int, ms: int = 20, dtype: str = "float32") -> list[np.ndarray]:
    """Split into frames of ``ms`` (the last one zero-padded); int16 when ``dtype='int16'``."""
    n = rate * ms // 1000
    if len(audio) % n:
        audio = np.concatenate([audio, np.zeros(n - len(audio) % n, np.float32)])
    out = audio.reshape(-1, n)
    if dtype == "int16":
        return list((np.clip(out, -1, 1) * 32767).astype(np.int16))
    return list(out.astype(np.float32))
