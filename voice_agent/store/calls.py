"""Calls, transcript segments, turns and events: writes from calls and transcriptions, reads for the CLI and console."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_agent.protection.cipher import normalize_phone, plain_ref
from voice_agent.store.database import Database, Tx
from voice_agent.store.errors import StoreError

log = logging.getLogger("voice_agent.store")

ACTIVE = "active"  # the outcome of a live call until it ends
_CALL_COLUMNS = "id, kind, source, started_at, ended_at, duration, outcome, language, model, text, meta"
_SEGMENT_FIELDS = {"start", "end", "speaker", "channel", "text", "avg_logprob", "no_speech_prob", "words"}
_TURN_FIELDS = {"index", "caller_text", "agent_text", "sentiment", "sentiment_score", "voice_to_voice_ms"}


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


def _turn_segments(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Caller and agent segments rebuilt from stored turns (line times in seconds)."""
    out: list[dict[str, Any]] = []
    for t in turns:
        heard = float(t.get("end_of_speech") or t.get("asr_final") or 0.0)
        if t.get("caller_text"):
            out.append({"start": heard, "end": heard, "speaker": "caller", "channel": 0, "text": t["caller_text"],
                        "turn": t["index"]})
        if t.get("agent_text"):
            said = float(t.get("first_audio_out") or t.get("tts_first_audio") or t.get("asr_final") or heard)
            out.append({"start": said, "end": said, "speaker": "agent", "channel": 1, "text": t["agent_text"],
                        "turn": t["index"]})
    return out


def like_pattern(word: str) -> str:
    """``%word%`` with LIKE's wildcards escaped (used with ``ESCAPE '\\'``)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def customer_of(meta: dict[str, Any] | None) -> str:
    """The customer id a call's meta names (``customer_id``, or ``customer.id``), or ''."""
    if not meta:
        return ""
    value = meta.get("customer_id")
    if value is None and isinstance(meta.get("customer"), dict):
        value = meta["customer"].get("id")
    return str(value).strip() if value not in (None, "") else ""


