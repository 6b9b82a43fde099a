"""Spoken questions about both example KBs on an 8 kHz mu-law phone line, through the real call loop.

A voice the project's own fixtures do not use (espeak-ng en-us+f2) asks two questions of each KB; every
call runs through Engine.session with the real Whisper, retriever, LLM and TTS, as `voice-agent call
--telephony --fast` plays it (bench/spoken_eval.py's path). The caller must be understood (WER bound)
and the answer turn's sources must hold the entry that answers it, an entry the other KB does not have,
so the test goes red when the call is served from the wrong KB or the retriever loses the entry.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.spoken_audio import AudioError, CallerVoice
from bench.spoken_eval import SpokenTurn, caller_audio, make_config, outcome_row, play_call
from tests.conftest import need

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
VOICE = CallerVoice("en-us+f2", 150, 55)  # not one of audio_fixtures/make_fixtures.py's voices
MAX_TURN_WER = 0.35  # measured 0-0.1 per turn with Whisper tiny.en; a broken line or ASR is far above

# (KB folder, what the caller says, the entry that answers it: an id only that KB has)
QUESTIONS = [
    ("examples/kb", "What time does the phone line close on Saturday?", "hours-phone"),
    ("examples/kb", "Is there a charge for moving my service to a new home?", "move-fee"),
    ("examples/shop-kb", "How long is the warranty on electronics?", "warranty-length"),
    ("examples/shop-kb", "Can I pay for my order in three monthly payments?", "payment-instalments"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh data dir sharing the e2e model cache (conversions are slow)."""
    home = tmp_path_factory.mktemp("spoken-home")
    shared = ROOT / "var" / "test-home" / "cache"
    shared.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(shared, target_is_directory=True)
    return home


def play(kb: str, home: Path) -> Iterator[dict[str, Any]]:
    """One engine for the KB (models loaded once for the module), then one phone call per question."""
    from voice_agent.engine import Engine

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    engine = Engine.from_config(make_config(kb, home, None))
    try:
        for i, (where, text, entry) in enumerate(QUESTIONS):
            if where != kb:
                continue
            turn = SpokenTurn(i, kb, text, {"kind": "answer", "entries": [entry]})
            try:
                audio, start = caller_audio(turn, VOICE, "8k")
            except AudioError as exc:
                need(False, str(exc))
            report = asyncio.run(play_call(engine, audio, 8000, home / f"call-{i}.wav", telephony=True))
            yield outcome_row(turn, VOICE, "8k", report, start, 0.0)
    finally:
        engine.executor.shutdown(wait=False)


@pytest.fixture(scope="module")
def rows(home: Path) -> list[dict[str, Any]]:
    """Every question played, both KBs."""
    out: list[dict[str, Any]] = []
    for kb in dict.fromkeys(kb for kb, _, _ in QUESTIONS):
        out += list(play(kb, home))
    return out


@pytest.mark.parametrize("i", range(len(QUESTIONS)))
def test_caller_is_understood_on_the_phone_line(rows: list[dict[str, Any]], i: int) -> None:
    row = rows[i]
    assert row["turns_heard"] >= 1, row
    assert row["wer"] <= MAX_TURN_WER, f"said {row['text']!r}, heard {row['heard']!r}"


@pytest.mark.parametrize("i", range(len(QUESTIONS)))
def test_answer_comes_from_the_right_entry(rows: list[dict[str, Any]], i: int) -> None:
    row = rows[i]
    entry = QUESTIONS[i][2]
    ids = [str(s.get("id", "")) for s in row["sources"]]
    assert entry in ids, f"{row['kb']}: {row['heard']!r} retrieved {ids}, action {row['action']}"
    assert not row["escalate"], row
    assert row["agent_text"], row
