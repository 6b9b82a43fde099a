"""Errors raised by the ASR package; each message says what was wrong and what to do."""

from __future__ import annotations


class AsrError(Exception):
    """Base class for every ASR error shown to users."""


class AudioDecodeError(AsrError):
    """A file could not be decoded: missing, empty, corrupt, truncated or not audio."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ModelNotFoundError(AsrError):
    """A model name or path does not resolve to weights on this machine."""


class BackendUnavailableError(AsrError):
    """An optional backend's package is not installed."""
