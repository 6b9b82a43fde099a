"""Per-call analytics rows and the questions the knowledge base could not answer (KB gaps).

The numbers are computed by ``voice_agent.analytics`` when a call ends (and for older calls on the
first read); this module only stores and reads them, with plain SQL that SQLite and PostgreSQL both run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from voice_agent.store.database import Database

# Columns of call_analytics besides call_id and data (the JSON of topics, trajectory, QA checks).
ANALYTICS_COLUMNS = ("version", "started_at", "kind", "outcome", "transfer_reason", "handle_s", "turns",
                     "caller_talk_s", "agent_talk_s", "silence_s", "overlap_s", "barge_ins", "sentiment_start",
                     "sentiment_end", "sentiment_mean", "qa_passed", "qa_checked")
_LIVE_KINDS = ("webrtc", "phone", "simulated")  # calls the assistant answered (not transcribed recordings)


def _range(column: str, since: float | None, until: float | None) -> tuple[str, list[Any]]:
    where, args = [], []
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        args.append(until)
    return " AND ".join(where), args


class AnalyticsTables(Database):
    """The call_analytics and kb_gaps tables."""

    def put_analytics(self, call_id: str, row: dict[str, Any], gaps: Sequence[dict[str, Any]]) -> None:
        """Store (or replace) one call's analytics and its unanswered questions.

        A question already marked as covered by a KB entry keeps that mark when the call is computed again.
        """
        values = [row[c] for c in ANALYTICS_COLUMNS]
        data = json.dumps(row.get("data", {}))
        columns = ", ".join(ANALYTICS_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*ANALYTICS_COLUMNS, "data"))
        with self.transaction() as db:
            db.execute(f"INSERT INTO call_analytics (call_id, {columns}, data)"
                       f" VALUES (?, {', '.join('?' for _ in ANALYTICS_COLUMNS)}, ?)"
                       f" ON CONFLICT (call_id) DO UPDATE SET {updates}", (call_id, *values, data))
            kept = {int(r["turn"]): str(r["entry"])
                    for r in db.rows("SELECT turn, entry FROM kb_gaps WHERE call_id = ?", (call_id,))}
            db.execute("DELETE FROM kb_gaps WHERE call_id = ?", (call_id,))
            for gap in gaps:
                turn = int(gap["turn"])
                db.execute("INSERT INTO kb_gaps (call_id, turn, at, question, norm, entry) VALUES (?, ?, ?, ?, ?, ?)",
                           (call_id, turn, float(gap["at"]), self.seal(str(gap["question"])),
                            self.seal(str(gap["norm"])), kept.get(turn, "")))  # caller's words: sealed with a key

    def calls_needing_analytics(self, version: int, limit: int = 200) -> list[str]:
        """Ended calls of the assistant with no analytics yet, or analytics of an older version (oldest first)."""
        kinds = ", ".join("?" for _ in _LIVE_KINDS)
        with self.read() as db:
            rows = db.rows(
                "SELECT c.id FROM calls c LEFT JOIN call_analytics a ON a.call_id = c.id"
                f" WHERE c.kind IN ({kinds}) AND c.outcome IS NOT NULL AND c.outcome <> 'active'"
                # a call whose transcript retention deleted keeps the numbers computed while it had one
                " AND (a.call_id IS NULL OR (a.version < ? AND c.transcript_deleted_at IS NULL))"
                " ORDER BY c.started_at LIMIT ?",
                (*_LIVE_KINDS, version, limit))
        return [str(r["id"]) for r in rows]

    def analytics_rows(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        """Every call's analytics in a time range (by the call's start), oldest first."""
        clause, args = _range("started_at", since, until)
        with self.read() as db:
            rows = db.rows(f"SELECT call_id, {', '.join(ANALYTICS_COLUMNS)}, data FROM call_analytics"
                           f"{' WHERE ' + clause if clause else ''} ORDER BY started_at", args)
        out = []
        for r in rows:
            item = {c: r[c] for c in ("call_id", *ANALYTICS_COLUMNS)}
            item["data"] = json.loads(r["data"] or "{}")
            out.append(item)
        return out

    def call_analytics(self, call_id: str) -> dict[str, Any] | None:
        """One call's analytics, or None when not computed."""
        with self.read() as db:
            r = db.row(f"SELECT call_id, {', '.join(ANALYTICS_COLUMNS)}, data FROM call_analytics WHERE call_id = ?",
                       (call_id,))
        if r is None:
            return None
        item = {c: r[c] for c in ("call_id", *ANALYTICS_COLUMNS)}
        item["data"] = json.loads(r["data"] or "{}")
        return item

    def latency_values(self, since: float | None = None, until: float | None = None) -> list[float]:
        """Voice-to-voice latency (ms) of every answered turn of the calls started in the range."""
        clause, args = _range("c.started_at", since, until)
        with self.read() as db:
            rows = db.rows("SELECT t.voice_to_voice_ms FROM turns t JOIN calls c ON c.id = t.call_id"
                           " JOIN call_analytics a ON a.call_id = c.id WHERE t.voice_to_voice_ms IS NOT NULL"
                           f"{' AND ' + clause if clause else ''}", args)
        return [float(r[0]) for r in rows]

    def kb_gap_rows(self, since: float | None = None, until: float | None = None,
                    covered: bool = False) -> list[dict[str, Any]]:
        """Unanswered questions asked in the range, newest first; ``covered`` includes those a KB entry now covers."""
        clause, args = _range("at", since, until)
        where = [w for w in (clause, "" if covered else "entry = ''") if w]
        with self.read() as db:
            rows = db.rows("SELECT call_id, turn, at, question, norm, entry FROM kb_gaps"
                           f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY at DESC", args)
        return [{"call_id": r["call_id"], "turn": int(r["turn"]), "at": float(r["at"]),
                 "question": self.unseal(r["question"], "an unanswered question"),
                 "norm": self.unseal(r["norm"], "an unanswered question"), "entry": r["entry"]} for r in rows]

    def cover_kb_gaps(self, norms: Sequence[str], entry: str) -> int:
        """Mark the unanswered questions with these normalised texts as covered by a new KB entry; how many."""
        if not norms:
            return 0
        if self.cipher is not None:  # sealed texts differ each time: compared in clear, here
            wanted = set(norms)
            with self.transaction() as db:
                rows = db.rows("SELECT call_id, turn, norm FROM kb_gaps WHERE entry = ''")
                hits = [(r["call_id"], r["turn"]) for r in rows if self.unseal(r["norm"], "a question") in wanted]
                for call_id, turn in hits:
                    db.execute("UPDATE kb_gaps SET entry = ? WHERE call_id = ? AND turn = ?", (entry, call_id, turn))
            return len(hits)
        marks = ", ".join("?" for _ in norms)
        with self.transaction() as db:
            return db.count(f"UPDATE kb_gaps SET entry = ? WHERE entry = '' AND norm IN ({marks})", (entry, *norms))
