"""The small interfaces a call session needs from the dialog brain and the voice.

``voice_agent`` adapts the ``dialog`` and ``tts`` packages to these; tests can
pass fakes. A session never knows whether a port is in-process or remote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class TurnInput:
    """What the caller said (or pressed) in one turn."""

    text: str
    arousal: float | None = None  # acoustic cue against the caller's own baseline
    dtmf: str | None = None
    audio: np.ndarray | None = None  # 16 kHz caller speech, for acoustic cues


@dataclass
class TurnOutcome:
    """What the brain decided once the reply was generated."""

    sentiment: str = "neutral"
    sentiment_score: float = 0.0
    mood: float = 0.0
    intent: str = ""
    escalate: bool = False
    reason: str = ""
    summary: str = ""
    hangup: bool = False
    action: str = ""  # what the brain did: answer, clarify, not_found, escalate, smalltalk...
    extra: dict[str, object] = field(default_factory=dict)


class Reply(Protocol):
    """A reply being generated: text chunks as they come, then the decision.

    A reply may also have ``async aclose()``: the session calls it when the caller interrupts, so
    that generation stops at once instead of when the stream is garbage-collected.
    """

    def stream(self) -> AsyncIterator[str]:
        """Reply text in chunks (tokens or sentences)."""
        ...

    async def outcome(self) -> TurnOutcome:
        """The decision for this turn; valid once the stream is exhausted."""
        ...


class Brain(Protocol):
    """Per-call dialog state."""

    def greeting(self) -> str:
        """What the agent says when it answers."""
        ...

    async def respond(self, turn: TurnInput) -> Reply:
        """Start a reply to the caller's turn."""
        ...

    def retract(self) -> None:
        """Forget the last turn (the caller kept talking: it will be merged with the next)."""
        ...


@dataclass
class Spoken:
    """One piece of a streamed reply's audio and the text it says (so the session knows when the answer plays)."""

    audio: np.ndarray  # float32 at the rate asked for
    text: str


class Voice(Protocol):
    """Text to speech shared by every call."""

    def speak(self, chunks: AsyncIterator[str], rate: int) -> AsyncIterator[np.ndarray | Spoken]:
        """Audio (float32 at ``rate``) sentence by sentence as the text streams in; ``Spoken`` says its text."""
        ...

    async def prompt(self, text: str, rate: int) -> np.ndarray:
        """A fixed prompt (greeting, hold, transfer), cached."""
        ...
