"""A card number read aloud on a real call (espeak-ng voice, real Whisper, dialog and TTS) never gets stored.

The caller reads the digits in groups with pauses; whatever way Whisper writes them
("4539, 5787, ...", "4-5-3-9 ...", "4 5 3 9 ..."), no run of the card's digits may reach
the stored call (text, segments, turns, events), the log lines or the call report.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from audio_fixtures.make_fixtures import SR, _place, speak, write_wav

ROOT = Path(__file__).resolve().parents[2]
CARD = "4539578763621486"  # a test number that passes the Luhn check


def strings(value: Any) -> list[str]:
    """Every string in a JSON-like value, with JSON held in strings opened up (numbers are timings, not text)."""
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            return [value]
        return strings(inner) if isinstance(inner, dict | list) else [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def leaked(texts: list[str]) -> list[str]:
    """Runs of four or more of the card's digits (however separated) in any of the texts."""
    found = []
    for text in texts:
        for m in re.finditer(r"\d(?:[\s,.\-]{0,3}\d){3,}", text):
            digits = re.sub(r"\D", "", m.group(0))
            if any(digits[i : i + 4] in CARD for i in range(len(digits) - 3)):
                found.append(m.group(0))
    return found


def test_spoken_card_number_is_redacted_everywhere(tmp_path: Path) -> None:
    groups = [CARD[i : i + 4] for i in range(0, len(CARD), 4)]
    said = speak("sure, it is " + ", ".join(" ".join(g) for g in groups), voice="en-us+m3", speed=130,
                 pitch=35) * 0.8
    caller = tmp_path / "caller.wav"
    write_wav(caller, _place([(5.0, said)], 5.0 + len(said) / SR + 8.0))
    home = tmp_path / "home"
    env = dict(os.environ, VOICE_AGENT_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "voice_agent", "--log-level", "DEBUG", "--log-format", "json", "call",
         "--caller", str(caller), "--fast", "--record", str(tmp_path / "call.wav"), "--report", str(report_path)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    caller_text = " ".join(t["caller_text"] for t in report["turns"])
    assert re.search(r"\[(CARD|NUMBER|PHONE)\]", caller_text), caller_text  # the digits were heard and replaced
    assert not leaked(strings(report)), (leaked(strings(report)), caller_text)
    log_lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "caller_turn" for line in log_lines)  # the turns were logged, redacted
    assert not leaked(strings(log_lines)), leaked(strings(log_lines))
    db = sqlite3.connect(home / "calls.db")
    try:
        rows: list[list[Any]] = []
        for table in ("calls", "segments", "turns", "events"):
            rows += [list(r) for r in db.execute(f"SELECT * FROM {table}")]
    finally:
        db.close()
    assert any(report["call_id"] in r for r in rows)
    assert not leaked(strings(rows)), leaked(strings(rows))
