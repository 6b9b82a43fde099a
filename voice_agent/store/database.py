"""One connection to SQLite or PostgreSQL: transactions, migrations, and driver errors turned into StoreError.

Blocking: call these methods from a worker thread (``asyncio.to_thread``/an executor), never on the
event loop. One connection per store object, shared by threads under a lock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from voice_agent.protection.cipher import Cipher, SealError, sealed_key_id
from voice_agent.store.dialect import Dialect, dialect_for
from voice_agent.store.errors import StoreError, StoreKeyError
from voice_agent.store.migrations import MIGRATIONS


class Tx:
    """Statements inside one transaction, with the store's ``?`` placeholders."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement; the cursor (iterable rows, ``fetchone``, ``rowcount``)."""
        return self.conn.execute(self.dialect.sql(sql), tuple(args))

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Every row of a query (rows read by position or column name)."""
        return list(self.execute(sql, args).fetchall())

    def row(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first row of a query, or None."""
        return self.execute(sql, args).fetchone()

    def value(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.row(sql, args)
        return None if row is None else row[0]

    def count(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a write; how many rows it touched."""
        return int(self.execute(sql, args).rowcount)


class Database:
    """Transactions and migrations over one connection; subclasses add the tables' methods."""

    def __init__(self, url: str, *, busy_timeout_s: float = 5.0, cipher: Cipher | None = None) -> None:
        self.url = url
        self.dialect = dialect_for(url, busy_timeout_s)
        self.cipher = cipher  # transcript text sealed at rest (AES-GCM) when a key is configured
        self._lock = threading.RLock()
        self._depth = 0
        with self._errors():
            self._conn = self.dialect.connect()
        self.migrate()

    # ---- values sealed at rest (voice_agent.protection): every text column a person's words reach ----
    def seal(self, value: str) -> str:
        """A text value as it is stored: sealed with the current key, or as it is without one."""
        return self.cipher.seal(value) if self.cipher is not None else value

    def seal_json(self, value: Any) -> str:
        """A JSON value as it is stored (sealed with a key)."""
        return self.seal(json.dumps(value))

    def unseal(self, value: Any, what: str = "a stored value") -> Any:
        """A stored text value in clear (None stays None); a StoreKeyError saying what to do when it cannot be."""
        if value is None:
            return None
        if self.cipher is None:
            key_id = sealed_key_id(value)
            if key_id is not None:
                raise StoreKeyError(f"the call store {self.where} holds encrypted transcripts (key {key_id}) but no "
                                    "key is configured: set protection.key_file (or VOICE_AGENT_KEY) to that key")
            return value
        try:
            return self.cipher.open(value, f"{what} in the call store {self.where}")
        except SealError as exc:
            raise StoreKeyError(str(exc)) from None

    def unseal_json(self, value: Any, default: Any, what: str = "a stored value") -> Any:
        """A stored JSON value decoded (``default`` when empty)."""
        text = self.unseal(value, what)
        return json.loads(text) if text else default

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.dialect.name

    @property
    def where(self) -> str:
        """The store for messages (a path, or the URL without its password)."""
        return self.dialect.where

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            try:
                self._conn.close()
            except Exception:  # closing a broken connection must not raise
                pass

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            explained = self.dialect.explain(exc)
            if explained is None:
                raise
            raise explained from exc

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        """Run statements atomically (rolled back on any error); nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield Tx(self._conn, self.dialect)
                finally:
                    self._depth -= 1
                return
            with self._errors():
                self._begin(write)
            self._depth = 1
            try:
                with self._errors():
                    yield Tx(self._conn, self.dialect)
                    self._conn.execute("COMMIT")
            except BaseException:
                try:
                    self._conn.execute("ROLLBACK")
                except Exception:  # the connection may be gone; the first error is the one to tell
                    pass
                raise
            finally:
                self._depth = 0

    def _begin(self, write: bool) -> None:
        begin = self.dialect.begin_write if write else self.dialect.begin_read
        if self.dialect.is_broken(self._conn):
            self._conn = self.dialect.connect()
        try:
            self._conn.execute(begin)
        except Exception:
            if not self.dialect.is_broken(self._conn):
                raise
            # The server restarted or dropped us: nothing was done yet, so one new connection and again.
            self._conn = self.dialect.connect()
            self._conn.execute(begin)

    def read(self) -> Any:
        """A read-only transaction (SQLite: no write lock taken)."""
        return self.transaction(write=False)

    def schema_version(self) -> int:
        """The highest migration applied."""
        with self.read() as db:
            return int(db.value("SELECT MAX(version) FROM schema_migrations") or 0)

    def _applied(self) -> set[int]:
        with self.read() as db:
            if self.dialect.name == "sqlite":
                exists = db.row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
            else:
                exists = db.row("SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_migrations'"
                                " AND table_schema = current_schema()")
            return {int(r[0]) for r in db.rows("SELECT version FROM schema_migrations")} if exists else set()

    def migrate(self) -> None:
        """Apply every migration not yet applied, all in one transaction, one process at a time.

        An up-to-date store takes no write lock, so readers open it while another program writes.
        """
        if {v for v, _, _ in MIGRATIONS} <= self._applied():
            return
        with self.transaction() as db:
            self.dialect.lock_migrations(db)
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at " + self.dialect.ddl("REAL")
                       + " NOT NULL)")
            done = {int(r[0]) for r in db.rows("SELECT version FROM schema_migrations")}
            for version, name, sql in MIGRATIONS:
                if version in done:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(self.dialect.ddl(statement))
                db.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                           (version, name, time.time()))
