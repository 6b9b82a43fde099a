"""The wrap-up API: agents draft and save, viewers may not, bad input is a clear 400, every read and save audited."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient

from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.store import CallStore

from .test_api import seed_call

CARD = "4532 0151 1283 0366"


async def test_wrapup_draft_save_roles_and_audit(client: TestClient[Any, Any], store: CallStore, web_config: Config,
                                                 tokens: dict[str, str]) -> None:
    cid = seed_call(store, web_config, "my internet is down again", "transferred", "negative", time.time())
    store.update_call(cid, meta={"transfer": {"reason": "the caller asked for a human",
                                              "summary": "The caller asked about outages"}})
    agent = {"Authorization": f"Bearer {tokens['ann']}"}
    viewer = {"Authorization": f"Bearer {tokens['vic']}"}
    assert (await client.get(f"/api/calls/{cid}/wrapup", headers=viewer)).status == 403
    assert (await client.get("/api/calls/nope/wrapup", headers=agent)).status == 404
    r = await client.get(f"/api/calls/{cid}/wrapup", headers=agent)
    body = await r.json()
    assert r.status == 200 and body["saved"] is None
    assert body["draft"] == {"summary": "The caller asked about outages.",
                             "outcome": "transferred (the caller asked for a human)", "follow_ups": ""}
    wrapup = {"summary": f"Outage explained; card {CARD} mentioned", "outcome": "resolved", "follow_ups": "Call back"}
    assert (await client.put(f"/api/calls/{cid}/wrapup", json=wrapup, headers=viewer)).status == 403
    bad = await client.put(f"/api/calls/{cid}/wrapup", json={**wrapup, "summary": ["x"]}, headers=agent)
    assert bad.status == 400 and "summary" in (await bad.json())["error"]
    empty = await client.put(f"/api/calls/{cid}/wrapup", json={**wrapup, "summary": "  "}, headers=agent)
    assert empty.status == 400
    r = await client.put(f"/api/calls/{cid}/wrapup", json=wrapup, headers=agent)
    assert r.status == 200
    saved = store.wrapup(cid)
    assert saved is not None and saved["by"] == "ann" and saved["follow_ups"] == "Call back"
    assert CARD not in saved["summary"] and saved["summary"].startswith("Outage explained; card ")  # redacted
    # Shown with the call (the call page reads it from the call's details), and the draft gives way to it.
    detail = await (await client.get(f"/api/calls/{cid}", headers=viewer)).json()
    assert detail["meta"]["wrapup"] == saved
    assert (await (await client.get(f"/api/calls/{cid}/wrapup", headers=agent)).json())["saved"] == saved
    audit = [(r["user"], r["action"], r["target"]) for r in Users(store).audit_rows()]
    assert ("ann", "save_wrapup", cid) in audit and ("ann", "read_wrapup", cid) in audit
