"""Sessions and tokens through the real server: sign-out kept across restarts, password changes, disabled and
deleted users, token expiry (issue 12)."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from voice_agent.auth import Users
from voice_agent.cli import main
from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.server import make_app

from .conftest import PASSWORDS

Client = TestClient[Any, Any]


@asynccontextmanager
async def server(config: Config) -> AsyncIterator[Client]:
    """One run of the web app on its own store connection (a restart opens a new one)."""
    store = CallStore(config.store_url)
    try:
        async with TestClient(TestServer(make_app(config, store), host="127.0.0.1")) as client:
            yield client
    finally:
        store.close()


async def signed_in(client: Client, name: str) -> tuple[str, str]:
    """(cookie, csrf) of a fresh console session."""
    r = await client.post("/api/session", json={"username": name, "password": PASSWORDS[name]})
    assert r.status == 200, await r.text()
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["va_session"].value
    return cookie, str((await r.json())["csrf"])


async def status(client: Client, cookie: str) -> int:
    client.session.cookie_jar.clear()
    return (await client.get("/api/session", cookies={"va_session": cookie})).status


def cli(config: Config, *args: str, stdin: str = "") -> int:
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return main(["--set", f"data_dir={config.data_dir}", *args])
    finally:
        sys.stdin = old


async def test_sign_out_survives_a_restart(web_config: Config, store: CallStore) -> None:
    async with server(web_config) as first:
        cookie, csrf = await signed_in(first, "ann")
        kept, _ = await signed_in(first, "ann")
        first.session.cookie_jar.clear()
        out = await first.delete("/api/session", headers={"X-CSRF-Token": csrf}, cookies={"va_session": cookie})
        assert out.status == 200
        assert await status(first, cookie) == 401
    async with server(web_config) as second:  # the same store, a new process's memory
        assert await status(second, cookie) == 401
        assert await status(second, kept) == 200  # only the signed-out session ended


async def test_password_change_ends_sessions_and_revokes_tokens(web_config: Config, store: CallStore) -> None:
    token = Users(store).issue_token("ann")
    async with server(web_config) as client:
        cookie, _ = await signed_in(client, "ann")
        other, _ = await signed_in(client, "vic")
        assert (await client.get("/api/calls", headers={"Authorization": f"Bearer {token}"})).status == 200
        assert cli(web_config, "users", "passwd", "ann", "--password-stdin", stdin="a-new-long-password\n") == 0
        assert await status(client, cookie) == 401
        assert (await client.get("/api/calls", headers={"Authorization": f"Bearer {token}"})).status == 401
        assert await status(client, other) == 200  # other users keep theirs
        r = await client.post("/api/session", json={"username": "ann", "password": "a-new-long-password"})
        assert r.status == 200


async def test_disabled_and_deleted_users(web_config: Config, store: CallStore,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    token = Users(store).issue_token("ann")
    async with server(web_config) as client:
        cookie, _ = await signed_in(client, "ann")
        assert cli(web_config, "users", "disable", "ann") == 0
        assert "user ann disabled" in capsys.readouterr().out
        assert await status(client, cookie) == 401
        assert (await client.get("/api/calls", headers={"Authorization": f"Bearer {token}"})).status == 401
        r = await client.post("/api/session", json={"username": "ann", "password": PASSWORDS["ann"]})
        assert r.status == 401
        assert cli(web_config, "users", "list") == 0
        assert "ann\tagent\tdisabled" in capsys.readouterr().out
        assert cli(web_config, "users", "enable", "ann") == 0
        assert await status(client, cookie) == 401  # enabling again does not bring old sessions back
        cookie, _ = await signed_in(client, "ann")
        assert cli(web_config, "users", "delete", "ann") == 0
        assert await status(client, cookie) == 401
        assert cli(web_config, "users", "delete", "ann") == 2
        assert "no user 'ann'" in capsys.readouterr().err
        # A new user of the same name is not signed in by the old cookie.
        Users(store).add("ann", "agent", PASSWORDS["ann"])
        assert await status(client, cookie) == 401


async def test_tokens_expire(web_config: Config, store: CallStore, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(web_config, "--set", "http.token_days=30", "users", "token", "vic") == 0
    short = capsys.readouterr().out.strip()
    assert cli(web_config, "users", "token", "vic", "--days", "365") == 0
    long = capsys.readouterr().out.strip()
    default = Users(store).issue_token("vic")  # 90 days
    async with server(web_config) as client:
        async def works(token: str) -> bool:
            r = await client.get("/api/calls", headers={"Authorization": f"Bearer {token}"})
            return r.status == 200

        assert await works(short) and await works(long) and await works(default)
        later = time.time() + 31 * 86400
        monkeypatch.setattr("voice_agent.store.accounts.time.time", lambda: later)
        assert not await works(short) and await works(long) and await works(default)
        later = time.time() + 91 * 86400
        monkeypatch.setattr("voice_agent.store.accounts.time.time", lambda: later)
        assert not await works(default) and await works(long)
    assert cli(web_config, "users", "token", "vic", "--days", "0") == 2
    assert "positive number of days" in capsys.readouterr().err


def test_store_files_are_owner_only(web_config: Config, store: CallStore) -> None:
    db = Path(web_config.store_url[len("sqlite:///"):])
    assert db.stat().st_mode & 0o777 == 0o600
    assert db.parent.stat().st_mode & 0o777 == 0o700
    for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if extra.exists():
            assert extra.stat().st_mode & 0o077 == 0, extra
