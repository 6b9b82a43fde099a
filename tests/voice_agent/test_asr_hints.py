"""The engine primes the recognizer from a real knowledge base: topic prompt plus KB hotwords (asr.kb_hotwords)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from asr.hints import MAX_HOTWORD_CHARS
from dialog.embeddings import shared_embedder
from dialog.kb import KnowledgeBase
from voice_agent.engine import Engine

KB_YAML = """topic: Deliveries
entries:
  - id: parcel-lockers
    question: Can I collect my order from a Quokkabox locker?
    answer: Yes. Choose Quokkabox at checkout and collect the parcel with the code we text you.
      Lockers in Wollongong and Tamworth are open all day.
  - id: express
    question: How fast is Zippity express?
    answer: Zippity express delivers the next business day when you order before 2 PM. The Zippity fee is $9.99.
"""


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    folder = tmp_path_factory.mktemp("kb")
    (folder / "delivery.yaml").write_text(KB_YAML, encoding="utf-8")
    base = KnowledgeBase(folder, shared_embedder(), tmp_path_factory.mktemp("kbcache"))
    base.load()
    return base


def _engine(kb_hotwords: bool) -> Any:
    recognizer = SimpleNamespace(prompt=None, hotwords=None)
    engine = Engine(recognizer, SimpleNamespace(), lambda: None, SimpleNamespace())  # type: ignore[arg-type]
    engine.kb_hotwords = kb_hotwords
    return engine


def test_hotwords_come_from_the_kb_vocabulary(kb: KnowledgeBase) -> None:
    engine = _engine(True)
    engine.refresh_asr_hints("Acme", kb)
    words = engine.recognizer.hotwords.split()
    # the KB's own distinctive words, most frequent first; no sentence-initial function words
    assert words[0] == "Zippity" and {"Quokkabox", "Wollongong", "Tamworth"} <= set(words)
    assert not {"Yes", "How", "The", "Can", "When"} & set(words)
    assert len(engine.recognizer.hotwords) <= MAX_HOTWORD_CHARS
    assert engine.recognizer.prompt == "A customer calls Acme support about deliveries."


def test_switch_off_keeps_only_the_topic_prompt(kb: KnowledgeBase) -> None:
    engine = _engine(False)
    engine.refresh_asr_hints("", kb)
    assert engine.recognizer.hotwords is None
    assert engine.recognizer.prompt == "A customer calls support about deliveries."


def test_cap_holds_for_a_large_kb(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kb, "vocabulary", lambda limit=60: [f"Brand{i}" for i in range(limit)])
    engine = _engine(True)
    engine.refresh_asr_hints("Acme", kb)
    assert 0 < len(engine.recognizer.hotwords) <= MAX_HOTWORD_CHARS


def test_config_switch_exists() -> None:
    from voice_agent.config import load_config

    config = load_config(None, env={}, overrides={"asr": {"kb_hotwords": False, "final_model": "whisper-base"}})
    assert config.asr.kb_hotwords is False and config.asr.final_model == "whisper-base"
