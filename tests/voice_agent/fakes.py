"""Fake brain and voice for session tests: deterministic, instant, no models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from voice_agent.ports import TurnInput, TurnOutcome


def tone(rate: int, seconds: float, freq: float = 220.0) -> np.ndarray:
    """A voiced-sounding test signal (harmonics with a syllable-rate envelope)."""
    t = np.arange(int(rate * seconds)) / rate
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    sig = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6))
    return (0.15 * env * sig).astype(np.float32)


class FakeReply:
    def __init__(self, text: str, outcome: TurnOutcome, token_delay: float) -> None:
        self.text = text
        self._outcome = outcome
        self.delay = token_delay

    async def stream(self) -> AsyncIterator[str]:
        for word in self.text.split():
            await asyncio.sleep(self.delay)
            yield word + " "

    async def outcome(self) -> TurnOutcome:
        return self._outcome


class FakeBrain:
    """Answers 'You said: ...'; escalates when the caller mentions a human or technician."""

    def __init__(self, token_delay: float = 0.01, answer_words: int = 0) -> None:
        self.turns: list[TurnInput] = []
        self.retracted = 0
        self.delay = token_delay
        self.answer_words = answer_words

    def greeting(self) -> str:
        return "Hello."

    async def respond(self, turn: TurnInput) -> FakeReply:
        self.turns.append(turn)
        escalate = any(w in turn.text.lower() for w in ("human", "technician"))
        text = f"You said {turn.text}" + (" and more" * self.answer_words)
        return FakeReply(text, TurnOutcome(escalate=escalate, reason="asked" if escalate else ""), self.delay)

    def retract(self) -> None:
        self.retracted += 1


class FakeVoice:
    """0.08 s of tone per word; prompts are 0.5 s."""

    async def speak(self, chunks: AsyncIterator[str], rate: int) -> AsyncIterator[np.ndarray]:
        async for chunk in chunks:
            yield tone(rate, 0.08 * max(1, len(chunk.split())))

    async def prompt(self, text: str, rate: int) -> np.ndarray:
        return tone(rate, 0.5, 300.0)
