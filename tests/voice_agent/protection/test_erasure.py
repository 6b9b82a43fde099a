"""Erasure on request on SQLite and PostgreSQL: one caller's or customer's data, every copy, and a receipt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voice_agent.protection.cipher import Cipher, Key
from voice_agent.protection.erasure import ErasureError, erase_subject
from voice_agent.store import CallStore
from voice_agent.store.analytics import ANALYTICS_COLUMNS


def call(store: CallStore, tmp_path: Path, source: str, text: str, meta: dict[str, object] | None = None) -> str:
    rec = tmp_path / "rec" / f"{len(list((tmp_path / 'rec').glob('*'))) if (tmp_path / 'rec').exists() else 0}.wav"
    rec.parent.mkdir(exist_ok=True)
    rec.write_bytes(b"audio")
    cid = store.add_call("phone", source, text=text, outcome="resolved", meta={"recording": str(rec), **(meta or {})},
                         segments=[{"start": 0, "end": 1, "text": text}])
    store.add_turns(cid, [{"index": 0, "caller_text": text, "agent_text": "ok"}])
    store.add_events(cid, [{"type": "caption", "text": text}])
    row = {c: 0 for c in ANALYTICS_COLUMNS} | {"kind": "phone", "outcome": "contained", "transfer_reason": "",
                                              "sentiment_start": None, "sentiment_end": None, "sentiment_mean": None}
    store.put_analytics(cid, row, [{"turn": 0, "at": 1.0, "question": text, "norm": text}])
    return cid


@pytest.mark.parametrize("keyed", [True, False])
def test_erasure_by_phone_number_takes_every_copy_and_gives_a_receipt(tmp_path: Path, store_url: str,
                                                                      keyed: bool) -> None:
    store = CallStore(store_url, cipher=Cipher(Key(os.urandom(32))) if keyed else None)
    mine = [call(store, tmp_path, "sip:+447700900123@10.0.0.1", "my account is 55 Elm Road"),
            call(store, tmp_path, "tel:+44-7700-900123", "Elm Road again")]
    upload = tmp_path / "up.wav"
    upload.write_bytes(b"audio")
    job = store.add_job("me.wav", str(upload), "ann")
    store.update_job(job, status="done", call_id=mine[0], result={"text": "Elm Road"})
    theirs = call(store, tmp_path, "sip:+15550009999@10.0.0.1", "someone else")
    browser = call(store, tmp_path, "browser 127.0.0.1", "a browser caller")
    store.start_call("live1", "phone", "sip:+447700900123@10.0.0.1", worker="w")  # still on the line
    with store.transaction() as db:  # a call stored before caller references existed
        db.execute("UPDATE calls SET caller_ref = NULL WHERE id = ?", (mine[1],))

    receipt = erase_subject(store, phone="+44 7700 900123", by="ada", via="cli")
    assert receipt["call_ids"] == sorted(mine) and receipt["active_calls_not_erased"] == ["live1"]
    assert receipt["deleted"] == {"calls": 2, "segments": 2, "turns": 2, "events": 2, "analytics": 2,
                                  "kb_gaps": 2, "jobs": 1, "recordings": 2, "uploads": 1}
    assert receipt["requested_by"] == "ada" and receipt["subject"] == {"kind": "phone", "masked": "…23"}
    assert "7700900123" not in str(receipt) and receipt["at_utc"].endswith("+00:00")
    assert not upload.exists()
    assert {c.id for c in store.list_calls()} == {theirs, browser, "live1"}
    assert store.job(job) is None and store.kb_gap_rows() and len(store.kb_gap_rows()) == 2
    audit = store.audit_rows()[0]
    assert audit["action"] == "erasure" and audit["user"] == "ada" and audit["target"] == receipt["receipt"]
    assert "7700900123" not in str(audit) and audit["detail"]["deleted"]["calls"] == 2
    again = erase_subject(store, phone="+447700900123", by="ada")
    assert again["call_ids"] == [] and again["deleted"]["calls"] == 0
    store.close()


def test_erasure_by_customer_id(tmp_path: Path, store_url: str) -> None:
    store = CallStore(store_url, cipher=Cipher(Key(os.urandom(32))))
    a = call(store, tmp_path, "browser 10.0.0.1", "hello", {"customer_id": "C-1001"})
    b = call(store, tmp_path, "sip:+15550001111@h", "hi")
    store.update_call(b, meta={"customer": {"id": "C-1001", "name": "Ann"}})  # identified during the call
    c = call(store, tmp_path, "sip:+15550002222@h", "other", {"customer_id": "C-2002"})
    receipt = erase_subject(store, customer="C-1001", by="ada")
    assert receipt["call_ids"] == sorted([a, b]) and [x.id for x in store.list_calls()] == [c]
    assert receipt["subject"] == {"kind": "customer", "masked": "…01"}
    store.close()


@pytest.mark.parametrize(("phone", "customer", "message"), [
    (None, None, "name one subject"), ("+1", None, "fewer than 3 digits"), ("+15550001", "C1", "name one subject")])
def test_a_request_must_name_one_subject(tmp_path: Path, phone: str | None, customer: str | None,
                                         message: str) -> None:
    store = CallStore(f"sqlite:///{tmp_path / 'c.db'}")
    with pytest.raises(ErasureError, match=message):
        erase_subject(store, phone=phone, customer=customer, by="ada")
    store.close()
