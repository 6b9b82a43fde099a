"""Voice registry and backends: hibari (default, shipped), Coqui TTS and Piper (optional extras).

A voice name is ``hibari`` (the "heart" voice inside the hibari-tts wheel),
``hibari:<voice>`` (another hibari voice already in its cache),
``coqui:<model name or directory>`` or ``piper:<path to voice .onnx>``.
Nothing is downloaded: a voice that is not on disk is a clear error.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from tts.errors import BackendUnavailableError, VoiceNotFoundError

DEFAULT_VOICE = "hibari"


class Backend(Protocol):
    """Synthesizes one sentence at the backend's own rate."""

    name: str
    rate: int

    def synthesize(self, text: str) -> np.ndarray:
        """Float32 mono audio at ``rate``."""
        ...


class HibariBackend:
    """Kokoro-82M distilled voices through hibari (ONNX, 24 kHz)."""

    rate = 24000

    def __init__(self, voice: str = "heart", threads: int = 1) -> None:
        try:
            import hibari
            from hibari.voices import VOICES, voice_path
        except ImportError:
            raise BackendUnavailableError("hibari-tts is not installed: pip install hibari-tts") from None
        if voice not in VOICES:
            raise VoiceNotFoundError(f"unknown hibari voice {voice!r}; known: {', '.join(VOICES)}")
        try:
            path = voice_path(voice, download_missing=False)
        except (OSError, ValueError, RuntimeError):
            path = None
        if not path or not Path(path).exists():
            raise VoiceNotFoundError(
                f"hibari voice {voice!r} is not on this machine (only 'heart' ships in the package); "
                "use voice 'hibari', or copy the voice file into hibari's cache (HIBARI_HOME)")
        self.name = f"hibari:{voice}"
        self._tts = hibari.Hibari(voice=voice, threads=threads)
        self._lock = threading.Lock()  # one ONNX session shared by every call

    def synthesize(self, text: str) -> np.ndarray:
        """Audio for one sentence."""
        with self._lock:
            audio = self._tts(text)
        return np.asarray(audio, dtype=np.float32).reshape(-1)


class CoquiBackend:
    """Coqui TTS models (``pip install 'voice-agent[coqui]'``), from a model name or a local directory."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        try:
            from TTS.api import TTS
        except ImportError:
            raise BackendUnavailableError(
                "the Coqui backend needs the coqui-tts package: pip install 'voice-agent[coqui]'") from None
        self.name = f"coqui:{model}"
        path = Path(model).expanduser()
        try:
            if path.is_dir():
                config = next(iter(sorted(path.glob("config*.json"))), None)
                if config is None:
                    raise VoiceNotFoundError(f"{path} has no config.json: not a Coqui model directory")
                self._tts = TTS(model_path=str(path), config_path=str(config)).to(device)
            else:
                self._tts = TTS(model).to(device)
        except (OSError, KeyError, ValueError) as exc:
            raise VoiceNotFoundError(f"cannot load Coqui model {model!r}: {exc}") from None
        self.rate = int(self._tts.synthesizer.output_sample_rate)
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> np.ndarray:
        """Audio for one sentence."""
        with self._lock:
            audio = self._tts.tts(text)
        return np.asarray(audio, dtype=np.float32).reshape(-1)


class PiperBackend:
    """Piper voices (GPL; ``pip install 'voice-agent[piper]'``) from a local ``.onnx`` voice file."""

    def __init__(self, model: str) -> None:
        try:
            from piper import PiperVoice
        except ImportError:
            raise BackendUnavailableError(
                "the Piper backend needs the piper-tts package: pip install 'voice-agent[piper]'") from None
        path = Path(model).expanduser()
        if not path.exists() or path.suffix != ".onnx":
            raise VoiceNotFoundError(f"Piper voice {model!r} not found: give the path of a voice .onnx file "
                                     "(its .onnx.json must sit beside it)")
        self.name = f"piper:{path.stem}"
        self._voice = PiperVoice.load(str(path))
        self.rate = int(self._voice.config.sample_rate)
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> np.ndarray:
        """Audio for one sentence."""
        with self._lock:
            chunks = [np.asarray(c.audio_float_array, dtype=np.float32) for c in self._voice.synthesize(text)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def load_voice(name: str = DEFAULT_VOICE, device: str = "cpu") -> Backend:
    """A backend for a voice name (see the module docstring)."""
    kind, _, arg = name.partition(":")
    if kind == "hibari":
        return HibariBackend(arg or "heart")
    if kind == "coqui" and arg:
        return CoquiBackend(arg, device)
    if kind == "piper" and arg:
        return PiperBackend(arg)
    raise VoiceNotFoundError(
        f"unknown voice {name!r}: use 'hibari' (default), 'hibari:<voice>', 'coqui:<model>' or 'piper:<voice.onnx>'")
