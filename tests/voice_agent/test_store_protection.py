"""The store with a protection key, on SQLite and on a real PostgreSQL: sealed columns, search, key checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voice_agent.protection.cipher import TEXT_PREFIX, Cipher, Key
from voice_agent.store import CallFilter, CallStore, StoreKeyError
from voice_agent.store.analytics import ANALYTICS_COLUMNS

WORDS = ("pineapple", "Vauxhall", "07700900123")


def cipher() -> Cipher:
    return Cipher(Key(os.urandom(32)))


def seed(store: CallStore) -> str:
    cid = store.add_call(
        "phone", "sip:+447700900123@10.0.0.1", text="my pineapple router in Vauxhall", outcome="resolved",
        meta={"summary": "pineapple router", "recording": "/r/x.wav", "customer_id": "C-42"},
        segments=[{"start": 0.0, "end": 1.0, "speaker": "caller", "text": "my pineapple router",
                   "words": [{"word": " pineapple", "start": 0.1, "end": 0.5}]}])
    store.add_turns(cid, [{"index": 0, "caller_text": "my pineapple router", "agent_text": "Vauxhall is fine",
                           "sentiment": "neutral", "intent": "pineapple"}])
    store.add_events(cid, [{"type": "caption", "t": 0.5, "text": "pineapple"}])
    job = store.add_job("pineapple.wav", "/u/x.wav", "ann")
    store.update_job(job, status="done", call_id=cid, result={"text": "my pineapple router"})
    store.add_audit("ann", "search_transcripts", "q:pineapple", {"q": "pineapple"})
    row = {c: 0 for c in ANALYTICS_COLUMNS} | {"kind": "phone", "outcome": "contained", "transfer_reason": "",
                                              "sentiment_start": None, "sentiment_end": None, "sentiment_mean": None}
    store.put_analytics(cid, row, [{"turn": 0, "at": 1.0, "question": "pineapple in Vauxhall?",
                                    "norm": "pineapple vauxhall"}])
    return cid


def raw_values(store: CallStore) -> list[str]:
    out: list[str] = []
    with store.read() as db:
        for table in ("calls", "segments", "turns", "events", "transcription_jobs", "audit_log", "kb_gaps"):
            for row in db.rows(f"SELECT * FROM {table}"):
                out.extend(str(v) for v in row if v is not None)
    return out


def test_every_text_a_caller_reaches_is_sealed_and_reads_back_in_clear(store_url: str) -> None:
    c = cipher()
    store = CallStore(store_url, cipher=c)
    cid = seed(store)
    stored = "\n".join(raw_values(store))
    for word in WORDS:
        assert word not in stored, word
    assert stored.count(TEXT_PREFIX + c.key_id) >= 12
    rec = store.get_call(cid)
    assert rec.source == "sip:+447700900123@10.0.0.1" and rec.text == "my pineapple router in Vauxhall"
    assert rec.meta["summary"] == "pineapple router"
    assert store.segments(cid)[0]["words"][0]["word"] == " pineapple"
    assert store.turns(cid)[0]["intent"] == "pineapple" and store.events(cid)[0]["text"] == "pineapple"
    assert store.recent_jobs()[0]["filename"] == "pineapple.wav"
    assert store.job_result(store.recent_jobs()[0]["id"]) == {"text": "my pineapple router"}
    assert store.audit_rows()[0]["target"] == "q:pineapple" and store.audit_rows()[0]["detail"] == {"q": "pineapple"}
    assert store.kb_gap_rows()[0]["question"] == "pineapple in Vauxhall?"
    assert store.cover_kb_gaps(["pineapple vauxhall"], "faq.md") == 1 and store.kb_gap_rows() == []
    store.close()
    if store_url.startswith("sqlite:"):
        db = Path(store_url[len("sqlite:///"):])
        raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        for word in WORDS:
            assert word.encode() not in raw, word


def test_search_on_sealed_text_finds_whole_words_through_the_keyed_index(store_url: str) -> None:
    store = CallStore(store_url, cipher=cipher())
    cid = seed(store)
    other = store.add_call("phone", "sip:1@h", text="billing question")
    assert [c["id"] for c in store.search_calls(CallFilter(q="PINEAPPLE router"))[0]] == [cid]
    assert [c["id"] for c in store.search_calls(CallFilter(q="billing"))[0]] == [other]
    assert store.search_calls(CallFilter(q="pineapp"))[1] == 0  # parts of words: not with a key (documented)
    found, total = store.search_calls(CallFilter(q="vauxhall"))
    assert total == 1 and found[0]["preview"].startswith("my pineapple") and found[0]["source"].startswith("sip:+44")
    store.update_call(other, text="now about pineapple")
    assert store.search_calls(CallFilter(q="pineapple"))[1] == 2 and store.search_calls(CallFilter(q="billing"))[1] == 0
    store.close()


def test_a_store_refuses_a_missing_or_wrong_key_with_what_to_do(store_url: str) -> None:
    c = cipher()
    CallStore(store_url, cipher=c).close()  # the first key used is remembered
    with pytest.raises(StoreKeyError, match=rf"encrypted \(key {c.key_id}\) but no key is configured: set "
                                            r"protection.key_file \(or VOICE_AGENT_KEY\)"):
        CallStore(store_url)
    other = cipher()
    with pytest.raises(StoreKeyError, match=f"encrypted with key {c.key_id}, not with the configured key "
                                            f"{other.key_id}.*keys rotate"):
        CallStore(store_url, cipher=other)
    store = CallStore(store_url, cipher=c)
    store.add_call("phone", "sip:1@h", text="hello")
    store.close()
    unchecked = CallStore(store_url, check_key=False)  # a program reading past the check still gets one line
    with pytest.raises(StoreKeyError, match="no key is configured"):
        unchecked.list_calls()
    unchecked.close()


def test_without_a_key_nothing_changes(store_url: str) -> None:
    store = CallStore(store_url)
    cid = seed(store)
    assert "pineapple" in "\n".join(raw_values(store))
    assert store.search_calls(CallFilter(q="pineapp"))[0][0]["id"] == cid  # substring search as before
    assert store.protection_state() == {}
    store.close()


def test_a_live_call_recovered_after_a_crash_stays_sealed_and_searchable(store_url: str) -> None:
    c = cipher()
    store = CallStore(store_url, cipher=c)
    store.start_call("live", "phone", "sip:+447700900123@10.0.0.1", worker="w1")
    store.add_turn("live", {"index": 0, "caller_text": "is the pineapple line down", "agent_text": "Vauxhall is fine",
                            "end_of_speech": 1.0, "first_audio_out": 2.0})
    assert store.recover_calls("w1") == ["live"]
    call = store.get_call("live")
    assert call.outcome == "error" and "pineapple" in call.text and call.meta["recovered"] is True
    assert store.search_calls(CallFilter(q="pineapple"))[1] == 1
    assert not [v for v in raw_values(store) if "pineapple" in v or "Vauxhall" in v]
    assert store.calls_of("phone", "+447700900123") == (["live"], [])
    store.close()
