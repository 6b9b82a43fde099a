"""Transcription jobs through the API with the real Whisper tiny.en: upload, progress, JSON/SRT/VTT, audit."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from asr.metrics import normalize
from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.server import make_app

Gen = tuple[Path, dict[str, Any]]


@pytest.fixture()
async def jobs_client(web_config: Config, store: CallStore, transcriber: Any) -> AsyncIterator[TestClient[Any, Any]]:
    app = make_app(web_config, store, transcriber=transcriber)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


def upload(path: Path, name: str | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", path.read_bytes(), filename=name or path.name, content_type="application/octet-stream")
    return form


async def finished(client: TestClient[Any, Any], job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    seen: list[float] = []
    for _ in range(600):
        job: dict[str, Any] = await (await client.get(f"/api/jobs/{job_id}", headers=headers)).json()
        seen.append(job["progress"])
        if job["status"] in ("done", "failed"):
            job["seen"] = seen
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


async def test_upload_transcribe_and_download(jobs_client: TestClient[Any, Any], store: CallStore, generated: Gen,
                                              tokens: dict[str, str]) -> None:
    agent = {"Authorization": f"Bearer {tokens['ann']}"}
    viewer = {"Authorization": f"Bearer {tokens['vic']}"}
    path = generated[0] / "stereo_call.wav"
    assert (await jobs_client.post("/api/jobs", data=upload(path), headers=viewer)).status == 403
    r = await jobs_client.post("/api/jobs", data=upload(path), headers=agent)
    assert r.status == 201, await r.text()
    job = await r.json()
    assert job["status"] in ("queued", "running") and job["filename"] == "stereo_call.wav"
    done = await finished(jobs_client, job["id"], agent)
    assert done["status"] == "done", done
    assert done["progress"] == 1.0 and done["seen"] == sorted(done["seen"])
    listed = await (await jobs_client.get("/api/jobs", headers=viewer)).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]

    data = await (await jobs_client.get(f"/api/jobs/{job['id']}/result?format=json", headers=viewer)).json()
    words = " ".join(normalize(data["text"]))
    assert "internet" in words and "outage" in words
    assert {s["speaker"] for s in data["segments"]} == {"caller", "agent"}
    srt = await (await jobs_client.get(f"/api/jobs/{job['id']}/result?format=srt", headers=viewer)).text()
    assert srt.startswith("1\n") and "-->" in srt
    vtt = await jobs_client.get(f"/api/jobs/{job['id']}/result?format=vtt", headers=viewer)
    assert vtt.content_type == "text/vtt" and (await vtt.text()).startswith("WEBVTT")
    assert "stereo_call.vtt" in vtt.headers["Content-Disposition"]
    bad = await jobs_client.get(f"/api/jobs/{job['id']}/result?format=docx", headers=viewer)
    assert bad.status == 400

    rec = store.get_call(done["call_id"])
    assert rec.kind == "transcription" and "internet" in rec.text.lower()
    audit = {(r["user"], r["action"]) for r in Users(store).audit_rows(target=done["call_id"])}
    assert ("vic", "read_transcript") in audit


async def test_bad_uploads_fail_clearly(jobs_client: TestClient[Any, Any], generated: Gen,
                                        tokens: dict[str, str]) -> None:
    agent = {"Authorization": f"Bearer {tokens['ann']}"}
    r = await jobs_client.post("/api/jobs", data=upload(generated[0] / "utt_bill.wav", "notes.txt"), headers=agent)
    assert r.status == 415 and "audio" in (await r.json())["error"]
    r = await jobs_client.post("/api/jobs", json={"file": "x"}, headers=agent)
    assert r.status == 415
    r = await jobs_client.post("/api/jobs", data=upload(generated[0] / "not_audio.mp3"), headers=agent)
    assert r.status == 201
    job = await finished(jobs_client, (await r.json())["id"], agent)
    assert job["status"] == "failed" and job["error"]
    early = await jobs_client.get(f"/api/jobs/{job['id']}/result", headers=agent)
    assert early.status == 409 and "failed" in (await early.json())["error"]


async def test_card_read_aloud_never_reaches_job_results(jobs_client: TestClient[Any, Any], store: CallStore,
                                                         tmp_path: Path, tokens: dict[str, str]) -> None:
    """Whisper writes a card read in groups as "4-5-3-9, 5-7-8-7, ..." : redacted in every copy of the job."""
    from audio_fixtures.make_fixtures import SR, _place, speak, write_wav

    card = "4539578763621486"
    said = speak("sure, it is " + ", ".join(" ".join(card[i : i + 4]) for i in range(0, 16, 4)),
                 voice="en-us+m3", speed=130, pitch=35) * 0.8
    path = tmp_path / "card.wav"
    write_wav(path, _place([(0.3, said)], 0.6 + len(said) / SR))
    agent = {"Authorization": f"Bearer {tokens['ann']}"}
    r = await jobs_client.post("/api/jobs", data=upload(path), headers=agent)
    assert r.status == 201, await r.text()
    done = await finished(jobs_client, (await r.json())["id"], agent)
    assert done["status"] == "done", done
    texts = []
    for fmt in ("json", "txt", "srt", "vtt"):
        texts.append(await (await jobs_client.get(f"/api/jobs/{done['id']}/result?format={fmt}", headers=agent)).text())
    texts.append(await (await jobs_client.get(f"/api/calls/{done['call_id']}", headers=agent)).text())
    texts.append(await (await jobs_client.get("/api/calls", headers=agent)).text())
    assert "[CARD]" in texts[1], texts[1]
    for text in texts:
        runs = [re.sub(r"\D", "", m) for m in re.findall(r"\d(?:[\s,.\-]{0,3}\d){3,}", text)]
        assert not [d for d in runs if any(d[i : i + 4] in card for i in range(len(d) - 3))], text
