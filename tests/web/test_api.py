"""REST API: authentication, roles, CSRF, audit rows, search, knowledge base and JSON errors."""

from __future__ import annotations

import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient

from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.openapi import document
from voice_agent.web.server import make_app

from .conftest import PASSWORDS, sign_in

Client = TestClient[Any, Any]


def seed_call(store: CallStore, config: Config, text: str, outcome: str, sentiment: str, started: float) -> str:
    """A stored browser call with a stereo recording, two transcript segments and one turn."""
    rec = config.recordings_path / f"seed-{int(started)}.wav"
    rec.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(rec), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros((1600, 2), np.int16).tobytes())
    cid = store.add_call("webrtc", "browser 127.0.0.1", started_at=started, duration=12.0, outcome=outcome,
                         text=text, meta={"recording": str(rec), "sentiment_timeline": [
                             {"t": 2.0, "turn": 0, "label": sentiment, "score": 0.8, "mood": -0.5}]},
                         segments=[{"start": 0.0, "end": 2.0, "speaker": "caller", "channel": 0, "text": text},
                                   {"start": 2.5, "end": 4.0, "speaker": "agent", "channel": 1, "text": "Sure."}])
    store.add_turns(cid, [{"index": 0, "caller_text": text, "agent_text": "Sure.", "sentiment": sentiment,
                           "sentiment_score": 0.8, "voice_to_voice_ms": 850.0}])
    return cid


async def test_pages_and_widget_are_served(client: Client) -> None:
    page = await (await client.get("/")).text()
    assert 'id="call"' in page and "caller.js" in page
    console = await client.get("/console")
    assert "Sign in" in await console.text()
    assert "default-src 'self'" in console.headers["Content-Security-Policy"]
    widget = await client.get("/widget.js")
    assert widget.headers["Access-Control-Allow-Origin"] == "*"
    assert "iframe" in await widget.text()
    missing = await client.get("/static/nope.js")
    assert missing.status == 404 and "error" in await missing.json()


async def test_metrics_for_local_scrapers(client: Client) -> None:
    r = await client.get("/metrics")
    assert r.status == 200
    assert "voice_agent_calls_total" in await r.text()


async def test_api_needs_a_token(client: Client, tokens: dict[str, str]) -> None:
    r = await client.get("/api/calls")
    assert r.status == 401
    assert "token" in (await r.json())["error"]
    r = await client.get("/api/calls", headers={"Authorization": "Bearer va_not-a-real-token"})
    assert r.status == 401
    r = await client.get("/api/calls", headers={"Authorization": f"Bearer {tokens['vic']}"})
    assert r.status == 200
    assert (await r.json()) == {"calls": [], "total": 0, "search_mode": "substring"}


async def test_roles_delete_recording_and_audit(client: Client, store: CallStore, web_config: Config,
                                                tokens: dict[str, str]) -> None:
    cid = seed_call(store, web_config, "my internet is down again", "transferred", "negative", time.time())
    viewer = {"Authorization": f"Bearer {tokens['vic']}"}
    agent = {"Authorization": f"Bearer {tokens['ann']}"}
    admin = {"Authorization": f"Bearer {tokens['ada']}"}

    detail = await client.get(f"/api/calls/{cid}", headers=viewer)
    assert detail.status == 200
    body = await detail.json()
    assert [s["speaker"] for s in body["segments"]] == ["caller", "agent"]
    assert body["turns"][0]["voice_to_voice_ms"] == 850.0
    assert body["recording_url"] == f"/api/calls/{cid}/recording"

    assert (await client.get(f"/api/calls/{cid}/recording", headers=viewer)).status == 403
    audio = await client.get(f"/api/calls/{cid}/recording", headers=agent)
    assert audio.status == 200 and (await audio.read())[:4] == b"RIFF"

    forbidden = await client.delete(f"/api/calls/{cid}", headers=viewer)
    assert forbidden.status == 403
    assert "admin" in (await forbidden.json())["error"]
    assert (await client.delete(f"/api/calls/{cid}", headers=agent)).status == 403
    assert (await client.delete(f"/api/calls/{cid[:4]}", headers=admin)).status == 404  # no prefix matching

    rows = Users(store).audit_rows(target=cid)
    actions = sorted((r["user"], r["action"]) for r in rows)
    assert actions == [("ann", "read_recording"), ("vic", "read_transcript")]

    assert (await client.delete(f"/api/calls/{cid}", headers=admin)).status == 200
    assert (await client.get(f"/api/calls/{cid}", headers=viewer)).status == 404
    assert ("ada", "delete_call") in {(r["user"], r["action"]) for r in Users(store).audit_rows(target=cid)}


