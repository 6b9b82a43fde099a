"""The call store: plain SQL over SQLite (default) with numbered migrations.

Every statement here is portable SQL with ``?`` placeholders so that a
PostgreSQL driver can run the same text after a placeholder swap; the store is
the only module that talks to the database.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StoreError(RuntimeError):
    """The call store could not be opened or a record is missing."""


# Each migration is applied once, in order, inside one transaction. Later
# features append new entries; never edit an entry that has shipped.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "calls and transcript segments",
        """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            duration REAL,
            outcome TEXT,
            language TEXT,
            model TEXT,
            text TEXT NOT NULL DEFAULT '',
            meta TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX calls_started_at ON calls (started_at);
        CREATE TABLE segments (
            call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            start REAL NOT NULL,
            "end" REAL NOT NULL,
            speaker TEXT NOT NULL,
            channel INTEGER NOT NULL,
            text TEXT NOT NULL,
            avg_logprob REAL,
            no_speech_prob REAL,
            words TEXT NOT NULL DEFAULT '[]',
            extra TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (call_id, idx)
        );
        """,
    ),
    (
        2,
        "live call turns and events",
        """
        CREATE TABLE turns (
            call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            caller_text TEXT NOT NULL,
            agent_text TEXT NOT NULL,
            sentiment TEXT,
            sentiment_score REAL,
            voice_to_voice_ms REAL,
            timings TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (call_id, idx)
        );
        CREATE TABLE events (
            call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            t REAL NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (call_id, seq)
        );
        CREATE INDEX events_type ON events (type);
        """,
    ),
    (
        3,
        "console users, API tokens, audit log and transcription jobs",
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
            token_hash TEXT NOT NULL UNIQUE,
            label TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            last_used_at REAL,
            revoked INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE audit_log (
            id TEXT PRIMARY KEY,
            at REAL NOT NULL,
            user_name TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_at ON audit_log (at);
        CREATE TABLE transcription_jobs (
            id TEXT PRIMARY KEY,
            filename TEXT NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL,
            progress REAL NOT NULL DEFAULT 0,
            created_by TEXT NOT NULL,
            created_at REAL NOT NULL,
            finished_at REAL,
            error TEXT,
            call_id TEXT,
            result TEXT
        );
        """,
    ),
]


@dataclass
class CallRecord:
    """One call (live or transcribed) as stored."""

    id: str
    kind: str
    source: str
    started_at: float
    ended_at: float | None
    duration: float | None
    outcome: str | None
    language: str | None
    model: str | None
    text: str
    meta: dict[str, Any]


