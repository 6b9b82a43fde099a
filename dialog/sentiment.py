"""Caller sentiment per turn: MiniLM embeddings plus a small trained softmax head shipped in the package."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dialog.embeddings import Embedder, shared_embedder
from dialog.errors import ModelMissingError

LABELS = ("negative", "neutral", "positive")
DATA_DIR = Path(__file__).resolve().parent / "data"
HEAD_PATH = DATA_DIR / "sentiment_head.npz"
DATASET_PATH = DATA_DIR / "sentiment_utterances.yaml"


_CLAUSE = re.compile(r"[,.;:!?]+|\b(?:but|and|because)\b", re.IGNORECASE)


def clauses(text: str) -> list[str]:
    """The clauses of an utterance with three words or more; empty when it has only one."""
    parts = [p.strip() for p in _CLAUSE.split(text) if len(p.split()) >= 3]
    return parts if len(parts) > 1 else []


@dataclass(frozen=True)
class Sentiment:
    """One caller turn's sentiment: the label, its probability, and all probabilities."""

    label: str
    score: float
    probs: dict[str, float] = field(default_factory=dict)

    @property
    def valence(self) -> float:
        """-1 (surely negative) .. +1 (surely positive)."""
        return self.probs.get("positive", 0.0) - self.probs.get("negative", 0.0)

    def as_dict(self) -> dict[str, object]:
        """{label, score} for JSON output."""
        return {"label": self.label, "score": round(self.score, 4)}


@dataclass
class SentimentHead:
    """A linear softmax classifier over 384-dim sentence embeddings."""

    weights: np.ndarray  # (classes, 384)
    bias: np.ndarray  # (classes,)
    labels: tuple[str, ...] = LABELS
    meta: dict[str, object] = field(default_factory=dict)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, classes)."""
        logits = embeddings @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def save(self, path: Path) -> None:
        """Write the head as .npz (a few kilobytes)."""
        np.savez(path, weights=self.weights.astype(np.float32), bias=self.bias.astype(np.float32),
                 labels=np.array(self.labels), meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: Path) -> SentimentHead:
        """Read a head written by save()."""
        if not path.is_file():
            raise ModelMissingError(
                f"sentiment head {path} is missing: run `python -m dialog.sentiment_train` to train it"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(np.asarray(data["weights"], dtype=np.float32), np.asarray(data["bias"], dtype=np.float32),
                           tuple(str(x) for x in data["labels"]), json.loads(str(data["meta"])))
        except (OSError, KeyError, ValueError) as exc:
            raise ModelMissingError(f"sentiment head {path} is unreadable ({exc}): retrain it") from None


class SentimentAnalyzer:
    """`SentimentAnalyzer().analyze(text)` -> Sentiment with .label and .score."""

    def __init__(self, head_path: Path | str | None = None, embedder: Embedder | None = None,
                 head: SentimentHead | None = None) -> None:
        self.head_path = Path(head_path) if head_path else HEAD_PATH
        self.embedder = embedder or shared_embedder()
        self._head: SentimentHead | None = head  # given: a freshly trained head, not read from head_path
        self._lock = threading.Lock()

    @property
    def head(self) -> SentimentHead:
        """The classifier head, loaded on first use."""
        with self._lock:
            if self._head is None:
                self._head = SentimentHead.load(self.head_path)
            return self._head

    def load(self) -> None:
        """Load the embedder and the head now."""
        _ = self.head
        self.embedder.load()

    def analyze(self, text: str) -> Sentiment:
        """The sentiment of one utterance; empty text is neutral."""
        return self.analyze_many([text])[0]

    def analyze_many(self, texts: list[str]) -> list[Sentiment]:
        """Sentiments of many utterances in one batch."""
        out: list[Sentiment | None] = [None] * len(texts)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if todo:
            batch: list[str] = []
            spans: list[tuple[int, int, int]] = []  # (text index, first row, rows)
            for i in todo:
                parts = [texts[i], *clauses(texts[i])]
                spans.append((i, len(batch), len(parts)))
                batch.extend(parts)
            probs = self.head.probabilities(self.embedder.encode(batch))
            for i, first, rows in spans:
                row = probs[first]
                if rows > 1:
                    # feeling often sits in one clause ("I'm fed up, I restarted it ten times"): weigh the most
                    # emotional clause as much as the whole utterance, which mean pooling would dilute
                    clause_probs = probs[first + 1 : first + rows]
                    calm = self.head.labels.index("neutral")
                    row = (row + clause_probs[int(np.argmax(1.0 - clause_probs[:, calm]))]) / 2
                out[i] = self._from_probs(row)
        neutral = Sentiment("neutral", 1.0, {label: float(label == "neutral") for label in self.head.labels})
        return [s if s is not None else neutral for s in out]

    def from_embedding(self, embedding: np.ndarray) -> Sentiment:
        """Sentiment of an utterance already embedded (the KB query embedding is reused)."""
        return self._from_probs(self.head.probabilities(embedding[None, :])[0])

    def _from_probs(self, row: np.ndarray) -> Sentiment:
        labels = self.head.labels
        best = int(np.argmax(row))
        probs = {label: float(p) for label, p in zip(labels, row, strict=True)}
        return Sentiment(labels[best], float(row[best]), probs)