async def test_search_by_text_outcome_sentiment_and_date(client: Client, store: CallStore, web_config: Config,
                                                         tokens: dict[str, str]) -> None:
    day = 86400.0
    base = time.time() - 10 * day
    a = seed_call(store, web_config, "what are your opening hours", "resolved", "neutral", base)
    b = seed_call(store, web_config, "my router keeps dropping the internet", "transferred", "negative", base + day)
    c = seed_call(store, web_config, "thanks, the internet works now", "resolved", "positive", base + 2 * day)
    h = {"Authorization": f"Bearer {tokens['vic']}"}

    async def ids(query: str) -> list[str]:
        r = await client.get("/api/calls?" + query, headers=h)
        assert r.status == 200, await r.text()
        return [x["id"] for x in (await r.json())["calls"]]

    assert await ids("q=internet") == [c, b]
    assert await ids("q=internet+router") == [b]
    assert await ids("outcome=resolved") == [c, a]
    assert await ids("sentiment=negative") == [b]
    assert await ids(f"since={base + day - 1}&until={base + day + 1}") == [b]
    assert await ids("limit=1") == [c]
    bad = await client.get("/api/calls?outcome=exploded", headers=h)
    assert bad.status == 400 and "outcome" in (await bad.json())["error"]
    bad = await client.get("/api/calls?since=yesterday", headers=h)
    assert bad.status == 400


async def test_console_session_needs_csrf_for_changes(client: Client, web_config: Config) -> None:
    csrf = await sign_in(client, "ada")
    me = await client.get("/api/session")
    assert (await me.json())["user"] == "ada"
    doc = {"text": "# Prices\n\nMoving home costs 49 dollars.\n"}
    no_header = await client.put("/api/kb/prices.md", json=doc)
    assert no_header.status == 403 and "CSRF" in (await no_header.json())["error"]
    wrong = await client.put("/api/kb/prices.md", json=doc, headers={"X-CSRF-Token": "x" + csrf})
    assert wrong.status == 403
    ok = await client.put("/api/kb/prices.md", json=doc, headers={"X-CSRF-Token": csrf})
    assert ok.status == 201, await ok.text()
    kb_dir = Path(web_config.dialog.kb_dir)
    assert (kb_dir / "prices.md").read_text() == doc["text"]
    listed = await (await client.get("/api/kb")).json()
    assert [d["name"] for d in listed["documents"]] == ["hours.md", "prices.md"]
    assert (await (await client.get("/api/kb/prices.md")).json())["text"] == doc["text"]
    traversal = await client.put("/api/kb/..%2Fescape.md", json=doc, headers={"X-CSRF-Token": csrf})
    assert traversal.status in (400, 404)
    assert not (kb_dir.parent / "escape.md").exists()
    bad_yaml = await client.put("/api/kb/broken.yaml", json={"text": "a: [1, 2"}, headers={"X-CSRF-Token": csrf})
    assert bad_yaml.status == 400 and "YAML" in (await bad_yaml.json())["error"]
    gone = await client.delete("/api/kb/prices.md", headers={"X-CSRF-Token": csrf})
    assert gone.status == 200 and not (kb_dir / "prices.md").exists()
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["va_session"].value
    assert (await client.delete("/api/session", headers={"X-CSRF-Token": csrf})).status == 200
    assert (await client.get("/api/session")).status == 401
    replayed = await client.get("/api/session", cookies={"va_session": cookie})
    assert replayed.status == 401  # a copied cookie stops working at sign-out


