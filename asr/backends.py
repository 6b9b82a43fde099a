"""Whisper backends behind one interface: faster-whisper (default) and openai-whisper."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.errors import AsrError, BackendUnavailableError, ModelNotFoundError
from asr.models import ResolvedModel


@dataclass
class RawWord:
    """A word in window-relative seconds."""

    start: float
    end: float
    word: str
    probability: float


@dataclass
class RawSegment:
    """A decoded segment in seconds relative to the start of the audio passed in."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    words: list[RawWord] = field(default_factory=list)


@dataclass
class DecodeOptions:
    """Decoding options shared by the backends."""

    language: str | None = None
    beam_size: int = 5
    batch_size: int = 8
    word_timestamps: bool = True
    initial_prompt: str | None = None


class WhisperBackend(Protocol):
    """Decodes a list of <=30 s windows laid out in one buffer."""

    multilingual: bool

    def decode(
        self, audio: np.ndarray, windows: list[tuple[float, float]], options: DecodeOptions
    ) -> tuple[list[RawSegment], str]:
        """Segments (seconds in ``audio``) and the language used."""
        ...


def _check_device(device: str) -> str:
    if device == "auto":
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if device == "cuda":
        import ctranslate2

        if ctranslate2.get_cuda_device_count() == 0:
            raise AsrError("--device cuda: no CUDA device is visible to CTranslate2; use --device cpu")
    elif device != "cpu":
        raise AsrError(f"unknown device {device!r}: use cpu, cuda or auto")
    return device


class FasterWhisperBackend:
    """CTranslate2 Whisper through faster-whisper's batched pipeline."""

    def __init__(
        self,
        model: ResolvedModel,
        device: str = "cpu",
        compute_type: str = "",
        cpu_threads: int = 0,
        num_workers: int = 1,
    ) -> None:
        from faster_whisper import WhisperModel

        self.device = _check_device(device)
        self.compute_type = compute_type or ("float16" if self.device == "cuda" else "int8")
        try:
            self.model = WhisperModel(
                model.path,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=cpu_threads,
                num_workers=max(1, num_workers),
                local_files_only=model.source != "hub",
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelNotFoundError(f"cannot load Whisper model {model.name} from {model.path}: {exc}") from None
        self.multilingual = bool(self.model.model.is_multilingual)
        self._local = threading.local()

    def _pipeline(self) -> Any:
        # The pipeline keeps per-call state (last speech timestamp): one per thread.
        pipe = getattr(self._local, "pipeline", None)
        if pipe is None:
            from faster_whisper import BatchedInferencePipeline

            pipe = BatchedInferencePipeline(self.model)
            self._local.pipeline = pipe
        return pipe

    def decode(
        self, audio: np.ndarray, windows: list[tuple[float, float]], options: DecodeOptions
    ) -> tuple[list[RawSegment], str]:
        """Decode every window in batches."""
        if not windows:
            return [], options.language or "en"
        language = options.language or (None if self.multilingual else "en")
        segments, info = self._pipeline().transcribe(
            audio,
            language=language,
            beam_size=options.beam_size,
            batch_size=options.batch_size,
            word_timestamps=options.word_timestamps,
            initial_prompt=options.initial_prompt,
            vad_filter=False,
            # Word timings split the windows into segments, so timestamp tokens are not needed.
            without_timestamps=options.word_timestamps,
            clip_timestamps=[{"start": a, "end": b} for a, b in windows],
        )
        out = [
            RawSegment(
                start=s.start, end=s.end, text=s.text, avg_logprob=s.avg_logprob,
                no_speech_prob=s.no_speech_prob, compression_ratio=s.compression_ratio,
                words=[RawWord(w.start, w.end, w.word, w.probability) for w in (s.words or [])],
            )
            for s in segments
        ]
        return out, info.language


class OpenAIWhisperBackend:
    """The reference openai-whisper implementation (PyTorch), for .pt checkpoints."""

    def __init__(self, model: ResolvedModel, device: str = "cpu") -> None:
        try:
            import whisper
        except ImportError:
            raise BackendUnavailableError(
                "the openai-whisper backend is not installed: pip install 'voice-agent[openai-whisper]'"
            ) from None
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise AsrError("--device cuda: torch sees no CUDA device; use --device cpu")
        self.device = device
        try:
            self.model = whisper.load_model(model.path, device=device, in_memory=True)
        except (OSError, RuntimeError, KeyError) as exc:
            raise ModelNotFoundError(f"cannot load openai-whisper checkpoint {model.path}: {exc}") from None
        self.multilingual = bool(self.model.is_multilingual)
        self._lock = threading.Lock()

    def decode(
        self, audio: np.ndarray, windows: list[tuple[float, float]], options: DecodeOptions
    ) -> tuple[list[RawSegment], str]:
        """Decode window by window (the reference implementation has no batching)."""
        language = options.language or (None if self.multilingual else "en")
        out: list[RawSegment] = []
        for a, b in windows:
            clip = audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
            with self._lock:
                result = self.model.transcribe(
                    clip,
                    language=language,
                    beam_size=options.beam_size if options.beam_size > 1 else None,
                    word_timestamps=options.word_timestamps,
                    condition_on_previous_text=False,
                    initial_prompt=options.initial_prompt,
                    fp16=self.device == "cuda",
                    temperature=0.0,
                    verbose=None,
                )
            language = language or str(result.get("language") or "en")
            for s in result["segments"]:
                words = [RawWord(a + w["start"], a + w["end"], w["word"], w["probability"])
                         for w in s.get("words", [])]
                out.append(RawSegment(
                    a + s["start"], a + s["end"], s["text"], s["avg_logprob"],
                    s["no_speech_prob"], s["compression_ratio"], words,
                ))
        return out, language or "en"


def load_backend(
    model: ResolvedModel, device: str, compute_type: str = "", cpu_threads: int = 0,
    num_workers: int = 1,
) -> WhisperBackend:
    """Instantiate the backend the resolved model needs."""
    if model.backend == "openai-whisper":
        return OpenAIWhisperBackend(model, device)
    return FasterWhisperBackend(model, device, compute_type, cpu_threads, num_workers)
