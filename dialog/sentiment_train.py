"""Train the sentiment head: `python -m dialog.sentiment_train` (reproducible: fixed split, no randomness)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import yaml

from dialog.embeddings import Embedder
from dialog.sentiment import DATASET_PATH, HEAD_PATH, LABELS, SentimentAnalyzer, SentimentHead


def held_out(text: str) -> bool:
    """One utterance in five, chosen by a hash of its text, is kept for evaluation only."""
    return int(hashlib.sha1(text.encode()).hexdigest(), 16) % 5 == 0


def load_dataset(path: Path = DATASET_PATH) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test) lists of (text, label)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for label in LABELS:
        for text in data[label]:
            (test if held_out(str(text)) else train).append((str(text), label))
    return train, test


def fit(x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-3, steps: int = 3000,
        lr: float = 2.0) -> SentimentHead:
    """Softmax regression by full-batch gradient descent (deterministic), class-balanced."""
    n, d = x.shape
    w = np.zeros((classes, d), dtype=np.float64)
    b = np.zeros(classes, dtype=np.float64)
    onehot = np.eye(classes)[y]
    weight = (n / (classes * np.bincount(y, minlength=classes)))[y][:, None]
    for _ in range(steps):
        logits = x @ w.T + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * weight / n
        w -= lr * (g.T @ x + l2 * w)
        b -= lr * g.sum(axis=0)
    return SentimentHead(w.astype(np.float32), b.astype(np.float32), LABELS)


def evaluate(head: SentimentHead, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 of the head on whole-utterance embeddings."""
    return scores(head.probabilities(x).argmax(axis=1), y, len(head.labels))


def scores(pred: np.ndarray, y: np.ndarray, classes: int = len(LABELS)) -> dict[str, float]:
    """Accuracy and macro-F1 of predicted class indices."""
    f1s = []
    for c in range(classes):
        tp = float(np.sum((pred == c) & (y == c)))
        fp = float(np.sum((pred == c) & (y != c)))
        fn = float(np.sum((pred != c) & (y == c)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": float(np.mean(pred == y)), "macro_f1": float(np.mean(f1s))}


def main(argv: list[str] | None = None) -> int:
    """Train on the train split, report on the held-out split, write the head."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATASET_PATH)
    parser.add_argument("--out", type=Path, default=HEAD_PATH)
    args = parser.parse_args(argv)
    train, test = load_dataset(args.data)
    embedder = Embedder()
    index = {label: i for i, label in enumerate(LABELS)}
    x_train = embedder.encode([t for t, _ in train]).astype(np.float64)
    y_train = np.array([index[label] for _, label in train])
    x_test = embedder.encode([t for t, _ in test]).astype(np.float64)
    y_test = np.array([index[label] for _, label in test])
    head = fit(x_train, y_train, len(LABELS))
    train_scores = evaluate(head, x_train, y_train)
    test_scores = evaluate(head, x_test, y_test)
    analyzer = SentimentAnalyzer(args.out, embedder, head=head)  # the analyzer's clause pooling, as at run time
    pooled = np.array([LABELS.index(s.label) for s in analyzer.analyze_many([t for t, _ in test])])
    pooled_scores = scores(pooled, y_test)
    head.meta = {"train_size": len(train), "test_size": len(test), "embedder": embedder.name,
                 "dataset_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
                 "train": train_scores, "held_out": test_scores,
                 "held_out_pooled": pooled_scores}
    head.save(args.out)
    print(f"train {len(train)}: {train_scores}\nheld-out {len(test)}: {test_scores}\n"
          f"held-out with clause pooling: {pooled_scores}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