async def test_viewer_cannot_edit_the_knowledge_base(client: Client) -> None:
    csrf = await sign_in(client, "vic")
    r = await client.put("/api/kb/new.md", json={"text": "# New\n\nText.\n"}, headers={"X-CSRF-Token": csrf})
    assert r.status == 403


async def test_sign_in_is_rate_limited_and_does_not_reveal_names(client: Client) -> None:
    from voice_agent.web.api import STATE
    from voice_agent.web.security import SigninThrottle

    state: Any = client.app[STATE]
    state.signin_throttle = SigninThrottle(5, clock=lambda: 100.0)  # time stands still: no flaky waits
    unknown = await client.post("/api/session", json={"username": "nobody", "password": "whatever-it-is"})
    wrong = await client.post("/api/session", json={"username": "ann", "password": "wrong-password"})
    assert unknown.status == wrong.status == 401
    assert (await unknown.json()) == (await wrong.json())
    statuses = []
    for _ in range(5):
        r = await client.post("/api/session", json={"username": "ann", "password": "wrong-password"})
        statuses.append(r.status)
    assert statuses[-1] == 429 and "Retry-After" in r.headers
    # Even the right password waits out the backoff (from this address).
    right = await client.post("/api/session", json={"username": "ann", "password": PASSWORDS["ann"]})
    assert right.status == 429


async def test_bad_input_gets_json_errors(client: Client, tokens: dict[str, str]) -> None:
    r = await client.post("/api/session", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400 and "JSON" in (await r.json())["error"]
    r = await client.post("/api/webrtc/offer", json={"sdp": "v=0 nonsense"})
    assert r.status in (400, 503) and "error" in await r.json()
    r = await client.get("/api/nothing-here")
    assert r.status == 404 and r.content_type == "application/json"
    r = await client.patch("/api/calls", headers={"Authorization": f"Bearer {tokens['ada']}"})
    assert r.status == 405 and "error" in await r.json()


async def test_openapi_document_covers_every_route(client: Client) -> None:
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routes = set()
    for resource in client.app.router.resources():
        path = resource.canonical
        if path.startswith("/api/"):
            for route in resource:
                if route.method != "HEAD":
                    routes.add((path, route.method))
    assert routes == documented
    assert spec == document()


async def test_users_and_audit_are_for_admins(client: Client, tokens: dict[str, str]) -> None:
    r = await client.get("/api/users", headers={"Authorization": f"Bearer {tokens['ann']}"})
    assert r.status == 403
    r = await client.get("/api/users", headers={"Authorization": f"Bearer {tokens['ada']}"})
    names = [u["name"] for u in (await r.json())["users"]]
    assert names == ["ada", "ann", "vic"]
    assert all("password" not in str(u) for u in (await r.json())["users"])


async def test_live_calls_list_is_empty_without_engine(client: Client, tokens: dict[str, str]) -> None:
    r = await client.get("/api/live", headers={"Authorization": f"Bearer {tokens['vic']}"})
    assert (await r.json()) == {"calls": []}
    r = await client.post("/api/live/abc/hangup", headers={"Authorization": f"Bearer {tokens['ann']}"})
    assert r.status == 404


async def test_app_without_users_has_no_default_account(web_config: Config) -> None:
    store = CallStore(web_config.store_url)
    app = make_app(web_config, store)
    async with TestClient(__import__("aiohttp").test_utils.TestServer(app)) as c:
        for name, password in (("admin", "admin"), ("admin", "password"), ("root", "root")):
            r = await c.post("/api/session", json={"username": name, "password": password})
            assert r.status == 401
    assert Users(store).all() == []
