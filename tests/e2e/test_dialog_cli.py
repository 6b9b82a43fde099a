"""`voice-agent chat` and `voice-agent sentiment` as a user runs them, on the real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.dialog import support


def cli(*args: str, stdin: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VOICE_AGENT_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "voice_agent", "--log-level", "WARNING", *args], input=stdin,
                          capture_output=True, text=True, cwd=support.ROOT, env=env, timeout=300, check=False)


def test_chat_json_answers_redacts_and_escalates() -> None:
    lines = ["What are your opening hours on Saturday?",
             "My card is 4532 0151 1283 0366 and this is ridiculous",
             "I want to speak to a human"]
    proc = cli("chat", "--json", stdin="\n".join(lines) + "\n", home=support.test_home())
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    kinds = [e["type"] for e in events]
    assert kinds == ["greeting", "turn", "turn", "turn", "end"]
    hours, card, human = events[1:4]
    assert "nine AM to five PM" in hours["reply"] and hours["action"] == "answer" and not hours["escalate"]
    assert "4532" not in proc.stdout and card["caller"].startswith("My card is [CARD]")
    assert card["sentiment"] == "negative"
    assert human["escalate"] and human["reason"] and human["summary"]
    assert len([s for s in human["summary"].split(". ") if s]) == 2


def test_sentiment_reads_stdin_lines(tmp_path: Path) -> None:
    proc = cli("sentiment", stdin="Thank you so much, that fixed it!\nThis is the third time it broke, I'm furious.\n",
               home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert all(set(r) == {"text", "label", "score"} and 0 < r["score"] <= 1 for r in rows)


def test_missing_kb_is_one_clear_line(tmp_path: Path) -> None:
    proc = cli("chat", "--kb", str(tmp_path / "nope"), stdin="", home=tmp_path)
    assert proc.returncode == 2
    assert "knowledge base folder" in proc.stderr and "dialog.kb_dir" in proc.stderr
    assert "Traceback" not in proc.stderr
