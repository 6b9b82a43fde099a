"""The SQL of a customer directory kept in a SQLite file (``customers.directory = "customers.db"``), read only.

The directory is the customer's own file, not the call store: it is opened read-only and never migrated.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

COLUMNS = ("id", "name", "phone", "account", "postcode", "plan", "open_tickets", "consent_recording",
           "consent_marketing")


def read_customer_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of the file's ``customers`` table (absent optional columns read as empty); DirectoryError if not."""
    from voice_agent.customers.directory import DirectoryError

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        raise DirectoryError(f"customer directory {path}: cannot be opened ({exc})") from None
    try:
        db.row_factory = sqlite3.Row
        have = {r["name"] for r in db.execute("PRAGMA table_info(customers)")}
        if "id" not in have:
            raise DirectoryError(f"customer directory {path}: no customers table with an id column")
        cols = ", ".join(c if c in have else f"NULL AS {c}" for c in COLUMNS)
        return [dict(r) for r in db.execute(f"SELECT {cols} FROM customers")]
    except sqlite3.Error as exc:
        raise DirectoryError(f"customer directory {path}: not a readable SQLite file ({exc})") from None
    finally:
        db.close()


def write_customer_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Create a directory file from records (the CSV's columns): for tests and for moving from CSV to SQLite."""
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE IF NOT EXISTS customers ({', '.join(f'{c} TEXT' for c in COLUMNS)},"
                   " PRIMARY KEY (id))")
        db.executemany(f"INSERT OR REPLACE INTO customers ({', '.join(COLUMNS)}) VALUES "
                       f"({', '.join('?' for _ in COLUMNS)})", [tuple(r.get(c) for c in COLUMNS) for r in rows])
    db.close()
