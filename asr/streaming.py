"""Real-time pieces: frame-by-frame Silero VAD, endpointing, and utterance recognition.

The call loop feeds 16 kHz audio as it arrives. ``StreamingVad`` gives a speech
probability per 32 ms chunk; ``Endpointer`` turns those into speech start,
pause and end-of-turn decisions (the required silence depends on how the
transcript so far ends); ``UtteranceRecognizer`` decodes a buffer of caller
speech for partial and final transcripts with a shared Whisper model.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends import _check_device
from asr.errors import ModelNotFoundError
from asr.models import resolve_model

CHUNK = 512  # Silero v6 works on 32 ms at 16 kHz
CONTEXT = 64


@lru_cache(maxsize=1)
def _silero_session() -> Any:
    import onnxruntime
    from faster_whisper.utils import get_assets_path

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    path = Path(get_assets_path()) / "silero_vad_v6.onnx"
    if not path.exists():
        raise ModelNotFoundError(f"Silero VAD model missing at {path}; reinstall faster-whisper")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"], sess_options=opts)


class StreamingVad:
    """Silero VAD with its recurrent state kept between calls (one per call)."""

    def __init__(self) -> None:
        self._session = _silero_session()
        self.reset()

    def reset(self) -> None:
        """Forget all state (a new call)."""
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def feed(self, audio: np.ndarray) -> list[float]:
        """Speech probability for every complete 32 ms chunk in ``audio`` (16 kHz float32)."""
        self._pending = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        probs: list[float] = []
        while len(self._pending) >= CHUNK:
            chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            x = np.concatenate([self._context, chunk])[np.newaxis, :]
            out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
            self._context = chunk[-CONTEXT:]
            probs.append(float(np.asarray(out).reshape(-1)[0]))
        return probs


class Event(Enum):
    """What the endpointer decided after a chunk."""

    NONE = "none"
    SPEECH_START = "speech_start"
    PAUSE = "pause"  # silence long enough to start work speculatively
    RESUME = "resume"  # speech again after a pause, before the turn ended
    TURN_END = "turn_end"


@dataclass
class EndpointSettings:
    """Silences (ms) that end a caller's turn."""

    start_threshold: float = 0.5
    end_threshold: float = 0.35
    min_speech_ms: int = 160
    silence_ms: int = 500  # the default end-of-turn silence
    complete_silence_ms: int = 300  # the transcript ends a sentence: answer sooner
    hesitant_silence_ms: int = 1000  # trailing "and", "so", "um": wait longer
    pause_ms: int = 100  # start speculative transcription after this much silence
    max_turn_s: float = 30.0


_HESITANT = re.compile(r"\b(and|so|but|or|because|um+|uh+|er+|like|then|the|a|to|my)\W*$", re.IGNORECASE)
_COMPLETE = re.compile(r"[.?!]\W*$")


def required_silence_ms(text: str, s: EndpointSettings) -> int:
    """How long a silence ends the turn, given the transcript heard so far."""
    text = text.strip()
    if not text:
        return s.silence_ms
    if _HESITANT.search(text):
        return s.hesitant_silence_ms
    if _COMPLETE.search(text):
        return s.complete_silence_ms
    return s.silence_ms


class Endpointer:
    """Turns per-chunk speech probabilities into turn events (one per call)."""

    chunk_ms = CHUNK * 1000 // SAMPLE_RATE

    def __init__(self, settings: EndpointSettings | None = None) -> None:
        self.s = settings or EndpointSettings()
        self.hint = ""
        self.reset()

    def reset(self) -> None:
        """Back to waiting for speech."""
        self.in_turn = False
        self.speech_ms = 0
        self.silence_ms = 0
        self.turn_ms = 0
        self.paused = False
        self._candidate_ms = 0
        self.hint = ""

    def feed(self, prob: float) -> Event:
        """Advance by one 32 ms chunk."""
        s = self.s
        if not self.in_turn:
            self._candidate_ms = self._candidate_ms + self.chunk_ms if prob >= s.start_threshold else 0
            if self._candidate_ms >= s.min_speech_ms:
                self.in_turn = True
                self.speech_ms = self._candidate_ms
                self.turn_ms = self._candidate_ms
                self.silence_ms = 0
                return Event.SPEECH_START
            return Event.NONE
        self.turn_ms += self.chunk_ms
        speaking = prob >= (s.end_threshold if self.silence_ms == 0 else s.start_threshold)
        if speaking:
            self.speech_ms += self.chunk_ms
            self.silence_ms = 0
            if self.paused:
                self.paused = False
                return Event.RESUME
            return Event.NONE
        self.silence_ms += self.chunk_ms
        if self.silence_ms >= required_silence_ms(self.hint, s) or self.turn_ms >= s.max_turn_s * 1000:
            self.in_turn = False
            self.paused = False
            self._candidate_ms = 0
            return Event.TURN_END
        if not self.paused and self.silence_ms >= s.pause_ms:
            self.paused = True
            return Event.PAUSE
        return Event.NONE


