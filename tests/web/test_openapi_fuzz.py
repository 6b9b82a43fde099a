"""Schemathesis generates requests from /api/openapi.json: no input may cause a server error."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import need
from voice_agent.auth import Users
from voice_agent.config import load_config
from voice_agent.store import CallStore
from voice_agent.web.server import WebFrontend

from .conftest import fake_engine

HAVE_SCHEMATHESIS = importlib.util.find_spec("schemathesis") is not None


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """The web front end (no engine) in its own thread and loop; returns (url, admin token, call id)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    kb = tmp / "kb"
    kb.mkdir()
    (kb / "hours.md").write_text("# Hours\n\nOpen 8 to 8.\n")
    config = load_config(env={}, overrides={"data_dir": str(tmp / "home"), "dialog": {"kb_dir": str(kb)}})
    # The fuzzer sends far more requests than a person; the limits have their own tests.
    config.http.signin_per_minute = 100000
    config.http.offers_per_minute = 100000
    store = CallStore(config.store_url)
    Users(store).add("ada", "admin", "admin-password-fuzz")
    token = Users(store).issue_token("ada")
    call_id = store.add_call("webrtc", "browser 127.0.0.1", duration=3.0, outcome="resolved", text="hello there",
                             segments=[{"start": 0.0, "end": 1.0, "speaker": "caller", "text": "hello there"}])
    # A model-free engine, so that generated SDP offers reach the WebRTC stack.
    web = WebFrontend(config, fake_engine(), store, listen="127.0.0.1:0")
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(web.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield web.url, token, call_id
    asyncio.run_coroutine_threadsafe(web.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    store.close()


@pytest.fixture(scope="module")
def api_schema(live_api: tuple[str, str, str]) -> Any:
    """The server's own OpenAPI document, loaded by schemathesis."""
    need(HAVE_SCHEMATHESIS, "schemathesis is not installed (pip install schemathesis)")
    import schemathesis

    return schemathesis.openapi.from_url(live_api[0] + "/api/openapi.json")


def _runner(operation: Any, url: str, headers: dict[str, str], examples: int, expect_401: bool,
            problems: list[str]) -> Any:
    """A hypothesis test for one operation (schemathesis' pytest plugin does not load under pytest 9)."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=url, headers=headers, checks=[not_a_server_error])
        if expect_401 and response.status_code != 401:
            problems.append(f"{case.method} {case.formatted_path}: {response.status_code} without credentials")

    return run


def _fuzz(schema: Any, url: str, headers: dict[str, str], examples: int, anonymous: bool) -> list[str]:
    """Run generated cases for every operation; returns what went wrong."""
    problems: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        public = operation.definition.raw.get("security") == []

        run = _runner(operation, url, headers, examples, anonymous and not public, problems)
        try:
            run()
        except Exception as exc:  # collect every operation's failure, not only the first
            problems.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 20
    return problems


def test_api_has_no_server_errors(api_schema: Any, live_api: tuple[str, str, str]) -> None:
    url, token, _ = live_api
    problems = _fuzz(api_schema, url, {"Authorization": f"Bearer {token}"}, 25, anonymous=False)
    assert not problems, "\n".join(problems)


def test_api_refuses_anonymous_callers_without_server_errors(api_schema: Any, live_api: tuple[str, str, str]) -> None:
    problems = _fuzz(api_schema, live_api[0], {}, 5, anonymous=True)
    assert not problems, "\n".join(problems)


def test_known_call_is_readable_by_token(live_api: tuple[str, str, str]) -> None:
    import urllib.request

    url, token, call_id = live_api
    req = urllib.request.Request(f"{url}/api/calls/{call_id}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read().decode()
    assert "hello there" in body
