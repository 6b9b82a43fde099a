"""Retention: recordings, transcripts and uploads older than configured deleted by ``serve`` on a schedule.

``apply_retention`` is one pass (blocking: store and files); ``RetentionService`` runs it in a worker
thread every ``retention.interval_s`` beside the other front ends of ``serve``. Each deletion writes
an audit row (user ``retention``); log lines carry counts only, never what was deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from voice_agent.config import Config
from voice_agent.logs import log_event
from voice_agent.store import CallStore

log = logging.getLogger("voice_agent.retention")
DAY = 86400.0
ACTOR = "retention"


def _unlink(path: str) -> bool:
    if not path:
        return False
    p = Path(path)
    try:
        if p.is_file():
            p.unlink()
            return True
    except OSError as exc:
        log_event(log, "retention_file_left", logging.WARNING, file=p.name, error=exc.strerror or str(exc))
    return False


def apply_retention(store: CallStore, config: Config, now: float | None = None) -> dict[str, int]:
    """Delete what the retention settings say has expired; how many recordings, transcripts and uploads."""
    r = config.retention
    now = time.time() if now is None else now
    done = {"recordings": 0, "transcripts": 0, "uploads": 0}
    if r.recordings_days > 0:
        for call_id, path in store.recordings_before(now - r.recordings_days * DAY):
            removed = _unlink(path)
            store.drop_recording(call_id)
            if removed:
                store.add_audit(ACTOR, "retention_delete_recording", call_id,
                                {"older_than_days": r.recordings_days})
                done["recordings"] += 1
    if r.transcripts_days > 0:
        for call_id in store.transcripts_before(now - r.transcripts_days * DAY):
            rows = store.drop_transcript(call_id)
            store.add_audit(ACTOR, "retention_delete_transcript", call_id,
                            {"older_than_days": r.transcripts_days, "rows": rows})
            done["transcripts"] += 1
    if r.uploads_days > 0:
        for job_id, path in store.uploads_before(now - r.uploads_days * DAY):
            removed = _unlink(path)
            store.drop_upload(job_id)
            if removed:
                store.add_audit(ACTOR, "retention_delete_upload", job_id, {"older_than_days": r.uploads_days})
                done["uploads"] += 1
    if any(done.values()):
        store.compact()
    return done


class RetentionService:
    """A front end of ``serve`` (start/stop) that applies retention every ``retention.interval_s``, off the loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._task: asyncio.Task[Any] | None = None
        self._stop = asyncio.Event()
        self.passes = 0

    def _once(self) -> dict[str, int]:
        store = CallStore.from_config(self.config)
        try:
            return apply_retention(store, self.config)
        finally:
            store.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                done = await loop.run_in_executor(None, self._once)
                self.passes += 1
                log_event(log, "retention_applied", **done)
            except Exception as exc:  # the next pass tries again; serving goes on
                log_event(log, "retention_failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(self._stop.wait(), self.config.retention.interval_s)
            except TimeoutError:
                pass

    async def start(self) -> None:
        """Begin the schedule (nothing to do when every retention period is 0)."""
        if self.config.retention.enabled:
            self._stop.clear()
            self._task = asyncio.create_task(self._run())
            log_event(log, "retention_scheduled", interval_s=self.config.retention.interval_s,
                      recordings_days=self.config.retention.recordings_days,
                      transcripts_days=self.config.retention.transcripts_days,
                      uploads_days=self.config.retention.uploads_days)

    async def stop(self) -> None:
        """Stop after the pass in progress."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None


__all__ = ["RetentionService", "apply_retention"]
