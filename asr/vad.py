"""Voice activity detection over whole buffers: Silero (ONNX, default) or WebRTC VAD."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.errors import AsrError


@dataclass(frozen=True)
class SpeechRegion:
    """A span of speech in samples at 16 kHz."""

    start: int
    end: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return (self.end - self.start) / SAMPLE_RATE


class SpeechDetector(Protocol):
    """Finds speech in 16 kHz float32 mono audio."""

    name: str

    def regions(self, audio: np.ndarray) -> list[SpeechRegion]:
        """Speech spans in the buffer, in order, non-overlapping."""
        ...


@dataclass
class VadSettings:
    """Tuning shared by both detectors."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 500
    pad_ms: int = 200
    max_speech_s: float = 28.0  # fits one Whisper window


class SileroVad:
    """Silero VAD v6 (the ONNX model shipped inside faster-whisper)."""

    name = "silero"

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        from faster_whisper.vad import get_vad_model

        get_vad_model()  # load once now so errors surface at start-up

    def regions(self, audio: np.ndarray) -> list[SpeechRegion]:
        """Speech spans found by Silero."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        s = self.settings
        if audio.size < SAMPLE_RATE // 10:
            return []
        opts = VadOptions(
            threshold=s.threshold,
            min_speech_duration_ms=s.min_speech_ms,
            min_silence_duration_ms=s.min_silence_ms,
            speech_pad_ms=s.pad_ms,
            max_speech_duration_s=s.max_speech_s,
        )
        found = get_speech_timestamps(np.ascontiguousarray(audio, dtype=np.float32), opts)
        return [SpeechRegion(int(r["start"]), int(r["end"])) for r in found]


class WebrtcVad:
    """Google WebRTC VAD (webrtcvad-wheels) with hangover smoothing."""

    name = "webrtc"
    frame = 480  # 30 ms at 16 kHz

    def __init__(self, settings: VadSettings | None = None, aggressiveness: int = 2) -> None:
        self.settings = settings or VadSettings()
        try:
            import webrtcvad
        except ImportError:
            raise AsrError("webrtcvad is not installed: pip install webrtcvad-wheels") from None
        self._vad = webrtcvad.Vad(aggressiveness)

    def regions(self, audio: np.ndarray) -> list[SpeechRegion]:
        """Speech spans found by WebRTC VAD, smoothed over 300 ms."""
        s = self.settings
        n = len(audio) // self.frame
        if n == 0:
            return []
        pcm = (np.clip(audio[: n * self.frame], -1, 1) * 32767).astype("<i2")
        voiced = np.array(
            [self._vad.is_speech(pcm[i * self.frame : (i + 1) * self.frame].tobytes(), SAMPLE_RATE)
             for i in range(n)],
            dtype=bool,
        )
        # A frame counts as speech when most of its 300 ms neighbourhood is voiced.
        k = 10
        smooth = np.convolve(voiced.astype(float), np.ones(k) / k, mode="same") >= 0.5
        return _runs_to_regions(smooth, self.frame, s, len(audio))


def _runs_to_regions(
    flags: np.ndarray, hop: int, s: VadSettings, total: int
) -> list[SpeechRegion]:
    out: list[SpeechRegion] = []
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    spans = [(int(a) * hop, int(b) * hop) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    min_gap = s.min_silence_ms * SAMPLE_RATE // 1000
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a - merged[-1][1] < min_gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    pad = s.pad_ms * SAMPLE_RATE // 1000
    max_len = int(s.max_speech_s * SAMPLE_RATE)
    for a, b in merged:
        if b - a < s.min_speech_ms * SAMPLE_RATE // 1000:
            continue
        a, b = max(0, a - pad), min(total, b + pad)
        while b - a > max_len:
            out.append(SpeechRegion(a, a + max_len))
            a += max_len
        out.append(SpeechRegion(a, b))
    return out


def make_detector(name: str, settings: VadSettings | None = None) -> SpeechDetector:
    """A detector by name: ``silero`` (default) or ``webrtc``."""
    if name == "silero":
        return SileroVad(settings)
    if name == "webrtc":
        return WebrtcVad(settings)
    raise AsrError(f"unknown VAD {name!r}: choose silero or webrtc")
