"""Fixtures for the web front end: a config in a temporary data dir, users, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from asr.streaming import Recognition
from voice_agent.auth import Users
from voice_agent.config import Config, load_config
from voice_agent.engine import Engine
from voice_agent.session import SessionSettings
from voice_agent.store import CallStore
from voice_agent.web.server import make_app

PASSWORDS = {"ada": "admin-password-1", "ann": "agent-password-1", "vic": "viewer-password-1"}
ROLES = {"ada": "admin", "ann": "agent", "vic": "viewer"}


@pytest.fixture()
def web_config(tmp_path: Path) -> Config:
    """A config whose data dir and KB folder are temporary."""
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "hours.md").write_text("# Opening hours\n\nWe are open Monday to Friday, 8 AM to 8 PM.\n")
    config = load_config(env={}, overrides={"data_dir": str(tmp_path / "home"), "dialog": {"kb_dir": str(kb)}})
    config.http.signin_per_minute = 5
    return config


@pytest.fixture()
def store(web_config: Config) -> CallStore:
    """The call store with one user per role."""
    s = CallStore(web_config.store_url)
    users = Users(s)
    for name, role in ROLES.items():
        users.add(name, role, PASSWORDS[name])
    return s


@pytest.fixture()
def tokens(store: CallStore) -> dict[str, str]:
    """An API token per user."""
    users = Users(store)
    return {name: users.issue_token(name, "tests") for name in ROLES}


class FakeRecognizer:
    """Hears the same words in any speech, nothing in silence."""

    prompt = ""
    hotwords = ""

    def __init__(self, text: str = "what are your opening hours") -> None:
        self.text = text
        self.calls = 0

    def recognize(self, audio: np.ndarray, beam_size: int = 1) -> Recognition:
        self.calls += 1
        loud = len(audio) and float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) > 0.01
        return Recognition(self.text if loud else "", -0.2, 0.01)

    recognize_final = recognize


def fake_engine(brain_factory: Callable[[], Any] | None = None, heard: str = "what are your opening hours") -> Engine:
    """An engine with the session tests' fake brain and voice and a fake recognizer (no models)."""
    from tests.voice_agent.fakes import FakeBrain, FakeVoice

    settings = SessionSettings(filler_after_s=5.0)
    return Engine(FakeRecognizer(heard), FakeVoice(), brain_factory or (lambda: FakeBrain()),  # type: ignore[arg-type]
                  settings)


@pytest.fixture()
async def client(web_config: Config, store: CallStore) -> AsyncIterator[TestClient[Any, Any]]:
    """An HTTP client for the app without an engine (API, pages, auth)."""
    app = make_app(web_config, store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def sign_in(client: TestClient[Any, Any], name: str) -> str:
    """Sign in through the API; returns the CSRF token (the cookie stays in the client)."""
    r = await client.post("/api/session", json={"username": name, "password": PASSWORDS[name]})
    assert r.status == 200, await r.text()
    data = await r.json()
    assert data["role"] == ROLES[name]
    return str(data["csrf"])
