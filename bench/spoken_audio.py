"""Caller audio for the spoken evaluation: espeak-ng voices unlike the project's own, on two kinds of line.

Every render is deterministic for a given espeak-ng/sox version (espeak-ng has no randomness; sox runs
with ``-R``) and cached by content hash, so repeated bench runs and CI get the same audio.

Lines:
- ``16k``: 16 kHz 16-bit PCM, as a WebRTC or wideband caller.
- ``8k``: a phone line: band-limited to 300-3400 Hz, 8 kHz, G.711 mu-law encoded.

A faint seeded noise floor is added to the whole call before the line, as no real line is silent.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LINES = ("16k", "8k")
LINE_RATE = {"16k": 16000, "8k": 8000}
NOISE_LEVEL = 0.001  # a -60 dBFS noise floor: real lines are never digitally silent


class AudioError(RuntimeError):
    """espeak-ng or sox is missing or failed; the message names the command."""


@dataclass(frozen=True)
class CallerVoice:
    """One espeak-ng voice with its speaking rate (words per minute) and pitch (0-99)."""

    name: str
    speed: int = 160
    pitch: int = 50

    @property
    def label(self) -> str:
        """A short name for tables: voice@speed."""
        return f"{self.name}@{self.speed}"


# None of these is a voice of audio_fixtures/make_fixtures.py (en-us, en-gb, en-us+m3): a female US
# variant, a Received Pronunciation male variant, Caribbean and Scottish English, at varied rates.
VOICES: tuple[CallerVoice, ...] = (
    CallerVoice("en-us+f3", 165, 60),
    CallerVoice("en-gb-x-rp+m2", 150, 45),
    CallerVoice("en-029", 175, 50),
    CallerVoice("en-gb-scotland", 145, 40),
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise AudioError(f"{name} is not installed; run scripts/apt-deps.sh (apt-get install espeak-ng sox)")
    return path


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AudioError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")


def tool_versions() -> str:
    """espeak-ng and sox versions, part of the cache key (a new version speaks differently)."""
    out = []
    for cmd in (["espeak-ng", "--version"], ["sox", "--version"]):
        _tool(cmd[0])
        out.append(subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip())
    return " | ".join(out)


def render(text: str, voice: CallerVoice, cache_dir: Path) -> Path:
    """The caller saying ``text`` as a 16 kHz PCM WAV (cached), trimmed of leading/trailing silence."""
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    key = hashlib.sha256(f"{text}|{voice}|{tool_versions()}".encode()).hexdigest()[:20]
    out = cache_dir / f"{key}.wav"
    if out.exists():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw, part = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        _run([espeak, "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch), "-w", str(raw), text])
        # silence 1 0.02 0.1%: trim the start; reverse twice to trim the end; peak at -3 dBFS
        _run([sox, "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(part),
              "silence", "1", "0.02", "0.1%", "reverse", "silence", "1", "0.02", "0.1%", "reverse", "gain", "-n", "-3"])
        shutil.move(str(part), out)
    return out


def line_noise(samples: int, seed: str, level: float = NOISE_LEVEL) -> np.ndarray:
    """A faint white noise floor (std ``level``), seeded from ``seed`` so every run gets the same."""
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    return (rng.standard_normal(samples) * level).astype(np.float32)


def on_line(audio16: np.ndarray, line: str) -> np.ndarray:
    """A whole call's caller audio (16 kHz float32) as it arrives over ``line``, at the line's rate.

    The phone line is applied to the whole call, not utterance by utterance: filtering each clip and
    padding it with digital silence left edge transients that delayed the VAD's speech onset by a second.
    """
    if line not in LINES:
        raise AudioError(f"unknown line {line!r}: use one of {', '.join(LINES)}")
    if line == "16k":
        return audio16.astype(np.float32)
    from asr.audio import load_audio

    sox = _tool("sox")
    with tempfile.TemporaryDirectory() as tmp:
        wide, phone = Path(tmp) / "wide.wav", Path(tmp) / "phone.wav"
        write_wav(wide, audio16, 16000)
        _run([sox, "-R", str(wide), "-r", "8000", "-c", "1", "-e", "mu-law", "-b", "8", str(phone),
              "sinc", "300-3400"])
        out: np.ndarray = load_audio(phone, 8000)[0]
    return out


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """float32 mono as a 16-bit PCM WAV."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
