"""Helpers shared by the dialog tests and the dialog end-to-end test."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def test_home() -> Path:
    """A persistent data dir for tests, so SmolLM2 is converted once per machine and not once per run."""
    env = os.environ.get("VOICE_AGENT_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "voice-agent-tests"


def test_cache() -> Path:
    """The cache dir inside test_home() (the CLI's <data dir>/cache)."""
    return test_home() / "cache"
