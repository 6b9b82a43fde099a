"""Data protection's SQL: the key the store is sealed with, key-rotation batches, retention and erasure look-ups.

The mechanisms (AES-GCM, keyed hashes) are ``voice_agent.protection.cipher``; the operations that use
these methods are ``voice_agent.protection.rotation``, ``.retention`` and ``.erasure``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from voice_agent.protection.cipher import TEXT_PREFIX, sealed_key_id
from voice_agent.store.calls import ACTIVE, CallTables
from voice_agent.store.errors import StoreKeyError

# Every sealed column, by table: (primary key, sealed columns). A new column a person's words reach belongs here.
SEALED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "calls": (("id",), ("source", "text", "meta")),
    "segments": (("call_id", "idx"), ("text", "words", "extra")),
    "turns": (("call_id", "idx"), ("caller_text", "agent_text", "timings")),
    "events": (("call_id", "seq"), ("data",)),
    "transcription_jobs": (("id",), ("filename", "result", "error")),
    "kb_gaps": (("call_id", "turn"), ("question", "norm")),
    "audit_log": (("id",), ("detail", "target")),
}
# Columns sealed only for some values: an audit row's target is a call id, or a searched text ("q:...").
_SEALED_IF = {("audit_log", "target"): lambda v: v.startswith("q:")}
# What a call keeps of its details once its transcript has expired (no words, no summary).
_KEPT_META = ("channels", "recording", "media", "job", "recovered", "recording_deleted_at", "human_agents")


def _sealable(table: str, column: str, value: Any) -> bool:
    """Whether a stored value is (or must be) sealed."""
    if value is None:
        return False
    if sealed_key_id(value) is not None:
        return True
    only = _SEALED_IF.get((table, column))
    return only is None or only(value)


def _after(keys: Sequence[str], last: Sequence[Any] | None) -> tuple[str, list[Any]]:
    """Keyset pagination: rows whose key sorts after ``last``."""
    if last is None:
        return "", []
    if len(keys) == 1:
        return f" WHERE {keys[0]} > ?", [last[0]]
    a, b = keys
    return f" WHERE ({a} > ? OR ({a} = ? AND {b} > ?))", [last[0], last[0], last[1]]


class ProtectionTables(CallTables):
    """The protection_state table, re-sealing rows under a new key, and the queries retention and erasure need."""

    # ---- which key the store is sealed with ------------------------------------------------------
    def protection_state(self) -> dict[str, str]:
        """``key_id`` (new data is sealed with it), ``rotation`` (JSON, while one runs), ``retired`` (old key ids)."""
        with self.read() as db:
            return {r["name"]: r["value"] for r in db.rows("SELECT name, value FROM protection_state")}

    def set_protection_state(self, **values: str | None) -> None:
        """Set (or with None remove) state entries."""
        with self.transaction() as db:
            for name, value in values.items():
                db.execute("DELETE FROM protection_state WHERE name = ?", (name,))
                if value is not None:
                    db.execute("INSERT INTO protection_state (name, value) VALUES (?, ?)", (name, value))

    def check_key(self, allow_rotation: bool = False) -> None:
        """Refuse a configured key that does not match the store (clear StoreKeyError); remember the first key."""
        state = self.protection_state()
        store_key = state.get("key_id")
        rotation = json.loads(state["rotation"]) if state.get("rotation") else None
        if rotation and not allow_rotation:
            raise StoreKeyError(
                f"a key rotation of the call store {self.where} from key {rotation.get('from') or '(none)'} to key "
                f"{rotation['to']} was interrupted: run `voice-agent keys rotate --new-key-file FILE` again with the "
                f"file of key {rotation['to']} to finish it (every value is readable with one of the two keys)")
        if store_key is None:
            if self.cipher is not None and not rotation:
                self.set_protection_state(key_id=self.cipher.key_id)  # the first key this store is used with
            return
        if self.cipher is None:
            raise StoreKeyError(f"the call store {self.where} is encrypted (key {store_key}) but no key is configured: "
                                f"set protection.key_file (or VOICE_AGENT_KEY) to the key {store_key}")
        if self.cipher.key_id != store_key and not allow_rotation:
            if self.cipher.key_id in state.get("retired", "").split(","):
                raise StoreKeyError(
                    f"the configured key {self.cipher.key_id} is retired: `voice-agent keys rotate` re-encrypted the "
                    f"call store {self.where} with key {store_key}; set protection.key_file to that new key file")
            raise StoreKeyError(
                f"the call store {self.where} is encrypted with key {store_key}, not with the configured key "
                f"{self.cipher.key_id}: set protection.key_file to the right key file (to change keys, configure "
                "the current one and run `voice-agent keys rotate --new-key-file NEW`)")

    def sealed_counts(self) -> dict[str, dict[str, int]]:
        """Per table, how many rows are sealed with each key id ('' = stored in clear)."""
        out: dict[str, dict[str, int]] = {}
        with self.read() as db:
            for table, (_, columns) in SEALED.items():
                col, start = columns[0], len(TEXT_PREFIX) + 1
                rows = db.rows(f"SELECT CASE WHEN {col} LIKE '{TEXT_PREFIX}%' THEN SUBSTR({col}, {start}, 16)"
                               f" ELSE '' END AS k, COUNT(*) AS n FROM {table} GROUP BY 1")
                out[table] = {str(r["k"]): int(r["n"]) for r in rows}
        return out

    def reseal_rows(self, table: str, after: Sequence[Any] | None = None, limit: int = 200) -> tuple[int, Any]:
        """Re-seal the next ``limit`` rows of ``table`` with the current key (clear values are sealed too).

        Returns (rows changed, where to continue or None at the end). One transaction per batch: an
        interrupted rotation leaves each row whole, under the old key or the new one.
        """
        if self.cipher is None:
            raise StoreKeyError("re-encrypting needs a key")
        keys, columns = SEALED[table]
        where, args = _after(keys, after)
        changed = 0
        with self.transaction() as db:
            rows = db.rows(f"SELECT {', '.join((*keys, *columns))} FROM {table}{where} ORDER BY {', '.join(keys)}"
                           " LIMIT ?", [*args, limit])
            for r in rows:
                stale = [c for c in columns if _sealable(table, c, r[c]) and sealed_key_id(r[c]) != self.cipher.key_id]
                if not stale:
                    continue
                values: dict[str, Any] = {c: self.seal(self.unseal(r[c], f"a value of {table}")) for c in stale}
                if table == "calls":
                    meta = self.unseal_json(r["meta"], {}, "a call's details")
                    values["caller_ref"] = self._caller_ref(self.unseal(r["source"], "a call's source"))
                    values["customer_ref"] = self._customer_ref(meta) or ""
                    self._index_text(db, r["id"], self.unseal(r["text"], "a transcript") or "")
                assignments = ", ".join(f"{c} = ?" for c in values)
                match = " AND ".join(f"{k} = ?" for k in keys)
                db.execute(f"UPDATE {table} SET {assignments} WHERE {match}",
                           [*values.values(), *(r[k] for k in keys)])
                changed += 1
        last = tuple(rows[-1][k] for k in keys) if len(rows) == limit else None
        return changed, last

    def compact(self) -> None:
        """Give freed pages back and empty SQLite's write-ahead log, so deleted or re-encrypted values leave no
        copy in the database files (PostgreSQL: its autovacuum does this in time)."""
        if self.dialect.name != "sqlite":
            return
        with self._lock, self._errors():
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def recording_paths(self) -> list[str]:
        """Every recording a live call names (some may lie outside the recordings folder: ``call --record``)."""
        with self.read() as db:
            rows = db.rows("SELECT meta FROM calls WHERE kind <> 'transcription'")
        paths = (self.unseal_json(r["meta"], {}, "a call's details").get("recording") for r in rows)
        return [str(p) for p in paths if p]

    # ---- retention ----------------------------------------------------------------------------------
    def recordings_before(self, cutoff: float) -> list[tuple[str, str]]:
        """(call id, recording path) of ended live calls started before ``cutoff`` that still have a recording."""
        with self.read() as db:
            rows = db.rows("SELECT id, meta FROM calls WHERE started_at < ? AND recording_deleted_at IS NULL"
                           " AND outcome <> ? AND kind <> 'transcription'", (cutoff, ACTIVE))
        out = []
        for r in rows:
            path = self.unseal_json(r["meta"], {}, "a call's details").get("recording")
            out.append((str(r["id"]), str(path or "")))
        return out

    def drop_recording(self, call_id: str) -> None:
        """Mark a call's recording as deleted (its meta no longer names a file)."""
        now = time.time()
        with self.transaction() as db:
            row = db.row("SELECT meta FROM calls WHERE id = ?", (call_id,))
            if row is None:
                return
            meta = self.unseal_json(row["meta"], {}, "a call's details")
            meta.pop("recording", None)
            meta["recording_deleted_at"] = now
            db.execute("UPDATE calls SET meta = ?, recording_deleted_at = ? WHERE id = ?",
                       (self.seal_json(meta), now, call_id))

    def transcripts_before(self, cutoff: float) -> list[str]:
        """Ids of ended calls started before ``cutoff`` whose transcript is still kept."""
        with self.read() as db:
            rows = db.rows("SELECT id FROM calls WHERE started_at < ? AND transcript_deleted_at IS NULL"
                           " AND outcome <> ?", (cutoff, ACTIVE))
        return [str(r["id"]) for r in rows]

    def drop_transcript(self, call_id: str) -> dict[str, int]:
        """Delete what was said in a call (segments, turns, events, search terms, KB gaps, summary, job
        transcripts); the call's row keeps its times, outcome and recording. How many rows of each went."""
        now = time.time()
        counts = {}
        with self.transaction() as db:
            row = db.row("SELECT meta FROM calls WHERE id = ?", (call_id,))
            if row is None:
                return {}
            for table in ("segments", "turns", "events", "kb_gaps", "call_terms"):
                counts[table] = db.count(f"DELETE FROM {table} WHERE call_id = ?", (call_id,))
            counts["job_results"] = db.count("UPDATE transcription_jobs SET result = NULL WHERE call_id = ?"
                                             " AND result IS NOT NULL", (call_id,))
            meta = self.unseal_json(row["meta"], {}, "a call's details")
            kept = {k: v for k, v in meta.items() if k in _KEPT_META}
            kept["transcript_deleted_at"] = now
            db.execute("UPDATE calls SET text = ?, meta = ?, transcript_deleted_at = ? WHERE id = ?",
                       (self.seal(""), self.seal_json(kept), now, call_id))
        return counts

    def uploads_before(self, cutoff: float) -> list[tuple[str, str]]:
        """(job id, path) of uploads older than ``cutoff`` whose file is still kept."""
        with self.read() as db:
            rows = db.rows("SELECT id, path FROM transcription_jobs WHERE created_at < ? AND path <> ''"
                           " AND status NOT IN ('queued', 'running')", (cutoff,))
        return [(str(r["id"]), str(r["path"])) for r in rows]

    def drop_upload(self, job_id: str) -> None:
        """Mark a job's uploaded file as deleted."""
        with self.transaction() as db:
            db.execute("UPDATE transcription_jobs SET path = '' WHERE id = ?", (job_id,))

    # ---- erasure ------------------------------------------------------------------------------------
    def calls_of(self, kind: str, value: str) -> tuple[list[str], list[str]]:
        """(ended, active) ids of the calls of one caller (``kind`` phone) or customer (``customer``)."""
        column = "caller_ref" if kind == "phone" else "customer_ref"
        ref = self.subject_ref(kind, value)
        with self.read() as db:
            rows = db.rows(f"SELECT id, outcome FROM calls WHERE {column} = ?", (ref,))
            legacy = db.rows(f"SELECT id, outcome, source, meta FROM calls WHERE {column} IS NULL")
        found = [(r["id"], r["outcome"]) for r in rows]
        for r in legacy:  # stored before references existed: compare in clear
            if kind == "phone":
                mine = self._caller_ref(self.unseal(r["source"], "a call's source")) == ref
            else:
                mine = self._customer_ref(self.unseal_json(r["meta"], {}, "a call's details")) == ref
            if mine:
                found.append((r["id"], r["outcome"]))
        ended = sorted(str(i) for i, o in found if o != ACTIVE)
        active = sorted(str(i) for i, o in found if o == ACTIVE)
        return ended, active


__all__ = ["SEALED", "ProtectionTables"]
