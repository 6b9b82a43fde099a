"""Caller sentiment with the real MiniLM and the shipped head: held-out accuracy, API, reproducible training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dialog import ModelMissingError, SentimentAnalyzer
from dialog.embeddings import Embedder
from dialog.sentiment import HEAD_PATH, LABELS, SentimentHead
from dialog.sentiment_train import evaluate, fit, load_dataset, scores


def test_dataset_is_large_varied_and_split() -> None:
    train, test = load_dataset()
    assert len(train) + len(test) >= 400
    assert 0.15 < len(test) / (len(train) + len(test)) < 0.3
    assert {label for _, label in test} == set(LABELS)
    assert not {t for t, _ in train} & {t for t, _ in test}


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("This is ridiculous, I've called five times and nothing is fixed!", "negative"),
        ("I'm so angry about this bill", "negative"),
        ("What are your opening hours?", "neutral"),
        ("My account number is on the letter", "neutral"),
        ("Thank you so much, that fixed it", "positive"),
        ("Brilliant, you've been really helpful", "positive"),
    ],
)
def test_labels(analyzer: SentimentAnalyzer, text: str, label: str) -> None:
    s = analyzer.analyze(text)
    assert s.label == label
    assert 0.34 < s.score <= 1.0
    assert abs(sum(s.probs.values()) - 1.0) < 1e-5


def test_empty_text_is_neutral(analyzer: SentimentAnalyzer) -> None:
    assert analyzer.analyze("  ").label == "neutral"
    assert [s.label for s in analyzer.analyze_many(["", "thanks a lot"])] == ["neutral", "positive"]


def test_held_out_accuracy(analyzer: SentimentAnalyzer, embedder: Embedder) -> None:
    _, test = load_dataset()
    x = embedder.encode([t for t, _ in test])
    y = np.array([LABELS.index(label) for _, label in test])
    head_only = evaluate(analyzer.head, x, y)
    assert head_only["accuracy"] >= 0.85 and head_only["macro_f1"] >= 0.85, head_only
    pred = np.array([LABELS.index(s.label) for s in analyzer.analyze_many([t for t, _ in test])])
    as_used = scores(pred, y)
    assert as_used["accuracy"] >= 0.85 and as_used["macro_f1"] >= 0.85, as_used


def test_feeling_in_one_clause_is_not_diluted(analyzer: SentimentAnalyzer) -> None:
    assert analyzer.analyze("I'm fed up, I've restarted the router ten times and it still doesn't work.").label \
        == "negative"


def test_training_is_reproducible(embedder: Embedder) -> None:
    """Retraining on the train split gives the shipped head."""
    train, _ = load_dataset()
    x = embedder.encode([t for t, _ in train]).astype(np.float64)
    y = np.array([LABELS.index(label) for _, label in train])
    head = fit(x, y, len(LABELS))
    shipped = SentimentHead.load(HEAD_PATH)
    assert np.allclose(head.weights, shipped.weights, atol=1e-3)
    assert HEAD_PATH.stat().st_size < 64_000


def test_missing_head_is_a_clear_error(tmp_path: Path, embedder: Embedder) -> None:
    with pytest.raises(ModelMissingError, match=r"dialog\.sentiment_train"):
        SentimentAnalyzer(tmp_path / "missing.npz", embedder).analyze("hello")
