"""Deleting a call through the API deletes every copy: job transcript, uploaded audio, recording, rows (issue 12)."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp.test_utils import TestClient, TestServer

from voice_agent.config import Config
from voice_agent.store import CallStore
from voice_agent.web.server import make_app


class FakeTranscript:
    def to_dict(self) -> dict[str, Any]:
        return {"duration": 1.0, "language": "en", "model": "fake", "channels": 1, "text": "my router is down",
                "segments": [{"start": 0.0, "end": 1.0, "speaker": "caller", "channel": 0,
                              "text": "my router is down", "words": []}]}


class FakeTranscriber:
    def transcribe(self, path: Path, **kwargs: Any) -> FakeTranscript:
        return FakeTranscript()


def tone(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(16000) / 5) * 8000).astype(np.int16).tobytes())
    return path


async def test_deleting_a_transcribed_upload_leaves_no_copy(web_config: Config, store: CallStore,
                                                            tokens: dict[str, str], tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {tokens['ada']}"}
    app = make_app(web_config, store, transcriber=FakeTranscriber())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        form = aiohttp.FormData()
        form.add_field("file", tone(tmp_path / "call.wav").read_bytes(), filename="call.wav")
        r = await client.post("/api/jobs", data=form, headers=admin)
        assert r.status == 201, await r.text()
        job_id = (await r.json())["id"]
        for _ in range(300):
            job = await (await client.get(f"/api/jobs/{job_id}", headers=admin)).json()
            if job["status"] in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        assert job["status"] == "done", job
        uploads = list((web_config.data_path / "uploads").iterdir())
        assert len(uploads) == 1
        assert uploads[0].stat().st_mode & 0o777 == 0o600  # call audio is owner-only
        assert uploads[0].parent.stat().st_mode & 0o777 == 0o700
        assert (await client.get(f"/api/jobs/{job_id}/result", headers=admin)).status == 200

        r = await client.delete(f"/api/calls/{job['call_id']}", headers=admin)
        assert r.status == 200, await r.text()
        assert not uploads[0].exists()
        assert (await client.get(f"/api/jobs/{job_id}/result", headers=admin)).status == 404
        assert (await client.get(f"/api/jobs/{job_id}", headers=admin)).status == 404
        assert job_id not in [j["id"] for j in (await (await client.get("/api/jobs", headers=admin)).json())["jobs"]]
        assert (await client.get(f"/api/calls/{job['call_id']}", headers=admin)).status == 404
    assert store.segments(job["call_id"]) == []
