"""The SQLite call store: migrations, calls, segments."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from voice_agent.store import MIGRATIONS, CallStore, StoreError


def test_migrations_apply_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'calls.db'}"
    store = CallStore(url)
    assert store.schema_version() == MIGRATIONS[-1][0]
    store.close()
    again = CallStore(url)  # reopening applies nothing twice
    assert again.schema_version() == MIGRATIONS[-1][0]
    rows = sqlite3.connect(tmp_path / "db" / "calls.db").execute("SELECT COUNT(*) FROM schema_migrations").fetchone()
    assert rows[0] == len(MIGRATIONS)


def test_call_round_trip() -> None:
    store = CallStore("sqlite://")
    segs = [
        {"start": 2.0, "end": 3.0, "speaker": "agent", "channel": 1, "text": "Hi", "words": [],
         "sentiment": {"label": "neutral"}},
        {"start": 0.5, "end": 1.5, "speaker": "caller", "channel": 0, "text": "Hello",
         "words": [{"start": 0.5, "end": 1.0, "word": "Hello", "probability": 0.9}]},
    ]
    cid = store.add_call("transcription", "/x.wav", duration=3.0, text="Hello Hi", meta={"channels": 2}, segments=segs)
    out = store.segments(cid)
    assert [s["text"] for s in out] == ["Hello", "Hi"]  # time order
    assert out[1]["sentiment"] == {"label": "neutral"}  # extra fields survive
    store.update_call(cid, outcome="resolved", meta={"summary": "ok"})
    call = store.get_call(cid[:6])
    assert call.outcome == "resolved" and call.meta == {"channels": 2, "summary": "ok"}
    store.add_segments(cid, [{"start": 4.0, "end": 5.0, "text": "Bye"}])
    assert len(store.segments(cid)) == 3
    assert [c.id for c in store.list_calls(kind="transcription")] == [cid]


def test_errors() -> None:
    store = CallStore("sqlite://")
    with pytest.raises(StoreError, match="no call with id"):
        store.get_call("nope")
    with pytest.raises(StoreError, match="cannot update"):
        store.update_call("x", id="y")
    with pytest.raises(StoreError, match="unsupported store URL"):
        CallStore("mysql://db")
