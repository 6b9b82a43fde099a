"""The call store on SQLite and on a real PostgreSQL server: migrations, calls, search, jobs, accounts."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from voice_agent.store import MIGRATIONS, CallFilter, CallStore, StoreError
from voice_agent.store.dialect import PostgresDialect, SqliteDialect, dialect_for, redact_url


def test_migrations_apply_once(store_url: str) -> None:
    store = CallStore(store_url)
    assert store.schema_version() == MIGRATIONS[-1][0]
    store.close()
    again = CallStore(store_url)  # reopening applies nothing twice
    assert again.schema_version() == MIGRATIONS[-1][0]
    with again.read() as db:
        assert db.value("SELECT COUNT(*) FROM schema_migrations") == len(MIGRATIONS)
    again.close()


def test_workers_opening_one_store_at_once_migrate_it_once(store_url: str) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            CallStore(store_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert CallStore(store_url).schema_version() == MIGRATIONS[-1][0]


def test_call_round_trip(store_url: str) -> None:
    store = CallStore(store_url)
    segs = [
        {"start": 2.0, "end": 3.0, "speaker": "agent", "channel": 1, "text": "Hi", "words": [],
         "sentiment": {"label": "neutral"}},
        {"start": 0.5, "end": 1.5, "speaker": "caller", "channel": 0, "text": "Hello",
         "words": [{"start": 0.5, "end": 1.0, "word": "Hello", "probability": 0.9}]},
    ]
    started = 1_796_000_000.123456
    cid = store.add_call("transcription", "/x.wav", started_at=started, duration=3.0, text="Hello Hi",
                         meta={"channels": 2}, segments=segs)
    out = store.segments(cid)
    assert [s["text"] for s in out] == ["Hello", "Hi"]  # time order
    assert out[1]["sentiment"] == {"label": "neutral"}  # extra fields survive
    assert out[0]["words"][0]["word"] == "Hello"
    store.update_call(cid, outcome="resolved", meta={"summary": "ok"})
    call = store.get_call(cid[:6])
    assert call.outcome == "resolved" and call.meta == {"channels": 2, "summary": "ok"}
    assert call.started_at == started  # 8-byte floats on both (PostgreSQL's REAL would round to minutes)
    store.add_segments(cid, [{"start": 4.0, "end": 5.0, "text": "Bye"}])
    assert len(store.segments(cid)) == 3
    assert [c.id for c in store.list_calls(kind="transcription")] == [cid]


def test_turns_and_events_round_trip_and_a_turn_stored_twice_is_replaced(store_url: str) -> None:
    store = CallStore(store_url)
    cid = store.add_call("phone", "sip:a@b", text="")
    store.add_turns(cid, [{"index": 0, "caller_text": "hi", "agent_text": "", "end_of_speech": 1.5}])
    store.add_turns(cid, [{"index": 0, "caller_text": "hi there", "agent_text": "Hello!", "sentiment": "positive",
                           "sentiment_score": 0.5, "voice_to_voice_ms": 640.0, "end_of_speech": 1.5},
                          {"index": 1, "caller_text": "bye", "agent_text": "Goodbye"}])
    turns = store.turns(cid)
    assert [(t["index"], t["caller_text"], t["agent_text"]) for t in turns] == [(0, "hi there", "Hello!"),
                                                                               (1, "bye", "Goodbye")]
    assert turns[0]["end_of_speech"] == 1.5 and turns[0]["voice_to_voice_ms"] == 640.0
    store.add_events(cid, [{"t": 0.0, "type": "call_start", "rate": 8000}])
    store.add_events(cid, [{"t": 2.5, "type": "barge_in"}])
    assert store.events(cid) == [{"t": 0.0, "type": "call_start", "rate": 8000}, {"t": 2.5, "type": "barge_in"}]


def test_search_filters_and_wildcards(store_url: str) -> None:
    store = CallStore(store_url)
    now = time.time()
    a = store.add_call("phone", "a", started_at=now - 100, outcome="resolved", text="My Router is BROKEN")
    b = store.add_call("webrtc", "b", started_at=now - 50, outcome="transferred", text="billing 100% wrong")
    store.add_turns(b, [{"index": 0, "caller_text": "x", "agent_text": "y", "sentiment": "negative"}])
    rows, total = store.search_calls(CallFilter(q="router broken"))
    assert total == 1 and rows[0]["id"] == a  # case-insensitive on both databases
    assert store.search_calls(CallFilter(q="100%"))[0][0]["id"] == b
    assert store.search_calls(CallFilter(q="%"))[1] == 1  # a literal percent, not a wildcard
    assert store.search_calls(CallFilter(q="_"))[1] == 0
    assert [r["id"] for r in store.search_calls(CallFilter())[0]] == [b, a]
    assert store.search_calls(CallFilter(sentiment="negative"))[0][0]["sentiment"] == "negative"
    assert store.search_calls(CallFilter(kind="phone", outcome="resolved"))[1] == 1
    assert store.search_calls(CallFilter(since=now - 60))[1] == 1
    assert store.search_calls(CallFilter(until=now - 60))[1] == 1
    page, total = store.search_calls(CallFilter(limit=1, offset=1))
    assert total == 2 and [r["id"] for r in page] == [a]


def test_delete_call_removes_its_rows(store_url: str) -> None:
    store = CallStore(store_url)
    cid = store.add_call("phone", "a", text="x", segments=[{"start": 0, "end": 1, "text": "x"}])
    store.add_turns(cid, [{"index": 0, "caller_text": "x", "agent_text": "y"}])
    store.add_events(cid, [{"t": 0, "type": "call_start"}])
    assert store.delete_call(cid) is True
    assert store.delete_call(cid) is False
    assert store.segments(cid) == [] and store.turns(cid) == [] and store.events(cid) == []
    with pytest.raises(StoreError, match="no call with id"):
        store.get_call(cid)


def test_jobs(store_url: str) -> None:
    store = CallStore(store_url)
    job = store.add_job("call.wav", "/uploads/x.wav", "ann")
    assert store.job(job)["status"] == "queued"  # type: ignore[index]
    store.update_job(job, status="done", progress=1.0, result={"text": "hello"})
    assert store.job_result(job) == {"text": "hello"}
    assert [j["id"] for j in store.recent_jobs()] == [job]
    assert store.job("nope") is None


def test_accounts_sql(store_url: str) -> None:
    store = CallStore(store_url)
    assert store.insert_user("ann", "agent", "hash") is True
    assert store.insert_user("ann", "agent", "hash") is False
    assert store.user_row("ann") == {"name": "ann", "role": "agent", "password_hash": "hash", "disabled": False}
    store.insert_token("ann", "th", "label")
    assert store.token_owner("th") == ("ann", "agent")
    assert store.revoke_user_tokens("ann") == 1
    assert store.token_owner("th") is None
    store.add_audit("ann", "read_transcript", "c1", {"via": "cookie"})
    assert store.audit_rows(target="c1")[0]["detail"] == {"via": "cookie"}


def test_errors(store_url: str) -> None:
    store = CallStore(store_url)
    with pytest.raises(StoreError, match="no call with id"):
        store.get_call("nope")
    with pytest.raises(StoreError, match="cannot update"):
        store.update_call("x", id="y")
    cid = store.add_call("phone", "a")
    with pytest.raises(StoreError, match="refused a record"):
        store.add_call("phone", "a", call_id=cid)
    with pytest.raises(StoreError, match="ambiguous"):
        store.add_call("phone", "b", call_id=cid[:4] + "zz")
        store.get_call(cid[:4])


def test_unsupported_urls() -> None:
    with pytest.raises(StoreError, match="unsupported store URL"):
        CallStore("mysql://db")
    with pytest.raises(StoreError, match=r"unsupported store URL 'mysql://u:\*\*\*@db'"):
        CallStore("mysql://u:secret@db")


def test_dialects_translate_sql_in_one_place() -> None:
    assert isinstance(dialect_for("sqlite://"), SqliteDialect)
    pg = dialect_for("postgresql://u@127.0.0.1:5/db")
    assert isinstance(pg, PostgresDialect)
    assert pg.sql("SELECT * FROM t WHERE a = ? AND b LIKE '%x'") == "SELECT * FROM t WHERE a = %s AND b LIKE '%%x'"
    assert pg.ddl("id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, b BLOB") == \
        "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, t DOUBLE PRECISION, b BYTEA"
    assert redact_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"


def test_postgres_server_unreachable_is_one_clear_line() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here
    with pytest.raises(StoreError, match=r"cannot reach the PostgreSQL call store postgresql://u:\*\*\*@127"):
        CallStore(f"postgresql://u:pw@127.0.0.1:{port}/db", busy_timeout_s=2)


def test_sqlite_file_is_a_real_sqlite_database(tmp_path: Path) -> None:
    CallStore(f"sqlite:///{tmp_path / 'db' / 'calls.db'}").close()
    rows = sqlite3.connect(tmp_path / "db" / "calls.db").execute("SELECT COUNT(*) FROM schema_migrations").fetchone()
    assert rows[0] == len(MIGRATIONS)


def test_store_url_from_environment_and_default() -> None:
    from voice_agent.config import load_config

    config = load_config(env={"VOICE_AGENT_STORE_URL": "postgresql://va@127.0.0.1:5433/calls"})
    assert config.store_url == "postgresql://va@127.0.0.1:5433/calls"
    assert load_config(env={"VOICE_AGENT_STORE__URL": "sqlite:///x.db"}).store_url == "sqlite:///x.db"
    default = load_config(env={"VOICE_AGENT_HOME": "/data"})
    assert default.store_url == "sqlite:////data/calls.db" and default.store.busy_timeout_s == 5.0


def test_delete_call_removes_every_copy_but_not_the_users_own_file(store_url: str, tmp_path: Path) -> None:
    store = CallStore(store_url)
    recording = tmp_path / "recordings" / "live.wav"
    recording.parent.mkdir()
    recording.write_bytes(b"RIFF")
    live = store.add_call("phone", "sip:a@b", meta={"recording": str(recording)})
    upload = tmp_path / "uploads" / "u1.wav"
    upload.parent.mkdir()
    upload.write_bytes(b"RIFF")
    job = store.add_job("call.wav", str(upload), "ann")
    transcribed = store.add_call("transcription", str(upload), meta={"recording": str(upload), "job": job})
    store.update_job(job, status="done", call_id=transcribed, result={"text": "card 4111"})
    own = tmp_path / "mine.wav"
    own.write_bytes(b"RIFF")
    cli_call = store.add_call("transcription", str(own), meta={"recording": str(own)})

    assert store.delete_call(live) and not recording.exists()
    assert store.delete_call(transcribed) and not upload.exists()
    assert store.job(job) is None and store.job_result(job) is None
    assert store.delete_call(cli_call) and own.exists()  # the user's own file is not a copy
    assert store.list_calls() == []


def test_live_call_turns_stored_as_they_finish_and_recovered_after_a_crash(store_url: str) -> None:
    store = CallStore(store_url)
    store.start_call("sip-a", "phone", "sip:caller@x", worker="sip:127.0.0.1:5060", started_at=1000.0)
    store.start_call("sip-b", "phone", "sip:other@x", worker="sip:127.0.0.1:5062", started_at=1000.0)
    store.add_turn("sip-a", {"index": 0, "caller_text": "opening hours", "agent_text": "We open at 8.",
                             "end_of_speech": 6.0, "first_audio_out": 6.8})
    assert store.get_call("sip-a").outcome == "active"
    assert store.recover_calls("sip:127.0.0.1:5060") == ["sip-a"]  # only this worker's calls
    call = store.get_call("sip-a")
    assert call.outcome == "error" and call.meta["recovered"] is True
    assert call.text == "opening hours We open at 8." and call.duration == 6.8 and call.ended_at == 1006.8
    assert [(s["speaker"], s["text"]) for s in store.segments("sip-a")] == [("caller", "opening hours"),
                                                                           ("agent", "We open at 8.")]
    assert store.turns("sip-a")[0]["agent_text"] == "We open at 8."
    assert store.get_call("sip-b").outcome == "active"  # another worker's live call is left alone
    assert store.recover_calls("sip:127.0.0.1:5060") == []

    # A call that ends normally is completed in place: the row updated, the segments replaced, turns kept.
    store.add_call("phone", "sip:other@x", call_id="sip-b", started_at=1000.0, duration=9.0, outcome="resolved",
                   text="hi", segments=[{"start": 1.0, "end": 2.0, "speaker": "caller", "text": "hi"}])
    assert store.get_call("sip-b").outcome == "resolved" and len(store.segments("sip-b")) == 1
    with pytest.raises(StoreError, match="refused a record"):  # a finished call is not overwritten
        store.add_call("phone", "x", call_id="sip-b")


def test_an_older_store_with_data_is_upgraded_in_place(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import voice_agent.store.database as database

    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS[:3])  # a store made before sessions and live calls
    old = CallStore(store_url, check_key=False)  # today's methods use today's columns: rows written by hand
    assert old.schema_version() == 3
    cid = "c1"
    with old.transaction() as db:
        db.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES ('ann', 'agent', 'h', 1.0)")
        db.execute("INSERT INTO api_tokens (id, user_name, token_hash, label, created_at)"
                   " VALUES ('t1', 'ann', 'th', '', ?)", (time.time(),))
        db.execute("INSERT INTO calls (id, kind, source, started_at, text) VALUES (?, 'phone', 'a', 1.0, 'kept')",
                   (cid,))
    old.close()
    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS)
    new = CallStore(store_url)
    assert new.schema_version() == MIGRATIONS[-1][0]
    assert new.get_call(cid).text == "kept"
    assert new.token_owner("th") == ("ann", "agent")
    tokens = new.token_rows("ann")
    assert tokens[0]["expires_at"] == pytest.approx(tokens[0]["created_at"] + 90 * 86400)  # old tokens expire too
    assert new.session_valid("n1", "ann", 2.0)
