"""`voice-agent` on a PostgreSQL store as a deployment runs it: VOICE_AGENT_STORE_URL, a real server, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.postgres import PostgresServer

Gen = tuple[Path, dict[str, Any]]
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, home: Path, store_url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VOICE_AGENT_HOME=str(home), HF_HUB_OFFLINE="1", VOICE_AGENT_STORE_URL=store_url)
    return subprocess.run([sys.executable, "-m", "voice_agent", "--log-level", "WARNING", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)


def test_transcribe_into_postgres_and_read_back(generated: Gen, postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.new_database()
    audio = tmp_path / "call.wav"
    shutil.copy(generated[0] / "stereo_call_ulaw8k.wav", audio)
    home = tmp_path / "home"
    done = cli("transcribe", str(audio), "--format", "json", home=home, store_url=url)
    assert done.returncode == 0, done.stderr
    call = json.loads(done.stdout)
    assert not (home / "calls.db").exists()  # nothing went to the SQLite default

    listing = cli("calls", "list", home=home, store_url=url)
    assert listing.returncode == 0, listing.stderr
    assert call["call_id"] in listing.stdout and "transcription" in listing.stdout
    shown = cli("calls", "show", call["call_id"][:8], "--format", "json", home=home, store_url=url)
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)
    assert stored["segments"] == call["segments"] and stored["text"] == call["text"]
    assert {s["speaker"] for s in stored["segments"]} == {"caller", "agent"}

    # The same database seen through the CLI flag instead of the environment.
    flag = subprocess.run([sys.executable, "-m", "voice_agent", "--store-url", url, "calls", "list"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
                          env=dict(os.environ, VOICE_AGENT_HOME=str(home)))
    assert call["call_id"] in flag.stdout, flag.stderr


def test_unreachable_postgres_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = cli("calls", "list", home=tmp_path, store_url=f"postgresql://va:secret@127.0.0.1:{port}/calls")
    assert done.returncode == 2
    assert "cannot reach the PostgreSQL call store postgresql://va:***@127.0.0.1" in done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr
