"""The API with a protection key: recordings and uploads decrypted on the fly for authorised users, sealed
on disk; whole-word search; erasure on request (admins only) with a receipt."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.web.conftest import PASSWORDS, ROLES, sign_in
from tests.web.test_jobs import finished, upload
from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.protection.files import MAGIC, is_sealed, open_recording
from voice_agent.protection.keys import write_key_file
from voice_agent.store import CallStore
from voice_agent.web.server import make_app

Client = TestClient[Any, Any]
Gen = tuple[Path, dict[str, Any]]


@pytest.fixture()
def keyed(web_config: Config, tmp_path: Path) -> tuple[Config, CallStore, dict[str, str]]:
    """A config with a key, its store (users in it) and a token per user."""
    write_key_file(tmp_path / "key")
    web_config.protection.key_file = str(tmp_path / "key")
    store = CallStore.from_config(web_config)
    users = Users(store)
    for name, role in ROLES.items():
        users.add(name, role, PASSWORDS[name])
    return web_config, store, {name: users.issue_token(name, "tests") for name in ROLES}


@pytest.fixture()
async def kclient(keyed: tuple[Config, CallStore, dict[str, str]], transcriber: Any) -> AsyncIterator[Client]:
    config, store, _ = keyed
    async with TestClient(TestServer(make_app(config, store, transcriber=transcriber), host="127.0.0.1")) as c:
        yield c


def auth(tokens: dict[str, str], name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[name]}"}


def stereo(seconds: float) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    pair = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], axis=1) * 0.3
    return (pair * 32767).astype("<i2").tobytes()


def sealed_call(config: Config, store: CallStore, audio: bytes) -> str:
    path = config.recordings_path / "c1.wav"
    w = open_recording(path, 8000, store.cipher)
    for i in range(0, len(audio), 640):
        w.writeframes(audio[i:i + 640])
    w.close()
    return store.add_call("phone", "sip:+447700900123@10.0.0.1", call_id="c1", outcome="resolved",
                          text="the gooseberry tariff please", meta={"recording": str(path)},
                          segments=[{"start": 0, "end": 2, "speaker": "caller",
                                     "text": "the gooseberry tariff please"}])


async def test_a_sealed_recording_streams_decrypted_to_agents_only(keyed: tuple[Config, CallStore, dict[str, str]],
                                                                   kclient: Client) -> None:
    config, store, tokens = keyed
    audio = stereo(5.0)
    cid = sealed_call(config, store, audio)
    path = config.recordings_path / "c1.wav"
    assert path.read_bytes().startswith(MAGIC) and audio[:64] not in path.read_bytes()
    assert (await kclient.get(f"/api/calls/{cid}/recording", headers=auth(tokens, "vic"))).status == 403
    r = await kclient.get(f"/api/calls/{cid}/recording", headers=auth(tokens, "ann"))
    assert r.status == 200 and r.content_type == "audio/wav" and r.headers["Cache-Control"] == "no-store"
    assert 'filename="c1.wav"' in r.headers["Content-Disposition"]
    body = await r.read()
    assert int(r.headers["Content-Length"]) == len(body)
    with wave.open(io.BytesIO(body)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000) and w.readframes(w.getnframes()) == audio
    assert ("ann", "read_recording") in {(a["user"], a["action"]) for a in store.audit_rows(target=cid)}
    # The console's player seeks with byte ranges: each decrypts only the chunks it spans.
    url, agent = f"/api/calls/{cid}/recording", auth(tokens, "ann")
    part = await kclient.get(url, headers={**agent, "Range": "bytes=70000-140099"})
    assert part.status == 206 and part.headers["Content-Range"] == f"bytes 70000-140099/{len(body)}"
    assert await part.read() == body[70000:140100] and part.headers["Accept-Ranges"] == "bytes"
    tail = await kclient.get(url, headers={**agent, "Range": "bytes=-100"})
    assert tail.status == 206 and await tail.read() == body[-100:]
    assert (await kclient.get(url, headers={**agent, "Range": f"bytes={len(body)}-"})).status == 416
    call = await (await kclient.get(f"/api/calls/{cid}", headers=auth(tokens, "vic"))).json()
    assert call["text"] == "the gooseberry tariff please" and call["recording_url"] == f"/api/calls/{cid}/recording"
    assert call["source"] == "sip:+447700900123@10.0.0.1"
    found = await (await kclient.get("/api/calls?q=Gooseberry", headers=auth(tokens, "vic"))).json()
    assert found["search_mode"] == "whole_words" and [c["id"] for c in found["calls"]] == [cid]
    part = await (await kclient.get("/api/calls?q=gooseb", headers=auth(tokens, "vic"))).json()
    assert part["total"] == 0


async def test_an_upload_is_sealed_on_disk_and_transcribed_from_memory(
        keyed: tuple[Config, CallStore, dict[str, str]], kclient: Client, generated: Gen) -> None:
    config, store, tokens = keyed
    source = generated[0] / "stereo_call.wav"
    r = await kclient.post("/api/jobs", data=upload(source), headers=auth(tokens, "ann"))
    assert r.status == 201, await r.text()
    job = await finished(kclient, (await r.json())["id"], auth(tokens, "ann"))
    assert job["status"] == "done", job
    assert job["filename"] == "stereo_call.wav"
    stored = list((config.data_path / "uploads").iterdir())
    assert len(stored) == 1 and is_sealed(stored[0]) and b"RIFF" not in stored[0].read_bytes()
    result = await (await kclient.get(f"/api/jobs/{job['id']}/result", headers=auth(tokens, "vic"))).json()
    assert "internet" in result["text"].lower() and result["file"] == stored[0].name
    rec = await kclient.get(f"/api/calls/{job['call_id']}/recording", headers=auth(tokens, "ann"))
    assert rec.status == 200 and await rec.read() == source.read_bytes()  # the upload as it was sent
    with store.read() as db:
        row = db.row("SELECT text, source FROM calls WHERE id = ?", (job["call_id"],))
    assert "internet" not in str(row[0]).lower() and "uploads" not in str(row[1])


async def test_erasure_endpoint_is_for_admins_and_answers_with_a_receipt(
        keyed: tuple[Config, CallStore, dict[str, str]], kclient: Client) -> None:
    config, store, tokens = keyed
    cid = sealed_call(config, store, stereo(0.5))
    body = {"phone": "+44 7700 900123"}
    for name in ("vic", "ann"):
        assert (await kclient.post("/api/erasure", json=body, headers=auth(tokens, name))).status == 403
    assert (await kclient.post("/api/erasure", json=body)).status == 401
    bad = await kclient.post("/api/erasure", json={"phone": "+44", "customer_id": "x"}, headers=auth(tokens, "ada"))
    assert bad.status == 400 and "name one subject" in (await bad.json())["error"]
    assert (await kclient.post("/api/erasure", json={"phone": 5}, headers=auth(tokens, "ada"))).status == 400
    csrf = await sign_in(kclient, "ada")  # the console: cookie plus CSRF header
    assert (await kclient.post("/api/erasure", json=body)).status == 403
    r = await kclient.post("/api/erasure", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status == 200, await r.text()
    receipt = await r.json()
    assert receipt["call_ids"] == [cid] and receipt["deleted"]["recordings"] == 1
    assert receipt["requested_by"] == "ada" and receipt["via"] == "api"
    assert not (config.recordings_path / "c1.wav").exists()
    assert (await kclient.get(f"/api/calls/{cid}", headers=auth(tokens, "ada"))).status == 404
    audit = await (await kclient.get("/api/audit", headers=auth(tokens, "ada"))).json()
    assert any(a["action"] == "erasure" and a["target"] == receipt["receipt"] for a in audit["audit"])
    spec = await (await kclient.get("/api/openapi.json")).json()
    assert "/api/erasure" in spec["paths"]


async def test_an_unreadable_recording_is_one_clear_error(keyed: tuple[Config, CallStore, dict[str, str]],
                                                          kclient: Client, tmp_path: Path) -> None:
    config, store, tokens = keyed
    from voice_agent.protection.cipher import Cipher, Key

    path = config.recordings_path / "foreign.wav"
    w = open_recording(path, 8000, Cipher(Key(b"\x07" * 32)))  # sealed with a key this server does not hold
    w.writeframes(stereo(0.2))
    w.close()
    store.add_call("phone", "sip:1@h", call_id="c2", outcome="resolved", meta={"recording": str(path)})
    r = await kclient.get("/api/calls/c2/recording", headers=auth(tokens, "ann"))
    assert r.status == 500
    error = (await r.json())["error"]
    assert "cannot be decrypted" in error and "not configured" in error and str(config.recordings_path) not in error


async def test_a_browser_call_with_a_key_is_recorded_and_stored_sealed(
        keyed: tuple[Config, CallStore, dict[str, str]], generated: Gen) -> None:
    from telephony.webrtc import allow_loopback_candidates
    from tests.web.conftest import fake_engine
    from tests.web.rtc_client import RtcPeer
    from tests.web.test_webrtc import speech, wait_saved
    from voice_agent.engine import recorder_for

    config, store, tokens = keyed
    engine = fake_engine()
    engine.settings.recorder = recorder_for(config)  # as Engine.from_config does
    allow_loopback_candidates(True)
    try:
        async with TestClient(TestServer(make_app(config, store, engine), host="127.0.0.1")) as client:
            caller = RtcPeer(speech(generated, "utt_bill.wav"))
            body = await caller.connect(client, "/api/webrtc/offer")
            try:
                await caller.wait_for("caller_turn", timeout=30)
                await caller.wait_for("agent_text")
                caller.send({"type": "hangup"})
                await caller.wait_for("call_end")
            finally:
                await caller.close()
            await wait_saved(client, body["call_id"])
            cid = body["call_id"]
            call = await (await client.get(f"/api/calls/{cid}", headers=auth(tokens, "vic"))).json()
            assert "opening hours" in call["text"]
            r = await client.get(f"/api/calls/{cid}/recording", headers=auth(tokens, "ann"))
            assert r.status == 200 and (await r.read())[:4] == b"RIFF"
    finally:
        allow_loopback_candidates(False)
    recording = config.recordings_path / f"web-{cid}.wav"
    assert recording.read_bytes().startswith(MAGIC)
    with store.read() as db:
        stored = [str(v) for t in ("calls", "segments", "turns", "events") for row in db.rows(f"SELECT * FROM {t}")
                  for v in row]
    assert not [v for v in stored if "opening hours" in v or "browser" in v]
