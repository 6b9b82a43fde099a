"""Errors raised by the TTS package; each says what was wrong and what to do."""

from __future__ import annotations


class TtsError(Exception):
    """Base class for every TTS error shown to users."""


class VoiceNotFoundError(TtsError):
    """A voice name or model path does not resolve to weights on this machine."""


class BackendUnavailableError(TtsError):
    """An optional TTS backend's package is not installed."""
