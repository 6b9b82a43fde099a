"""`voice-agent transcribe --analyze` on a spoken call with a card number: sentiment, summary, redaction everywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.test_transcribe_cli import cli

Gen = tuple[Path, dict[str, Any]]
LINES = [
    "Hello. I am really angry, you charged my card twice this month.",
    "My card number is 4 5 3 2, 0 1 5 1, 1 2 8 3, 0 3 6 6.",
    "Thank you, that is helpful.",
]
RAW = re.compile(r"4532|0151|1283|0366")


@pytest.fixture(scope="module")
def pii_call(generated: Gen, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A caller who is upset, then reads out a card number (the project's espeak-ng fixture voice)."""
    from audio_fixtures.make_fixtures import SR, speak, write_wav

    parts = [np.zeros(SR // 2, np.float32)]
    for line in LINES:
        parts += [speak(line) * 0.8, np.zeros(SR, np.float32)]
    path = tmp_path_factory.mktemp("pii") / "card_call.wav"
    write_wav(path, np.concatenate(parts))
    return path


def test_analyze_adds_sentiment_summary_and_redacts(pii_call: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = cli("--log-level", "INFO", "transcribe", "--analyze", str(pii_call), home=home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    segments = data["segments"]
    assert all(s["sentiment"]["label"] in {"negative", "neutral", "positive"} for s in segments)
    by_text = {s["text"].strip().lower(): s["sentiment"]["label"] for s in segments}
    assert [label for text, label in by_text.items() if "angry" in text] == ["negative"], by_text
    assert [label for text, label in by_text.items() if "helpful" in text] == ["positive"], by_text
    assert data["summary"] and data["redactions"] >= 1
    assert "[CARD]" in data["text"]
    # no digit of the card anywhere: text, words, summary, log lines, the store
    assert not RAW.search(proc.stdout)
    assert not RAW.search(proc.stderr)
    call_id = data["call_id"]
    shown = cli("calls", "show", call_id, "--format", "json", home=home)
    assert shown.returncode == 0, shown.stderr
    assert "[CARD]" in shown.stdout and not RAW.search(shown.stdout)


def test_redaction_is_configurable_per_field(pii_call: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = cli("--set", "dialog.redact_transcripts=false", "transcribe", str(pii_call), home=home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert RAW.search(data["text"])  # the output keeps what was said
    shown = cli("calls", "show", data["call_id"], "--format", "json", home=home)
    assert not RAW.search(shown.stdout)  # the store still redacts
