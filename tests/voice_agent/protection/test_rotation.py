"""Key rotation on SQLite and PostgreSQL: everything re-encrypted, resumable after an interruption, audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voice_agent.config import Config, load_config
from voice_agent.protection.cipher import Cipher, Key, sealed_key_id
from voice_agent.protection.files import SealedReader, SealedWriter, open_recording
from voice_agent.protection.keys import write_key_file
from voice_agent.protection.rotation import rotate, status
from voice_agent.store import CallFilter, CallStore, StoreKeyError


def make_config(tmp_path: Path, store_url: str, key_file: Path) -> Config:
    return load_config(env={}, overrides={"data_dir": str(tmp_path / "home"), "store": {"url": store_url},
                                          "protection": {"key_file": str(key_file)}})


def seed(config: Config, calls: int = 3) -> list[str]:
    store = CallStore.from_config(config)
    ids = []
    for i in range(calls):
        rec = config.recordings_path / f"call{i}.wav"
        w = open_recording(rec, 8000, store.cipher)
        w.writeframes(b"\x01\x02" * 4000)
        w.close()
        cid = store.add_call("phone", f"sip:+4477009001{i:02d}@h", text=f"secret number {i} marmalade",
                             meta={"recording": str(rec)}, outcome="resolved",
                             segments=[{"start": 0, "end": 1, "text": f"marmalade {i}"}])
        store.add_turns(cid, [{"index": 0, "caller_text": "marmalade", "agent_text": "sure"}])
        ids.append(cid)
    elsewhere = config.data_path / "exports" / "sim.wav"  # `voice-agent call --record` writes where it is told
    w = open_recording(elsewhere, 8000, store.cipher)
    w.writeframes(b"\x03\x04" * 100)
    w.close()
    store.add_call("simulated", "caller.wav", text="marmalade", meta={"recording": str(elsewhere)},
                   outcome="resolved")
    upload = config.data_path / "uploads" / "up.mp3"
    assert store.cipher is not None
    with SealedWriter(upload, store.cipher) as w:
        w.write(b"ID3" + b"x" * 1000)
    store.close()
    return ids


def test_rotation_interrupted_then_resumed_leaves_everything_under_the_new_key(tmp_path: Path, store_url: str) -> None:
    k1, k2 = write_key_file(tmp_path / "k1"), write_key_file(tmp_path / "k2")
    config = make_config(tmp_path, store_url, tmp_path / "k1")
    ids = seed(config)
    batches = {"n": 0}

    def interrupt() -> None:
        batches["n"] += 1
        if batches["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C after the first committed batch

    with pytest.raises(KeyboardInterrupt):
        rotate(config, k2, by="test", batch=1, after_batch=interrupt)
    # Half-rotated: workers refuse to start and say how to finish; every value opens with one of the two keys.
    with pytest.raises(StoreKeyError, match=f"rotation .* to key {k2.id} was interrupted: run "
                                            "`voice-agent keys rotate --new-key-file FILE` again"):
        CallStore.from_config(config)
    half = status(config)
    assert half["rotation"]["to"] == k2.id and set(half["rows"]["calls"]) == {k1.id, k2.id}
    both = CallStore(config.store_url, cipher=Cipher(k2, [k1]), check_key=False)
    assert sorted(c.text for c in both.list_calls())[1:] == [f"secret number {i} marmalade" for i in range(3)]
    both.close()
    k3 = write_key_file(tmp_path / "k3")
    with pytest.raises(StoreKeyError, match=f"interrupted rotation to key {k2.id} must be finished first"):
        rotate(config, k3, by="test")

    summary = rotate(config, k2, by="test")
    assert summary["to"] == k2.id and summary["from"] == k1.id and summary["files"] == 5
    done = status(config)
    assert done["store_key"] == k2.id and done["rotation"] is None and done["retired_keys"] == [k1.id]
    assert all(set(counts) <= {k2.id} for counts in done["rows"].values()) and done["files"] == {k2.id: 4}

    with pytest.raises(StoreKeyError, match=f"configured key {k1.id} is retired.*with key {k2.id}"):
        CallStore.from_config(config)  # a restart with the old key
    new = make_config(tmp_path, store_url, tmp_path / "k2")
    store = CallStore.from_config(new)
    assert set(ids) <= {c.id for c in store.list_calls()}
    assert SealedReader(new.data_path / "exports" / "sim.wav", store.cipher).key_id == k2.id
    assert store.turns(ids[0])[0]["caller_text"] == "marmalade"
    with store.read() as db:
        values = [v for r in db.rows("SELECT source, text, meta FROM calls") for v in r]
    assert {sealed_key_id(v) for v in values} == {k2.id}
    assert store.search_calls(CallFilter(q="marmalade"))[1] == 4  # the keyed index, rebuilt with the new key
    for rec in new.recordings_path.iterdir():
        assert SealedReader(rec, store.cipher).read_all() == b"\x01\x02" * 4000
    actions = [r["action"] for r in store.audit_rows()]
    assert actions[:3] == ["key_rotation_finished", "key_rotation_resumed", "key_rotation_started"]
    finished = store.audit_rows()[0]["detail"]
    assert finished["rows"]["calls"] == 2 and finished["from"] == k1.id  # two were done before the interruption
    store.close()
    assert not list((tmp_path / "home").rglob(".*.rotating"))


def test_rotation_seals_what_was_stored_before_a_key_and_needs_the_current_key(tmp_path: Path,
                                                                               store_url: str) -> None:
    plain = load_config(env={}, overrides={"data_dir": str(tmp_path / "home"), "store": {"url": store_url}})
    store = CallStore.from_config(plain)
    cid = store.add_call("phone", "sip:+15550001@h", text="stored in clear")
    store.close()
    k1 = write_key_file(tmp_path / "k1")
    config = make_config(tmp_path, store_url, tmp_path / "k1")
    assert rotate(config, k1, by="test")["rows"]["calls"] == 1  # to the current key: seals the clear rows only
    store = CallStore.from_config(config)
    assert store.get_call(cid).text == "stored in clear"
    with store.read() as db:
        assert sealed_key_id(db.value("SELECT text FROM calls")) == k1.id
    store.close()
    write_key_file(tmp_path / "k9")
    wrong = make_config(tmp_path, store_url, tmp_path / "k9")
    with pytest.raises(StoreKeyError, match=f"encrypted with key {k1.id}, which is not configured"):
        rotate(wrong, Key(b"\x00" * 32), by="test")
    assert json.dumps(status(config))  # the status is plain JSON


def test_rows_a_forgotten_worker_wrote_with_the_old_key_are_read_then_rotated(tmp_path: Path, store_url: str) -> None:
    k1, k2 = write_key_file(tmp_path / "k1"), write_key_file(tmp_path / "k2")
    seed(make_config(tmp_path, store_url, tmp_path / "k1"), calls=1)
    rotate(make_config(tmp_path, store_url, tmp_path / "k1"), k2, by="test")
    stale = CallStore(store_url, cipher=Cipher(k1), check_key=False)  # a worker still running with key 1
    late = stale.add_call("phone", "sip:+15550003@h", text="written late with the old key")
    stale.close()
    config = load_config(env={}, overrides={"data_dir": str(tmp_path / "home"), "store": {"url": store_url},
                                            "protection": {"key_file": str(tmp_path / "k2"),
                                                           "old_key_files": [str(tmp_path / "k1")]}})
    store = CallStore.from_config(config)
    assert store.get_call(late).text == "written late with the old key"
    store.close()
    assert rotate(config, k2, by="test")["rows"]["calls"] == 1  # only the late row
    assert status(config)["rows"]["calls"] == {k2.id: 3} and status(config)["retired_keys"] == [k1.id]
