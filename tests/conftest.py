"""Shared test fixtures: generated audio, the shared recordings, and models loaded once."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "fixtures"
sys.path.insert(0, str(ROOT))

IN_CI = os.environ.get("CI", "").lower() == "true"

# Property tests explore new examples on every run locally; in CI they replay a fixed sequence, so a run
# passes or fails for the code, not for the draw (a new counterexample found locally becomes a case).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    _hypothesis_settings.load_profile("ci")


def need(condition: bool, reason: str) -> None:
    """Skip when a peer or fixture is missing, but fail under CI=true where everything must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """../shared/fixtures (real recordings)."""
    need(SHARED.is_dir(), f"{SHARED} is absent (shared fixtures live beside the repository)")
    return SHARED


@pytest.fixture(scope="session")
def generated() -> tuple[Path, dict[str, Any]]:
    """The project's own espeak-ng/sox fixtures: (directory, manifest)."""
    from audio_fixtures.make_fixtures import DEFAULT_OUT, FixtureError, ensure_fixtures

    try:
        manifest = ensure_fixtures(DEFAULT_OUT)
    except FixtureError as exc:
        need(False, str(exc))
        raise
    return DEFAULT_OUT, manifest


@pytest.fixture(scope="session")
def transcriber() -> Any:
    """Whisper tiny.en loaded once for the whole session."""
    from asr import Transcriber

    return Transcriber("whisper-tiny.en")


@pytest.fixture()
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory for the store and caches."""
    home = tmp_path / "home"
    monkeypatch.setenv("VOICE_AGENT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def postgres() -> Any:
    """A real PostgreSQL server on a loopback port for the whole session (stopped at the end)."""
    from tests.postgres import PostgresServer

    need(PostgresServer.available(), "PostgreSQL 15 binaries (Debian's postgresql package) are not installed")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty call store on SQLite (a file) and on the real PostgreSQL server (a fresh database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'calls.db'}"
    server = request.getfixturevalue("postgres")
    return str(server.new_database())
