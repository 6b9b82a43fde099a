"""Retention on SQLite and PostgreSQL: what is older than the settings goes, audited; the schedule runs off the loop."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from voice_agent.config import Config, load_config
from voice_agent.protection.retention import DAY, RetentionService, apply_retention
from voice_agent.store import CallFilter, CallStore

NOW = time.time()


def make_config(tmp_path: Path, store_url: str, **retention: float) -> Config:
    return load_config(env={}, overrides={"data_dir": str(tmp_path / "home"), "store": {"url": store_url},
                                          "retention": retention})


def seed(config: Config, store: CallStore) -> dict[str, str]:
    """An old and a new live call with recordings, and an old and a new upload with its transcription."""
    out = {}
    for name, age in (("old", 10), ("new", 0)):
        rec = config.recordings_path / f"{name}.wav"
        rec.parent.mkdir(parents=True, exist_ok=True)
        rec.write_bytes(b"RIFF" + os.urandom(100))
        cid = store.add_call("phone", "sip:+15550001@h", started_at=NOW - age * DAY, outcome="resolved",
                             text=f"{name} words", meta={"recording": str(rec), "summary": f"{name} summary"},
                             segments=[{"start": 0, "end": 1, "text": f"{name} words"}])
        store.add_turns(cid, [{"index": 0, "caller_text": f"{name} words", "agent_text": "ok"}])
        store.add_events(cid, [{"type": "caption", "text": f"{name} words"}])
        out[name] = cid
        upload = config.data_path / "uploads" / f"{name}.mp3"
        upload.parent.mkdir(parents=True, exist_ok=True)
        upload.write_bytes(b"ID3" + os.urandom(100))
        job = store.add_job(f"{name}.mp3", str(upload), "ann")
        tcid = store.add_call("transcription", str(upload), started_at=NOW - age * DAY, outcome="transcribed",
                              text=f"{name} upload words", meta={"recording": str(upload), "job": job})
        store.update_job(job, status="done", call_id=tcid, result={"text": f"{name} upload words"})
        with store.transaction() as db:  # the upload arrived `age` days ago
            db.execute("UPDATE transcription_jobs SET created_at = ? WHERE id = ?", (NOW - age * DAY, job))
        out[f"{name}_job"], out[f"{name}_upload_call"] = job, tcid
    store.add_call("phone", "sip:+15550002@h", call_id="live", started_at=NOW - 30 * DAY)  # not ended: kept
    with store.transaction() as db:
        db.execute("UPDATE calls SET outcome = 'active' WHERE id = 'live'")
    return out


def test_retention_deletes_what_is_older_than_configured_and_audits_each(tmp_path: Path, store_url: str) -> None:
    config = make_config(tmp_path, store_url, recordings_days=7, transcripts_days=5, uploads_days=3)
    store = CallStore(store_url)
    ids = seed(config, store)
    done = apply_retention(store, config, now=NOW)
    assert done == {"recordings": 1, "transcripts": 2, "uploads": 1}
    rec_dir, uploads = config.recordings_path, config.data_path / "uploads"
    assert not (rec_dir / "old.wav").exists() and (rec_dir / "new.wav").exists()
    assert not (uploads / "old.mp3").exists() and (uploads / "new.mp3").exists()
    old = store.get_call(ids["old"])
    assert old.text == "" and "recording" not in old.meta and "summary" not in old.meta
    assert old.outcome == "resolved" and old.duration is None  # the call itself (when, outcome) stays
    assert store.segments(ids["old"]) == [] and store.turns(ids["old"]) == [] and store.events(ids["old"]) == []
    assert store.job_result(ids["old_job"]) is None and store.job_result(ids["new_job"]) is not None
    assert store.search_calls(CallFilter(q="old"))[1] == 0
    new = store.get_call(ids["new"])
    assert new.text == "new words" and store.turns(ids["new"]) and new.meta["summary"] == "new summary"
    assert store.get_call("live").outcome == "active"
    audit = store.audit_rows(limit=20)
    assert {(r["user"], r["action"], r["target"]) for r in audit} == {
        ("retention", "retention_delete_recording", ids["old"]),
        ("retention", "retention_delete_transcript", ids["old"]),
        ("retention", "retention_delete_transcript", ids["old_upload_call"]),
        ("retention", "retention_delete_upload", ids["old_job"])}
    assert apply_retention(store, config, now=NOW) == {"recordings": 0, "transcripts": 0, "uploads": 0}
    store.close()


def test_zero_keeps_everything(tmp_path: Path, store_url: str) -> None:
    config = make_config(tmp_path, store_url)
    store = CallStore(store_url)
    ids = seed(config, store)
    assert apply_retention(store, config, now=NOW + 1000 * DAY) == {"recordings": 0, "transcripts": 0, "uploads": 0}
    assert store.get_call(ids["old"]).text == "old words" and (config.recordings_path / "old.wav").exists()
    store.close()


async def test_the_schedule_applies_retention_in_a_thread_until_stopped(tmp_path: Path) -> None:
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'calls.db'}", recordings_days=1, interval_s=0.05)
    store = CallStore(config.store_url)
    seed(config, store)
    store.close()
    service = RetentionService(config)
    await service.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while service.passes < 2:  # waits on the schedule's own progress, not a fixed delay
        assert loop.time() < deadline, "retention did not run twice"
        await asyncio.sleep(0.02)
    await service.stop()
    assert not (config.recordings_path / "old.wav").exists()
    idle = RetentionService(make_config(tmp_path, config.store_url))
    await idle.start()
    assert idle._task is None  # nothing configured: no schedule
    await idle.stop()
