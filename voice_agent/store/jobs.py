"""Transcription jobs from the console: queued, running, done or failed, with the finished transcript."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from voice_agent.store.database import Database

_JOB_COLUMNS = ("id", "filename", "status", "progress", "created_by", "created_at", "finished_at", "error", "call_id")
_SETTABLE = {"status", "progress", "finished_at", "error", "call_id", "result"}


class JobTables(Database):
    """The transcription_jobs table (with a key, the file name, error and transcript are sealed)."""

    def _job(self, row: Any) -> dict[str, Any]:
        job = {k: row[k] for k in _JOB_COLUMNS}
        job["filename"] = self.unseal(job["filename"], "a job's file name")
        job["error"] = self.unseal(job["error"], "a job's error")
        return job

    def add_job(self, filename: str, path: str, user: str) -> str:
        """Record a queued job; returns its id."""
        job_id = uuid.uuid4().hex[:16]
        with self.transaction() as db:
            db.execute("INSERT INTO transcription_jobs (id, filename, path, status, progress, created_by, created_at)"
                       " VALUES (?, ?, ?, 'queued', 0, ?, ?)", (job_id, self.seal(filename), path, user, time.time()))
        return job_id

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set a job's status, progress, error, call id or result (a dict, kept as JSON)."""
        unknown = set(fields) - _SETTABLE
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} on a job")
        if "result" in fields and not isinstance(fields["result"], str | None):
            fields["result"] = json.dumps(fields["result"])
        for name in ("result", "error"):
            if isinstance(fields.get(name), str):
                fields[name] = self.seal(fields[name])
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE transcription_jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id))

    def job(self, job_id: str) -> dict[str, Any] | None:
        """One job without its result."""
        with self.read() as db:
            row = db.row(f"SELECT {', '.join(_JOB_COLUMNS)} FROM transcription_jobs WHERE id = ?", (job_id,))
        return self._job(row) if row else None

    def recent_jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Recent jobs first."""
        with self.read() as db:
            rows = db.rows(f"SELECT {', '.join(_JOB_COLUMNS)} FROM transcription_jobs"
                           " ORDER BY created_at DESC LIMIT ?", (limit,))
        return [self._job(r) for r in rows]

    def job_result(self, job_id: str) -> dict[str, Any] | None:
        """The transcript of a finished job."""
        with self.read() as db:
            value = db.value("SELECT result FROM transcription_jobs WHERE id = ? AND status = 'done'", (job_id,))
        text = self.unseal(value, "a job's transcript")
        return json.loads(text) if text else None