@dataclass
class Recognition:
    """Text of one utterance with the decoder's confidence."""

    text: str
    avg_logprob: float
    no_speech_prob: float


# Whisper's favourite inventions on breath, clicks and line noise.
_JUNK = re.compile(r"^\W*(thanks? (you )?for watching|you|bye|\.+|♪+|\[.*\]|\(.*\))\W*$", re.IGNORECASE)


class UtteranceRecognizer:
    """Decodes short buffers of caller speech; one instance (one model) serves every call."""

    def __init__(
        self,
        model: str = "whisper-tiny.en",
        device: str = "cpu",
        compute_type: str = "",
        cpu_threads: int = 0,
        num_workers: int = 2,
        cache_dir: Path | None = None,
        language: str | None = None,
        final_model: str = "",
    ) -> None:
        from faster_whisper import WhisperModel

        dev = _check_device(device)
        ctype = compute_type or ("float16" if dev == "cuda" else "int8")

        def load(name: str) -> Any:
            resolved = resolve_model(name, "faster-whisper", cache_dir)
            return WhisperModel(resolved.path, device=dev, compute_type=ctype, cpu_threads=cpu_threads,
                                num_workers=num_workers, local_files_only=resolved.source != "hub")

        self.model = load(model)
        self.model_name = model
        self.language = language or (None if self.model.model.is_multilingual else "en")
        # Finals (the text the dialog answers) may use a larger model; partials stay on the fast one.
        self.final_model_name = final_model if final_model and final_model != model else model
        self.final = load(final_model) if self.final_model_name != model else self.model
        # A multilingual final model follows the partial model's language: detection on a short
        # phone-line utterance is slow and often wrong.
        self.final_language = language or self.language or (None if self.final.model.is_multilingual else "en")
        self.prompt: str | None = None  # vocabulary hint as a sentence (knowledge-base topics)
        self.hotwords: str | None = None  # knowledge-base words (asr.hints.hotwords_from_vocabulary)
        self._lock = threading.Lock()

    def recognize(self, audio: np.ndarray, beam_size: int = 1) -> Recognition:
        """Transcribe 16 kHz float32 speech with the partial model (blocking: run it in an executor)."""
        return self._decode(self.model, self.language, audio, beam_size)

    def recognize_final(self, audio: np.ndarray, beam_size: int = 1) -> Recognition:
        """The end-of-turn transcript, with the final model (``final_model``; the partial one by default)."""
        return self._decode(self.final, self.final_language, audio, beam_size)

    def _decode(self, model: Any, language: str | None, audio: np.ndarray, beam_size: int) -> Recognition:
        if audio.size < SAMPLE_RATE // 10:
            return Recognition("", 0.0, 1.0)
        segments, _ = model.transcribe(
            audio.astype(np.float32, copy=False),
            language=language,
            beam_size=beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            temperature=0.0,
            initial_prompt=self.prompt,
            hotwords=self.hotwords or None,
        )
        kept = []
        logprob, no_speech = 0.0, 0.0
        for seg in segments:
            text = seg.text.strip()
            if not text or (seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0):
                continue
            if _JUNK.match(text) and seg.avg_logprob < -0.5:
                continue
            kept.append(text)
            logprob, no_speech = seg.avg_logprob, seg.no_speech_prob
        return Recognition(" ".join(kept), logprob, no_speech)
