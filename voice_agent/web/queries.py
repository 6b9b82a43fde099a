"""Read-side SQL for the console: call search and deletion (portable SQL with ? placeholders)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from voice_agent.store import CallStore


@dataclass
class CallFilter:
    """Console search: words in the transcript, a date range, outcome, sentiment, kind."""

    q: str = ""
    since: float | None = None
    until: float | None = None
    outcome: str = ""
    sentiment: str = ""
    kind: str = ""
    limit: int = 50
    offset: int = 0


def search_calls(store: CallStore, f: CallFilter) -> tuple[list[dict[str, Any]], int]:
    """Matching calls, most recent first, and how many match in all."""
    where: list[str] = []
    args: list[Any] = []
    for word in f.q.split()[:8]:
        where.append("LOWER(text) LIKE ?")
        args.append("%" + word.lower().replace("%", "").replace("_", "") + "%")
    if f.since is not None:
        where.append("started_at >= ?")
        args.append(f.since)
    if f.until is not None:
        where.append("started_at < ?")
        args.append(f.until)
    if f.outcome:
        where.append("outcome = ?")
        args.append(f.outcome)
    if f.kind:
        where.append("kind = ?")
        args.append(f.kind)
    if f.sentiment:
        where.append("id IN (SELECT call_id FROM turns WHERE sentiment = ?)")
        args.append(f.sentiment)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    with store.transaction() as db:
        total = int(db.execute(f"SELECT COUNT(*) FROM calls{clause}", args).fetchone()[0])
        rows = db.execute(
            f"SELECT id, kind, source, started_at, duration, outcome, text, meta FROM calls{clause}"
            " ORDER BY started_at DESC LIMIT ? OFFSET ?", [*args, f.limit, f.offset]).fetchall()
        ids = [r[0] for r in rows]
        moods: dict[str, list[str]] = {}
        if ids:
            marks = ", ".join("?" for _ in ids)
            for cid, label in db.execute(
                    f"SELECT call_id, sentiment FROM turns WHERE call_id IN ({marks}) ORDER BY call_id, idx", ids):
                moods.setdefault(cid, []).append(label or "")
    out = []
    for r in rows:
        meta = json.loads(r[7] or "{}")
        labels = [m for m in moods.get(r[0], []) if m]
        out.append({"id": r[0], "kind": r[1], "source": r[2], "started_at": r[3], "duration": r[4],
                    "outcome": r[5], "preview": (r[6] or "")[:160], "turns": len(moods.get(r[0], [])),
                    "sentiment": labels[-1] if labels else meta.get("sentiment"),
                    "has_recording": bool(meta.get("recording"))})
    return out, total


def delete_call(store: CallStore, call_id: str) -> bool:
    """Delete a call with its transcript, turns and events; False when absent."""
    with store.transaction() as db:
        for table in ("segments", "turns", "events"):
            db.execute(f"DELETE FROM {table} WHERE call_id = ?", (call_id,))
        cur = db.execute("DELETE FROM calls WHERE id = ?", (call_id,))
    return bool(cur.rowcount)
