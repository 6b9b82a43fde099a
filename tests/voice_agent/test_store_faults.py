"""A locked database or a full disk: a clear error naming the store and what to do, never a hang or a traceback."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.postgres import PostgresServer
from voice_agent.store import CallStore, StoreError, StoreUnavailable
from voice_agent.store.dialect import PostgresDialect

ROOT = Path(__file__).resolve().parents[2]


def test_sqlite_locked_by_another_program_fails_within_the_busy_timeout(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    CallStore(f"sqlite:///{db}").close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program in the middle of a write
    try:
        store = CallStore(f"sqlite:///{db}", busy_timeout_s=0.5)  # up to date: opening takes no write lock
        assert store.list_calls() == []  # readers still read (WAL)
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            store.add_call("phone", "a")
        waited = time.monotonic() - t0
        assert 0.4 < waited < 5, waited  # bounded: the busy timeout, not a hang
        message = str(info.value)
        assert str(db) in message and "locked by another program" in message and "busy_timeout_s" in message
        holder.execute("ROLLBACK")
        store.add_call("phone", "a")  # works again once the lock is gone
    finally:
        holder.close()


def test_locked_store_through_the_cli_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "home" / "calls.db"
    CallStore(f"sqlite:///{db}").close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        env = dict(os.environ, VOICE_AGENT_HOME=str(tmp_path / "home"))
        done = subprocess.run([sys.executable, "-m", "voice_agent", "--set", "store.busy_timeout_s=0.3", "users",
                               "add", "ann", "--role", "admin", "--password-stdin"], input="a-long-password-1\n",
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    finally:
        holder.close()
    assert done.returncode == 2, done.stderr
    assert "locked by another program" in done.stderr and str(db) in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_sqlite_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    with store.transaction() as db:
        pages = int(db.value("PRAGMA page_count"))
        db.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's own "database or disk is full"
    with pytest.raises(StoreUnavailable, match=r"cannot write: the disk is full; free space") as info:
        store.add_call("transcription", "/x.wav", text="word " * 200_000)
    assert str(tmp_path / "calls.db") in str(info.value)
    assert store.list_calls() == []  # rolled back, nothing half-written
    store.add_call("transcription", "/x.wav", text="short")  # small writes still fit


def test_os_errors_at_the_file_layer_name_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def full(path: str, *args: object, **kwargs: object) -> int:
        if str(path).endswith("calls.db"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("voice_agent.store.files.os.open", full)
    with pytest.raises(StoreUnavailable, match="the disk is full") as info:
        CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    assert str(tmp_path / "calls.db") in str(info.value)

    def denied(path: str, *args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("voice_agent.store.files.os.open", denied)
    with pytest.raises(StoreUnavailable, match="check the permissions"):
        CallStore(f"sqlite:///{tmp_path / 'other.db'}")


def test_postgres_lock_waits_are_bounded(postgres: PostgresServer) -> None:
    import psycopg

    url = postgres.new_database()
    CallStore(url).close()
    store = CallStore(url, busy_timeout_s=0.5)
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")  # held until this transaction ends
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match="is locked by another session") as info:
            store.add_call("phone", "a")
        assert time.monotonic() - t0 < 5
        assert "postgresql://" in str(info.value)
    store.add_call("phone", "a")  # the lock is gone: the same store object works again
    store.close()


def test_postgres_full_disk_and_lost_connection_are_explained(postgres: PostgresServer) -> None:
    import psycopg

    dialect = PostgresDialect(postgres.url(), 5.0)
    full = dialect.explain(psycopg.errors.DiskFull("could not extend file: No space left on device"))
    assert isinstance(full, StoreUnavailable) and "disk is full" in str(full)

    url = postgres.new_database()
    store = CallStore(url)
    with psycopg.connect(postgres.url(), autocommit=True) as admin:  # the server drops our connection
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                      (url.rsplit("/", 1)[1],))
    assert store.list_calls() == []  # a dropped connection is opened again before anything was done
    store.close()
    with pytest.raises(StoreError, match="cannot reach the PostgreSQL call store"):
        CallStore(postgres.url("no_such_database"))