class CallTables(Database):
    """The calls, segments, turns and events tables.

    With a key (``self.cipher``) every column a person's words or number reach is sealed: calls'
    source, text and meta; segments' text, words and extra; turns' texts and timings; events' data.
    A call's words are searchable through ``call_terms`` (keyed hashes of its words), and its caller
    and customer through ``caller_ref``/``customer_ref`` (keyed hashes): the lookups erasure needs.
    """

    def _record(self, row: Any) -> CallRecord:
        return CallRecord(id=row["id"], kind=row["kind"], source=self.unseal(row["source"], "a call's source"),
                          started_at=row["started_at"], ended_at=row["ended_at"], duration=row["duration"],
                          outcome=row["outcome"], language=row["language"], model=row["model"],
                          text=self.unseal(row["text"], "a transcript"),
                          meta=self.unseal_json(row["meta"], {}, "a call's details"))

    def subject_ref(self, kind: str, value: str) -> str:
        """The stored reference of a caller's number (``phone``) or a customer id (``customer``)."""
        value = normalize_phone(value) if kind == "phone" else value.strip()
        return self.cipher.ref(kind, value) if self.cipher is not None else plain_ref(kind, value)

    def _caller_ref(self, source: str) -> str:
        """The caller's reference ('' when the source is not a phone number: a browser, a file)."""
        digits = normalize_phone(source) if source.lower().startswith(("sip:", "sips:", "tel:", "+")) else ""
        return self.subject_ref("phone", digits) if len(digits) >= 3 else ""

    def _customer_ref(self, meta: dict[str, Any] | None) -> str | None:
        customer = customer_of(meta)
        return self.subject_ref("customer", customer) if customer else None

    def _index_text(self, db: Tx, call_id: str, text: str) -> None:
        """Keep the call's search terms (keyed hashes of its words) in step with its text; only with a key."""
        db.execute("DELETE FROM call_terms WHERE call_id = ?", (call_id,))
        if self.cipher is None:
            return
        for term in sorted(self.cipher.terms(text)):
            db.execute("INSERT INTO call_terms (call_id, term) VALUES (?, ?)", (call_id, term))

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
        """Insert a call with its transcript segments; returns the call id.

        A live call stored at its start (``start_call``) is completed instead: its row is updated and
        its segments replaced, keeping the turns stored while it ran.
        """
        cid = call_id or uuid.uuid4().hex[:16]
        values = (kind, self.seal(source), time.time() if started_at is None else started_at, ended_at, duration,
                  outcome, language, model, self.seal(text), self.seal_json(meta or {}), self._caller_ref(source),
                  self._customer_ref(meta))
        with self.transaction() as db:
            if call_id is not None and db.value("SELECT outcome FROM calls WHERE id = ?", (cid,)) == ACTIVE:
                db.execute("UPDATE calls SET kind = ?, source = ?, started_at = ?, ended_at = ?, duration = ?,"
                           " outcome = ?, language = ?, model = ?, text = ?, meta = ?, caller_ref = ?,"
                           " customer_ref = COALESCE(?, customer_ref) WHERE id = ?", (*values, cid))
                db.execute("DELETE FROM segments WHERE call_id = ?", (cid,))
            else:
                db.execute(f"INSERT INTO calls ({_CALL_COLUMNS}, caller_ref, customer_ref)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, ''))", (cid, *values))
            self._insert_segments(db, cid, segments, 0)
            self._index_text(db, cid, text)
        return cid

    def start_call(self, call_id: str, kind: str, source: str, *, worker: str, started_at: float | None = None,
                   meta: dict[str, Any] | None = None) -> None:
        """Record a live call as it starts (outcome ``active``), so its turns can be stored as they finish.

        ``worker`` names the process holding the call (e.g. ``sip:127.0.0.1:5060``): when that worker
        starts again, ``recover_calls`` closes what it left active.
        """
        with self.transaction() as db:
            db.execute("INSERT INTO calls (id, kind, source, started_at, outcome, text, meta, worker, caller_ref,"
                       " customer_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, ''))",
                       (call_id, kind, self.seal(source), time.time() if started_at is None else started_at, ACTIVE,
                        self.seal(""), self.seal_json(meta or {}), worker, self._caller_ref(source),
                        self._customer_ref(meta)))

    def add_turn(self, call_id: str, turn: dict[str, Any]) -> None:
        """Store one finished turn of a live call now (replacing an earlier copy of the same index)."""
        with self.transaction() as db:
            self._upsert_turn(db, call_id, turn)

    def recover_calls(self, worker: str) -> list[str]:
        """Close the calls ``worker`` left active (it was killed): outcome ``error``, with the turns it stored
        as the transcript. Returns their ids."""
        recovered = []
        with self.transaction() as db:
            rows = db.rows("SELECT id, started_at, meta FROM calls WHERE outcome = ? AND worker = ?", (ACTIVE, worker))
            for row in rows:
                cid = row["id"]
                turns = [self._turn(r) for r in db.rows("SELECT * FROM turns WHERE call_id = ? ORDER BY idx", (cid,))]
                segments = _turn_segments(turns)
                duration = max([0.0, *(s["end"] for s in segments)])
                meta = self.unseal_json(row["meta"], {}, "a call's details")
                meta.update({"channels": 2, "recovered": True,
                             "error": "the worker stopped during the call; recovered at its next start"})
                text = " ".join(s["text"] for s in segments)
                db.execute("UPDATE calls SET outcome = 'error', ended_at = ?, duration = ?, text = ?, meta = ?"
                           " WHERE id = ?", (float(row["started_at"]) + duration, duration, self.seal(text),
                                             self.seal_json(meta), cid))
                db.execute("DELETE FROM segments WHERE call_id = ?", (cid,))
                self._insert_segments(db, cid, segments, 0)
                self._index_text(db, cid, text)
                recovered.append(cid)
        return recovered

    def customer_calls(self, customer_id: str, limit: int = 3) -> list[CallRecord]:
        """The latest ended calls linked to a customer (``customer_id`` in their details), newest first."""
        ref = self.subject_ref("customer", customer_id)
        with self.read() as db:
            rows = db.rows("SELECT * FROM calls WHERE customer_ref = ? AND outcome <> ? ORDER BY started_at DESC"
                           " LIMIT ?", (ref, ACTIVE, int(limit)))
        return [self._record(r) for r in rows]

    def add_segments(self, call_id: str, segments: Sequence[dict[str, Any]]) -> None:
        """Append transcript segments to an existing call."""
        with self.transaction() as db:
            first = int(db.value("SELECT COALESCE(MAX(idx) + 1, 0) FROM segments WHERE call_id = ?", (call_id,)))
            self._insert_segments(db, call_id, segments, first)

    def _insert_segments(self, db: Tx, call_id: str, segments: Sequence[dict[str, Any]], first: int) -> None:
        for i, seg in enumerate(segments, start=first):
            extra = {k: v for k, v in seg.items() if k not in _SEGMENT_FIELDS}
            db.execute(
                'INSERT INTO segments (call_id, idx, start, "end", speaker, channel, text,'
                " avg_logprob, no_speech_prob, words, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (call_id, i, float(seg["start"]), float(seg["end"]), str(seg.get("speaker", "")),
                 int(seg.get("channel", 0)), self.seal(str(seg.get("text", ""))), seg.get("avg_logprob"),
                 seg.get("no_speech_prob"), self.seal_json(seg.get("words", [])), self.seal_json(extra)),
            )

    def update_call(self, call_id: str, **fields: Any) -> None:
        """Set columns of a call (meta is merged, not replaced)."""
        allowed = {"ended_at", "duration", "outcome", "language", "model", "text", "meta"}
        unknown = set(fields) - allowed
        if unknown:
            raise StoreError(f"cannot update {sorted(unknown)} on a call")
        if not fields:
            return
        with self.transaction() as db:
            if "meta" in fields:
                old = db.value("SELECT meta FROM calls WHERE id = ?", (call_id,))
                if old is None:
                    raise StoreError(f"no call with id {call_id!r}")
                merged = self.unseal_json(old, {}, "a call's details")
                merged.update(fields["meta"])
                fields["meta"] = self.seal_json(merged)
                customer = self._customer_ref(merged)
                if customer is not None:
                    fields["customer_ref"] = customer
            if "text" in fields:
                self._index_text(db, call_id, str(fields["text"] or ""))
                fields["text"] = self.seal(str(fields["text"] or ""))
            assignments = ", ".join(f"{k} = ?" for k in fields)
            db.execute(f"UPDATE calls SET {assignments} WHERE id = ?", (*fields.values(), call_id))

    def save_wrapup(self, call_id: str, wrapup: dict[str, str], user: str) -> dict[str, Any]:
        """Keep the human agent's wrap-up with the call (in its sealed details); returns what was saved."""
        saved = {**wrapup, "by": user, "at": time.time()}
        self.update_call(call_id, meta={"wrapup": saved})
        return saved

    def wrapup(self, call_id: str) -> dict[str, Any] | None:
        """The call's saved wrap-up, or None."""
        found = self.get_call(call_id).meta.get("wrapup")
        return dict(found) if isinstance(found, dict) else None

    def add_turns(self, call_id: str, turns: Sequence[dict[str, Any]]) -> None:
        """Store the turns of a live call (timings kept as JSON); a turn stored before is replaced."""
        with self.transaction() as db:
            for t in turns:
                self._upsert_turn(db, call_id, t)

    def _upsert_turn(self, db: Tx, call_id: str, t: dict[str, Any]) -> None:
        db.execute(
            "INSERT INTO turns (call_id, idx, caller_text, agent_text, sentiment, sentiment_score,"
            " voice_to_voice_ms, timings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id, idx) DO UPDATE SET caller_text = excluded.caller_text,"
            " agent_text = excluded.agent_text, sentiment = excluded.sentiment,"
            " sentiment_score = excluded.sentiment_score, voice_to_voice_ms = excluded.voice_to_voice_ms,"
            " timings = excluded.timings",
            (call_id, int(t["index"]), self.seal(t.get("caller_text", "")), self.seal(t.get("agent_text", "")),
             t.get("sentiment"), t.get("sentiment_score"), t.get("voice_to_voice_ms"),
             self.seal_json({k: v for k, v in t.items() if k not in _TURN_FIELDS})),
        )

    def turns(self, call_id: str) -> list[dict[str, Any]]:
        """The turns of a call in order."""
        with self.read() as db:
            rows = db.rows("SELECT * FROM turns WHERE call_id = ? ORDER BY idx", (call_id,))
        return [self._turn(r) for r in rows]

    def _turn(self, r: Any) -> dict[str, Any]:
        item = {"index": r["idx"], "caller_text": self.unseal(r["caller_text"], "a turn"),
                "agent_text": self.unseal(r["agent_text"], "a turn"),
                "sentiment": r["sentiment"], "sentiment_score": r["sentiment_score"],
                "voice_to_voice_ms": r["voice_to_voice_ms"]}
        item.update(self.unseal_json(r["timings"], {}, "a turn"))
        return item

    def add_events(self, call_id: str, events: Sequence[dict[str, Any]]) -> None:
        """Store call events (barge_in, transfer, reprompt, hangup...)."""
        with self.transaction() as db:
            first = int(db.value("SELECT COALESCE(MAX(seq) + 1, 0) FROM events WHERE call_id = ?", (call_id,)))
            for i, e in enumerate(events, start=first):
                data = {k: v for k, v in e.items() if k not in ("t", "type")}
                db.execute("INSERT INTO events (call_id, seq, t, type, data) VALUES (?, ?, ?, ?, ?)",
                           (call_id, i, float(e.get("t", 0.0)), str(e["type"]), self.seal_json(data)))

    def events(self, call_id: str) -> list[dict[str, Any]]:
        """The events of a call in order."""
        with self.read() as db:
            rows = db.rows("SELECT t, type, data FROM events WHERE call_id = ? ORDER BY seq", (call_id,))
        return [{"t": r["t"], "type": r["type"], **self.unseal_json(r["data"], {}, "an event")} for r in rows]

    def get_call(self, call_id: str) -> CallRecord:
        """One call by id (a unique prefix is accepted)."""
        with self.read() as db:
            rows = db.rows(f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 2",
                           (call_id, like_pattern(call_id)[1:]))
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
        sql = f"SELECT {_CALL_COLUMNS} FROM calls"
        args: list[Any] = []
        if kind:
            sql += " WHERE kind = ?"
            args.append(kind)
        sql += " ORDER BY started_at DESC LIMIT ?"
        args.append(limit)
        with self.read() as db:
            rows = db.rows(sql, args)
        return [self._record(r) for r in rows]

    def active_calls(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Calls in progress on any worker (outcome ``active``), oldest first, with the worker holding each."""
        sql = "SELECT id, kind, source, started_at, worker, meta FROM calls WHERE outcome = ?"
        args: list[Any] = [ACTIVE]
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        with self.read() as db:
            rows = db.rows(sql + " ORDER BY started_at", args)
        out = []
        for r in rows:
            meta = self.unseal_json(r["meta"], {}, "a call's details")
            # console: the HTTP address of the worker's console when its SIP address is the worker
            console = str(meta.get("console", "")) if isinstance(meta, dict) else ""
            out.append({"id": r["id"], "kind": r["kind"], "source": self.unseal(r["source"], "a call's source"),
                        "started_at": r["started_at"], "worker": r["worker"], "console": console})
        return out

    def segments(self, call_id: str) -> list[dict[str, Any]]:
        """The transcript segments of a call in time order."""
        with self.read() as db:
            rows = db.rows("SELECT * FROM segments WHERE call_id = ? ORDER BY start, idx", (call_id,))
        out = []
        for r in rows:
            seg: dict[str, Any] = {
                "start": r["start"], "end": r["end"], "speaker": r["speaker"], "channel": r["channel"],
                "text": self.unseal(r["text"], "a transcript segment"), "avg_logprob": r["avg_logprob"],
                "no_speech_prob": r["no_speech_prob"],
                "words": self.unseal_json(r["words"], [], "a transcript segment"),
            }
            seg.update(self.unseal_json(r["extra"], {}, "a transcript segment"))
            out.append(seg)
        return out

    def search_calls(self, f: CallFilter) -> tuple[list[dict[str, Any]], int]:
        """Matching calls for the console, most recent first, and how many match in all."""
        where: list[str] = []
        args: list[Any] = []
        if self.cipher is not None:
            # Sealed text cannot be matched: whole words are looked up in the keyed index instead.
            for term in sorted(self.cipher.terms(" ".join(f.q.split()[:8]))):
                where.append("id IN (SELECT call_id FROM call_terms WHERE term = ?)")
                args.append(term)
        else:
            for word in f.q.split()[:8]:
                where.append("LOWER(text) LIKE ? ESCAPE '\\'")  # LOWER on both sides: LIKE's case rules differ
                args.append(like_pattern(word.lower()))
        for column, op, value in (("started_at", ">=", f.since), ("started_at", "<", f.until)):
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(value)
        for column, text in (("outcome", f.outcome), ("kind", f.kind)):
            if text:
                where.append(f"{column} = ?")
                args.append(text)
        if f.sentiment:
            where.append("id IN (SELECT call_id FROM turns WHERE sentiment = ?)")
            args.append(f.sentiment)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self.read() as db:
            total = int(db.value(f"SELECT COUNT(*) FROM calls{clause}", args))
            rows = db.rows(f"SELECT id, kind, source, started_at, duration, outcome, text, meta FROM calls{clause}"
                           " ORDER BY started_at DESC LIMIT ? OFFSET ?", [*args, f.limit, f.offset])
            moods: dict[str, list[str]] = {}
            ids = [r["id"] for r in rows]
            if ids:
                marks = ", ".join("?" for _ in ids)
                for r in db.rows(f"SELECT call_id, sentiment FROM turns WHERE call_id IN ({marks})"
                                 " ORDER BY call_id, idx", ids):
                    moods.setdefault(r["call_id"], []).append(r["sentiment"] or "")
        out = []
        for r in rows:
            meta = self.unseal_json(r["meta"], {}, "a call's details")
            labels = [m for m in moods.get(r["id"], []) if m]
            out.append({"id": r["id"], "kind": r["kind"], "source": self.unseal(r["source"], "a call's source"),
                        "started_at": r["started_at"], "duration": r["duration"], "outcome": r["outcome"],
                        "preview": (self.unseal(r["text"], "a transcript") or "")[:160],
                        "turns": len(moods.get(r["id"], [])),
                        "sentiment": labels[-1] if labels else meta.get("sentiment"),
                        "has_recording": bool(meta.get("recording"))})
        return out, total

    def delete_call(self, call_id: str) -> bool:
        """Delete a call and every copy of it: segments, turns, events, its transcription jobs (with their
        transcripts and uploaded audio) and the recording a live call made; False when absent.

        A transcribed file the user named on the command line is theirs, not a copy, and stays.
        """
        return self.erase_calls([call_id])["calls"] > 0

    def erase_calls(self, call_ids: Sequence[str]) -> dict[str, int]:
        """Delete calls with every copy (as ``delete_call``); how many rows and files of each kind went."""
        counts = dict.fromkeys(("calls", "segments", "turns", "events", "analytics", "kb_gaps", "jobs",
                                "recordings", "uploads"), 0)
        files: list[tuple[str, str, str]] = []  # (call id, kind of file, path)
        with self.transaction() as db:
            for call_id in call_ids:
                row = db.row("SELECT kind, meta FROM calls WHERE id = ?", (call_id,))
                if row is None:
                    continue
                meta = self.unseal_json(row["meta"], {}, "a call's details")
                uploads = [str(r["path"]) for r in db.rows("SELECT path FROM transcription_jobs WHERE call_id = ?",
                                                           (call_id,)) if r["path"]]
                for table, key in (("segments", "segments"), ("turns", "turns"), ("events", "events"),
                                   ("call_analytics", "analytics"), ("kb_gaps", "kb_gaps"),
                                   ("call_terms", "")):
                    n = db.count(f"DELETE FROM {table} WHERE call_id = ?", (call_id,))
                    if key:
                        counts[key] += n
                counts["jobs"] += db.count("DELETE FROM transcription_jobs WHERE call_id = ?", (call_id,))
                counts["calls"] += db.count("DELETE FROM calls WHERE id = ?", (call_id,))
                files.extend((call_id, "uploads", path) for path in uploads)
                recording = meta.get("recording")
                if recording and (row["kind"] != "transcription" or str(recording) in uploads) \
                        and str(recording) not in uploads:
                    files.append((call_id, "recordings", str(recording)))
        for call_id, kind, path in files:
            try:
                if Path(path).is_file():
                    Path(path).unlink()
                    counts[kind] += 1
            except OSError as exc:  # the rows are gone; say which file is left
                log.warning("call %s deleted but %s could not be removed: %s", call_id, path, exc)
        return counts