def _sqlite_path(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    if url == "sqlite://" or url == ":memory:":
        return ":memory:"
    raise StoreError(
        f"unsupported store URL {url!r}: use sqlite:///path/to/calls.db "
        "(PostgreSQL support goes through the same SQL; see README)"
    )


class CallStore:
    """Thread-safe access to the call store; one connection per store object."""

    def __init__(self, url: str) -> None:
        path = _sqlite_path(url)
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store directory for {path}: {exc}") from None
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the call store {path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA foreign_keys = ON")
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
        self.migrate()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements atomically; rolls back on any error."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        """The highest migration applied."""
        with self._lock:
            row = self._db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> None:
        """Apply every migration not yet applied."""
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {r[0] for r in self._db.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in MIGRATIONS:
                if version in done:
                    continue
                with self.transaction() as db:
                    for statement in sql.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (version, name, time.time()),
                    )

    def add_call(
        self,
        kind: str,
        source: str,
        *,
        call_id: str | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        duration: float | None = None,
        outcome: str | None = None,
        language: str | None = None,
        model: str | None = None,
        text: str = "",
        meta: dict[str, Any] | None = None,
        segments: Sequence[dict[str, Any]] = (),
    ) -> str:
        """Insert a call with its transcript segments; returns the call id."""
        cid = call_id or uuid.uuid4().hex[:16]
        with self.transaction() as db:
            db.execute(
                "INSERT INTO calls (id, kind, source, started_at, ended_at, duration, outcome,"
                " language, model, text, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    kind,
                    source,
                    time.time() if started_at is None else started_at,
                    ended_at,
                    duration,
                    outcome,
                    language,
                    model,
                    text,
                    json.dumps(meta or {}),
                ),
            )
            self._insert_segments(db, cid, segments, 0)
        return cid

    def add_segments(self, call_id: str, segments: Sequence[dict[str, Any]]) -> None:
        """Append transcript segments to an existing call."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM segments WHERE call_id = ?", (call_id,)
            ).fetchone()
            self._insert_segments(db, call_id, segments, int(row[0]))

    @staticmethod
    def _insert_segments(
        db: sqlite3.Connection, call_id: str, segments: Sequence[dict[str, Any]], first: int
    ) -> None:
        known = {"start", "end", "speaker", "channel", "text", "avg_logprob", "no_speech_prob", "words"}
        for i, seg in enumerate(segments, start=first):
            extra = {k: v for k, v in seg.items() if k not in known}
            db.execute(
                'INSERT INTO segments (call_id, idx, start, "end", speaker, channel, text,'
                " avg_logprob, no_speech_prob, words, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    i,
                    float(seg["start"]),
                    float(seg["end"]),
                    str(seg.get("speaker", "")),
                    int(seg.get("channel", 0)),
                    str(seg.get("text", "")),
                    seg.get("avg_logprob"),
                    seg.get("no_speech_prob"),
                    json.dumps(seg.get("words", [])),
                    json.dumps(extra),
                ),
            )

    def update_call(self, call_id: str, **fields: Any) -> None:
        """Set columns of a call (meta is merged, not replaced)."""
        allowed = {"ended_at", "duration", "outcome", "language", "model", "text", "meta"}
        unknown = set(fields) - allowed
        if unknown:
            raise StoreError(f"cannot update {sorted(unknown)} on a call")
        if "meta" in fields:
            merged = self.get_call(call_id).meta
            merged.update(fields["meta"])
            fields["meta"] = json.dumps(merged)
        if not fields:
            return
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE calls SET {assignments} WHERE id = ?", (*fields.values(), call_id))

    def add_turns(self, call_id: str, turns: Sequence[dict[str, Any]]) -> None:
        """Store the turns of a live call (timings kept as JSON)."""
        main = {"index", "caller_text", "agent_text", "sentiment", "sentiment_score", "voice_to_voice_ms"}
        with self.transaction() as db:
            for t in turns:
                db.execute(
                    "INSERT INTO turns (call_id, idx, caller_text, agent_text, sentiment, sentiment_score,"
                    " voice_to_voice_ms, timings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (call_id, int(t["index"]), t.get("caller_text", ""), t.get("agent_text", ""),
                     t.get("sentiment"), t.get("sentiment_score"), t.get("voice_to_voice_ms"),
                     json.dumps({k: v for k, v in t.items() if k not in main})),
                )

    def turns(self, call_id: str) -> list[dict[str, Any]]:
        """The turns of a call in order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM turns WHERE call_id = ? ORDER BY idx", (call_id,)).fetchall()
        out = []
        for r in rows:
            item = {"index": r["idx"], "caller_text": r["caller_text"], "agent_text": r["agent_text"],
                    "sentiment": r["sentiment"], "sentiment_score": r["sentiment_score"],
                    "voice_to_voice_ms": r["voice_to_voice_ms"]}
            item.update(json.loads(r["timings"]))
            out.append(item)
        return out

    def add_events(self, call_id: str, events: Sequence[dict[str, Any]]) -> None:
        """Store call events (barge_in, transfer, reprompt, hangup...)."""
        with self.transaction() as db:
            row = db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM events WHERE call_id = ?", (call_id,)).fetchone()
            for i, e in enumerate(events, start=int(row[0])):
                data = {k: v for k, v in e.items() if k not in ("t", "type")}
                db.execute("INSERT INTO events (call_id, seq, t, type, data) VALUES (?, ?, ?, ?, ?)",
                           (call_id, i, float(e.get("t", 0.0)), str(e["type"]), json.dumps(data)))

    def events(self, call_id: str) -> list[dict[str, Any]]:
        """The events of a call in order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM events WHERE call_id = ? ORDER BY seq", (call_id,)).fetchall()
        return [{"t": r["t"], "type": r["type"], **json.loads(r["data"])} for r in rows]

    @staticmethod
    def _record(row: sqlite3.Row) -> CallRecord:
        data = dict(row)
        data["meta"] = json.loads(data["meta"] or "{}")
        return CallRecord(**data)

    def get_call(self, call_id: str) -> CallRecord:
        """One call by id (a unique prefix is accepted)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM calls WHERE id = ? OR id LIKE ? LIMIT 2", (call_id, call_id + "%")
            ).fetchall()
        exact = [r for r in rows if r["id"] == call_id]
        if exact:
            return self._record(exact[0])
        if len(rows) == 1:
            return self._record(rows[0])
        if not rows:
            raise StoreError(f"no call with id {call_id!r}; `voice-agent calls list` shows the ids")
        raise StoreError(f"call id prefix {call_id!r} is ambiguous; give more characters")

    def list_calls(self, limit: int = 50, kind: str | None = None) -> list[CallRecord]:
        """Most recent calls first."""
        sql = "SELECT * FROM calls"
        args: list[Any] = []
        if kind:
            sql += " WHERE kind = ?"
            args.append(kind)
        sql += " ORDER BY started_at DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [self._record(r) for r in rows]

    def segments(self, call_id: str) -> list[dict[str, Any]]:
        """The transcript segments of a call in time order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM segments WHERE call_id = ? ORDER BY start, idx", (call_id,)
            ).fetchall()
        out = []
        for r in rows:
            seg: dict[str, Any] = {
                "start": r["start"],
                "end": r["end"],
                "speaker": r["speaker"],
                "channel": r["channel"],
                "text": r["text"],
                "avg_logprob": r["avg_logprob"],
                "no_speech_prob": r["no_speech_prob"],
                "words": json.loads(r["words"]),
            }
            seg.update(json.loads(r["extra"]))
            out.append(seg)
        return out
