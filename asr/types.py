"""Typed transcript objects returned by the transcriber."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Word:
    """One word with its time span (seconds from the start of the file)."""

    start: float
    end: float
    word: str
    probability: float


@dataclass
class Segment:
    """One stretch of speech by one speaker."""

    start: float
    end: float
    text: str
    speaker: str = "speaker"
    channel: int = 0
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The segment as the JSON output documents it."""
        data = asdict(self)
        data["start"] = round(self.start, 3)
        data["end"] = round(self.end, 3)
        data["avg_logprob"] = round(self.avg_logprob, 4)
        data["no_speech_prob"] = round(self.no_speech_prob, 4)
        data["words"] = [
            {"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word,
             "probability": round(w.probability, 4)}
            for w in self.words
        ]
        return data


@dataclass
class Transcript:
    """The transcript of one file or array."""

    file: str
    duration: float
    language: str
    model: str
    segments: list[Segment]
    channels: int = 1

    @property
    def text(self) -> str:
        """All segment texts in time order."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {
            "file": self.file,
            "duration": round(self.duration, 3),
            "language": self.language,
            "model": self.model,
            "channels": self.channels,
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
        }
