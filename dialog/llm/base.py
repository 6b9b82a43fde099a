"""What every generation backend offers: streamed text for a list of chat messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


@dataclass
class GenerationStats:
    """Timings of the last generation, for logs and the benchmark."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    first_token_s: float = 0.0  # from the call to the first text chunk
    total_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        """Decode speed after the first token."""
        decode = self.total_s - self.first_token_s
        return (self.new_tokens - 1) / decode if self.new_tokens > 1 and decode > 0 else 0.0


class Generator(Protocol):
    """A chat model that streams its reply."""

    name: str
    last_stats: GenerationStats

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0) -> AsyncIterator[str]:
        """Reply text in small chunks as it is generated; stops early when the consumer stops."""
        ...

    def load(self) -> None:
        """Load weights or check the server now rather than on the first call."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...
