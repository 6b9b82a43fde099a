"""Key rotation: everything sealed (rows and files) re-encrypted with a new key, resumable and audited.

Safe to interrupt at any point: rows are re-sealed in small transactions and files are written beside
the old ones and renamed over them, so every value is at all times whole and readable with the old
key or the new one. The store records the rotation while it runs (workers refuse to start with a
half-rotated store); running the same command again finishes it. When it is done the new key is the
store's key and the old one is retired: a worker started with it stops with one line saying so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voice_agent.config import Config
from voice_agent.protection.cipher import Cipher, Key
from voice_agent.protection.files import is_sealed, reseal
from voice_agent.protection.keys import configured_keys
from voice_agent.store import CallStore, StoreKeyError
from voice_agent.store.protection import SEALED


def sealed_dirs(config: Config) -> list[Path]:
    """Where the files this program seals live: recordings and uploads."""
    return [config.recordings_path, config.data_path / "uploads"]


def _files(dirs: list[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") and p.name.endswith(".rotating"):
                p.unlink(missing_ok=True)  # an interrupted run's half-written copy; the original is intact
            elif p.is_file() and not p.name.startswith("."):
                out.append(p)
    return out


def rotate(config: Config, new_key: Key, *, by: str, batch: int = 200,
           progress: Callable[[str], None] | None = None,
           after_batch: Callable[[], None] | None = None) -> dict[str, Any]:
    """Re-encrypt the store's rows and files with ``new_key``; returns what was done.

    The configured key (and ``protection.old_key_files``) must open what is there; data stored in clear
    before a key was configured is sealed too (rotating to the current key seals only that).
    ``after_batch`` is a test hook called after each committed batch.
    """
    say = progress or (lambda _text: None)
    current, old = configured_keys(config)
    readers = [k for k in (current, *old) if k is not None]
    cipher = Cipher(new_key, readers)
    store = CallStore(config.store_url, busy_timeout_s=config.store.busy_timeout_s, cipher=cipher, check_key=False)
    try:
        state = store.protection_state()
        store_key = state.get("key_id")
        running = json.loads(state["rotation"]) if state.get("rotation") else None
        if running and running["to"] != new_key.id:
            raise StoreKeyError(f"an interrupted rotation to key {running['to']} must be finished first: run "
                                f"`voice-agent keys rotate --new-key-file FILE` with the file of key {running['to']}")
        if store_key and store_key not in cipher.keys:
            raise StoreKeyError(f"the call store {store.where} is encrypted with key {store_key}, which is not "
                                "configured: set protection.key_file to it before rotating")
        started = running or {"from": store_key, "to": new_key.id, "started_at": time.time()}
        store.set_protection_state(rotation=json.dumps(started))
        store.add_audit(by, "key_rotation_resumed" if running else "key_rotation_started", new_key.id,
                        {"from": store_key})
        rows = dict.fromkeys(SEALED, 0)
        for _ in range(3):  # a second pass catches rows a still-running worker wrote meanwhile
            changed = 0
            for table in SEALED:
                after: Any = None
                while True:
                    n, after = store.reseal_rows(table, after, batch)
                    rows[table] += n
                    changed += n
                    if after_batch is not None:
                        after_batch()
                    if after is None:
                        break
            if not changed:
                break
        for table, n in rows.items():
            say(f"{table}: {n} rows re-encrypted")
        files = 0
        found = _files(sealed_dirs(config))
        elsewhere = [Path(p) for p in store.recording_paths()]  # recordings written outside the folder
        found += [p for p in elsewhere if p not in found and p.is_file() and is_sealed(p)]
        for path in found:
            if reseal(path, cipher, cipher):
                files += 1
                if after_batch is not None:
                    after_batch()
        say(f"files: {files} re-encrypted")
        retired = {k for k in state.get("retired", "").split(",") if k}
        if store_key and store_key != new_key.id:
            retired.add(store_key)
        retired.discard(new_key.id)  # a key brought back is not retired any more
        store.set_protection_state(key_id=new_key.id, rotation=None, retired=",".join(sorted(retired)) or None)
        store.compact()
        summary = {"from": store_key, "to": new_key.id, "rows": rows, "files": files,
                   "started_at": started["started_at"], "finished_at": time.time()}
        store.add_audit(by, "key_rotation_finished", new_key.id, summary)
        return summary
    finally:
        store.close()


def status(config: Config) -> dict[str, Any]:
    """The configured key, the store's key, a rotation in progress, and what is sealed with which key."""
    from voice_agent.protection.files import HEADER_SIZE, Header, is_sealed
    from voice_agent.protection.keys import cipher_from_config

    cipher = cipher_from_config(config)
    store = CallStore(config.store_url, busy_timeout_s=config.store.busy_timeout_s, cipher=cipher, check_key=False)
    try:
        state = store.protection_state()
        counts = store.sealed_counts()
    finally:
        store.close()
    files: dict[str, int] = {}
    for path in _files(sealed_dirs(config)):
        key = ""
        if is_sealed(path):
            with path.open("rb") as f:
                key = Header.unpack(f.read(HEADER_SIZE), path.name).key_id  # the header names its key
        files[key] = files.get(key, 0) + 1
    return {"configured_key": cipher.key_id if cipher else None, "store_key": state.get("key_id"),
            "rotation": json.loads(state["rotation"]) if state.get("rotation") else None,
            "retired_keys": [k for k in state.get("retired", "").split(",") if k],
            "rows": {t: {(k or "clear"): n for k, n in c.items()} for t, c in counts.items()},
            "files": {(k or "clear"): n for k, n in files.items()}}


__all__ = ["rotate", "sealed_dirs", "status"]
