"""Every read of transcript text is audited: list previews, text search, live captions (one row a minute)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient, TestServer

from telephony.webrtc import allow_loopback_candidates
from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.api import STATE
from voice_agent.web.server import make_app

from .conftest import fake_engine
from .rtc_client import RATE, RtcPeer
from .test_webrtc import Gen, speech, wait_saved


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def rows(store: CallStore, action: str, target: str | None = None) -> list[dict[str, Any]]:
    return [r for r in Users(store).audit_rows(1000, target) if r["action"] == action]


async def test_previews_and_text_search_are_audited(client: TestClient[Any, Any], store: CallStore,
                                                    tokens: dict[str, str]) -> None:
    clock = Clock()
    client.app[STATE].read_audit.clock = clock
    call_id = store.add_call("transcription", "a.wav", text="my router keeps dropping the line")
    other = store.add_call("transcription", "b.wav", text="a question about the bill")
    viewer = {"Authorization": f"Bearer {tokens['vic']}"}
    r = await client.get("/api/calls", headers=viewer)
    assert r.status == 200 and len((await r.json())["calls"]) == 2
    assert {x["target"] for x in rows(store, "read_preview")} == {call_id, other}
    assert all(x["user"] == "vic" for x in rows(store, "read_preview"))
    # the console refreshes its list: no new rows within the minute, then one per call again
    for _ in range(3):
        assert (await client.get("/api/calls", headers=viewer)).status == 200
    assert len(rows(store, "read_preview")) == 2
    clock.now += 61
    assert (await client.get("/api/calls", headers=viewer)).status == 200
    assert len(rows(store, "read_preview")) == 4
    # a text search reads every transcript it matches: the query is audited (redacted)
    r = await client.get("/api/calls", params={"q": "router 5, 5, 5, 0, 1, 4, 3"}, headers=viewer)
    assert (await r.json())["total"] == 0
    r = await client.get("/api/calls", params={"q": "router"}, headers=viewer)
    assert [c["id"] for c in (await r.json())["calls"]] == [call_id]
    searches = rows(store, "search_transcripts")
    assert {x["detail"]["q"] for x in searches} == {"router", "router [PHONE]"}
    assert [x["detail"]["matches"] for x in searches if x["detail"]["q"] == "router"] == [1]


async def test_live_captions_are_audited_once_a_minute(web_config: Config, store: CallStore,
                                                       generated: Gen) -> None:
    allow_loopback_candidates(True)
    app = make_app(web_config, store, fake_engine())
    clock = Clock()
    state: Any = app[STATE]
    state.read_audit.clock = clock
    viewer = {"Authorization": f"Bearer {Users(store).issue_token('vic')}"}
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            caller = RtcPeer(np.concatenate([speech(generated, "utt_bill.wav"), np.zeros(RATE * 5, np.float32)]))
            body = await caller.connect(client, "/api/webrtc/offer")
            call_id = body["call_id"]
            try:
                await caller.wait_for("caller_turn", timeout=30)
                for _ in range(3):
                    listed = await (await client.get("/api/live", headers=viewer)).json()
                    assert listed["calls"][0]["last_caption"]["text"]
                assert len(rows(store, "read_live", call_id)) == 1  # the list shows captions too
                for _ in range(3):
                    assert (await client.get(f"/api/live/{call_id}", headers=viewer)).status == 200
                assert len(rows(store, "read_live", call_id)) == 1  # one row per user and call a minute
                clock.now += 61
                assert (await client.get(f"/api/live/{call_id}", headers=viewer)).status == 200
                assert (await client.get("/api/live", headers=viewer)).status == 200
                assert len(rows(store, "read_live", call_id)) == 2
                assert {r["user"] for r in rows(store, "read_live", call_id)} == {"vic"}
                caller.send({"type": "hangup"})
                await caller.wait_for("call_end")
            finally:
                await caller.close()
            await wait_saved(client, call_id)
    finally:
        allow_loopback_candidates(False)
    assert Path(store.get_call(call_id).meta["recording"]).is_file()
