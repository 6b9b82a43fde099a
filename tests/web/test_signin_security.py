"""Sign-in hardening through the real server: login CSRF, per-(address, user) backoff, trusted proxies, Secure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from voice_agent.config import Config, ConfigError, load_config
from voice_agent.store import CallStore
from voice_agent.web.api import STATE
from voice_agent.web.security import SigninThrottle
from voice_agent.web.server import make_app

from .conftest import PASSWORDS

Client = TestClient[Any, Any]


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
async def proxied(web_config: Config, store: CallStore) -> AsyncIterator[tuple[Client, Clock]]:
    """The app behind a trusted reverse proxy on 127.0.0.1, with a clock the test moves."""
    web_config.http.trusted_proxies = ["127.0.0.1"]
    web_config.http.allowed_origins = ["https://support.example.org"]
    app = make_app(web_config, store)
    clock = Clock()
    state: Any = app[STATE]
    state.signin_throttle = SigninThrottle(web_config.http.signin_per_minute, clock=clock)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c, clock


def creds(name: str, password: str | None = None) -> dict[str, str]:
    return {"username": name, "password": password or PASSWORDS[name]}


async def test_login_csrf_needs_json_and_an_allowed_origin(client: Client) -> None:
    # the cross-site form attack: text/plain needs no preflight, so the server must refuse it
    form = await client.post("/api/session", data='{"username": "ann", "password": "agent-password-1"}',
                             headers={"Content-Type": "text/plain", "Origin": "https://evil.example"})
    assert form.status == 415 and "JSON" in (await form.json())["error"]
    plain = await client.post("/api/session", data=b'{"username": "ann", "password": "agent-password-1"}',
                              headers={"Content-Type": "text/plain"})
    assert plain.status == 415
    evil = await client.post("/api/session", json=creds("ann"), headers={"Origin": "https://evil.example"})
    assert evil.status == 403 and "Origin" in (await evil.json())["error"]
    assert "va_session" not in evil.cookies
    null = await client.post("/api/session", json=creds("ann"), headers={"Origin": "null"})
    assert null.status == 403
    cross = await client.post("/api/session", json=creds("ann"), headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403
    own = f"http://{client.host}:{client.port}"
    same = await client.post("/api/session", json=creds("ann"), headers={"Origin": own})
    assert same.status == 200
    assert (await client.post("/api/session", json=creds("ann"))).status == 200  # scripts send no Origin


async def test_allowed_origins_come_from_the_config(proxied: tuple[Client, Clock]) -> None:
    client, _ = proxied
    r = await client.post("/api/session", json=creds("ann"), headers={"Origin": "https://support.example.org"})
    assert r.status == 200
    r = await client.post("/api/session", json=creds("ann"), headers={"Origin": "https://support.example.org.evil"})
    assert r.status == 403


async def test_a_stranger_cannot_lock_a_user_out_from_elsewhere(proxied: tuple[Client, Clock]) -> None:
    client, _ = proxied
    attacker = {"X-Forwarded-For": "203.0.113.5"}
    statuses = [(await client.post("/api/session", json=creds("ann", "wrong-password"), headers=attacker)).status
                for _ in range(8)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429, statuses
    blocked = await client.post("/api/session", json=creds("ann"), headers=attacker)
    assert blocked.status == 429 and int(blocked.headers["Retry-After"]) >= 1
    # the user, from their own address, signs in at once
    r = await client.post("/api/session", json=creds("ann"), headers={"X-Forwarded-For": "198.51.100.7"})
    assert r.status == 200
    # a spoofed X-Forwarded-For hop before the proxy's own entry changes nothing: the proxy appends the real one
    spoof = {"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}
    assert (await client.post("/api/session", json=creds("ann"), headers=spoof)).status == 429


async def test_backoff_doubles_and_success_clears_it(proxied: tuple[Client, Clock]) -> None:
    client, clock = proxied
    here = {"X-Forwarded-For": "192.0.2.9"}

    async def fail() -> int:
        return (await client.post("/api/session", json=creds("vic", "not-the-password"), headers=here)).status

    for _ in range(5):
        assert await fail() == 401
    waits = []
    for _ in range(3):
        r = await client.post("/api/session", json=creds("vic", "not-the-password"), headers=here)
        assert r.status == 429
        waits.append(int(r.headers["Retry-After"]))
        clock.now += waits[-1]
        assert await fail() == 401  # one more try after the wait, wrong again: the next wait doubles
    assert waits[1] >= 2 * waits[0] - 1 and waits[2] >= 2 * waits[1] - 1, waits
    clock.now += 10_000
    assert (await client.post("/api/session", json=creds("vic"), headers=here)).status == 200
    assert await fail() == 401  # a success starts the pair afresh


async def test_successful_sign_ins_are_not_counted(client: Client) -> None:
    for _ in range(12):
        assert (await client.post("/api/session", json=creds("ann"))).status == 200


async def test_forwarded_headers_only_from_a_trusted_proxy(client: Client) -> None:
    # no proxy configured: X-Forwarded-For is the client's own claim and is ignored
    for i in range(6):
        await client.post("/api/session", json=creds("ann", "wrong-password"),
                          headers={"X-Forwarded-For": f"203.0.113.{i}"})
    r = await client.post("/api/session", json=creds("ann"), headers={"X-Forwarded-For": "198.51.100.7"})
    assert r.status == 429
    # nor is X-Forwarded-Proto: the cookie is not marked Secure on plain HTTP from an untrusted peer
    r = await client.post("/api/session", json=creds("vic"), headers={"X-Forwarded-Proto": "https"})
    assert r.status == 200 and "Secure" not in r.headers["Set-Cookie"]


async def test_secure_cookie_behind_a_tls_proxy(proxied: tuple[Client, Clock]) -> None:
    client, _ = proxied
    r = await client.post("/api/session", json=creds("ann"), headers={"X-Forwarded-Proto": "https"})
    assert r.status == 200
    cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    r = await client.post("/api/session", json=creds("ann"), headers={"X-Forwarded-Proto": "http"})
    assert "Secure" not in r.headers["Set-Cookie"]
    # the browser's origin is https:// behind the proxy
    r = await client.post("/api/session", json=creds("ann"),
                          headers={"X-Forwarded-Proto": "https", "Origin": f"https://{client.host}:{client.port}"})
    assert r.status == 200


async def test_sign_in_bodies_are_bounded(client: Client) -> None:
    big = b'{"username": "ann", "password": "' + b"x" * 100_000 + b'"}'
    r = await client.post("/api/session", data=big, headers={"Content-Type": "application/json"})
    assert r.status == 413 and "larger than" in (await r.json())["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked, still cut off
        yield b'{"username": "ann", "password": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    r = await client.post("/api/session", data=chunks(), headers={"Content-Type": "application/json"})
    assert r.status == 413


def test_proxy_and_origin_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_config(env={}, overrides={"http": {"trusted_proxies": "proxy.internal"}})
    with pytest.raises(ConfigError, match="allowed_origins"):
        load_config(env={}, overrides={"http": {"allowed_origins": "https://a.example/path"}})
    config = load_config(env={"VOICE_AGENT_HTTP__TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1"})
    assert config.http.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"] and config.http.allowed_origins == []
