"""Real models for the dialog tests, loaded once per session (MiniLM, the sentiment head, SmolLM2)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialog import Brain, DialogOptions, example_kb_dir
from dialog.embeddings import Embedder, shared_embedder
from dialog.kb import KnowledgeBase
from dialog.llm import LocalGenerator
from dialog.sentiment import SentimentAnalyzer
from tests.dialog.support import test_cache

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def dialog_cache() -> Path:
    """Persistent cache for the converted LLM."""
    path = test_cache()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """all-MiniLM-L6-v2 from the embedded package."""
    e = shared_embedder()
    e.load()
    return e


@pytest.fixture(scope="session")
def kb(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The example KB indexed into a fresh cache."""
    base = KnowledgeBase(example_kb_dir(), embedder, tmp_path_factory.mktemp("kbcache"))
    base.load()
    return base


@pytest.fixture(scope="session")
def analyzer(embedder: Embedder) -> SentimentAnalyzer:
    """The shipped sentiment head over MiniLM."""
    a = SentimentAnalyzer(embedder=embedder)
    a.load()
    return a


@pytest.fixture(scope="session")
def local_llm(dialog_cache: Path) -> Iterator[LocalGenerator]:
    """SmolLM2-135M-Instruct, converted once into the test cache."""
    gen = LocalGenerator(cache_dir=dialog_cache)
    gen.load()
    yield gen
    gen._executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def brain(local_llm: LocalGenerator, embedder: Embedder, kb: KnowledgeBase, analyzer: SentimentAnalyzer,
          dialog_cache: Path) -> Brain:
    """The whole brain with real models."""
    b = Brain(DialogOptions(), dialog_cache, generator=local_llm, embedder=embedder, knowledge=kb, sentiment=analyzer)
    b.load()
    return b


@pytest.fixture(scope="session")
def kb_brain(embedder: Embedder, kb: KnowledgeBase, analyzer: SentimentAnalyzer, dialog_cache: Path) -> Brain:
    """The brain without an LLM: answers come straight from the passages."""
    b = Brain(DialogOptions(), dialog_cache, embedder=embedder, knowledge=kb, sentiment=analyzer, use_llm=False)
    b.load()
    return b
