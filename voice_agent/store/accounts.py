"""Console users, API tokens and the audit log (hashing and policy live in voice_agent.auth)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from voice_agent.store.database import Database


class AccountTables(Database):
    """The users, api_tokens and audit_log tables."""

    def insert_user(self, name: str, role: str, password_hash: str) -> bool:
        """Add a user; False when the name is taken."""
        with self.transaction() as db:
            if db.row("SELECT 1 FROM users WHERE name = ?", (name,)):
                return False
            db.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                       (name, role, password_hash, time.time()))
        return True

    def user_row(self, name: str, *, enabled: bool = True) -> dict[str, Any] | None:
        """A user's name, role, password hash and state; None when absent (or disabled, with enabled=True)."""
        sql = "SELECT name, role, password_hash, disabled FROM users WHERE name = ?"
        if enabled:
            sql += " AND disabled = 0"
        with self.read() as db:
            row = db.row(sql, (name,))
        if row is None:
            return None
        return {"name": row["name"], "role": row["role"], "password_hash": row["password_hash"],
                "disabled": bool(row["disabled"])}

    def user_rows(self) -> list[dict[str, Any]]:
        """Every user without password hashes."""
        with self.read() as db:
            rows = db.rows("SELECT name, role, created_at, disabled FROM users ORDER BY name")
        return [{"name": r["name"], "role": r["role"], "created_at": r["created_at"], "disabled": bool(r["disabled"])}
                for r in rows]

    def set_password_hash(self, name: str, password_hash: str) -> bool:
        """Replace a user's password hash; False when there is no such user."""
        with self.transaction() as db:
            return db.count("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name)) > 0

    def insert_token(self, name: str, token_hash: str, label: str) -> str:
        """Store an API token's hash for a user; returns the token's id."""
        token_id = uuid.uuid4().hex[:12]
        with self.transaction() as db:
            db.execute("INSERT INTO api_tokens (id, user_name, token_hash, label, created_at) VALUES (?, ?, ?, ?, ?)",
                       (token_id, name, token_hash, label, time.time()))
        return token_id

    def token_owner(self, token_hash: str) -> tuple[str, str] | None:
        """(name, role) of a live token's enabled owner, marking the token used; None otherwise."""
        with self.transaction() as db:
            row = db.row("SELECT u.name, u.role, t.id FROM api_tokens t JOIN users u ON u.name = t.user_name"
                         " WHERE t.token_hash = ? AND t.revoked = 0 AND u.disabled = 0", (token_hash,))
            if row is None:
                return None
            db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (time.time(), row[2]))
        return str(row[0]), str(row[1])

    def revoke_user_tokens(self, name: str) -> int:
        """Revoke every live token of a user; how many."""
        with self.transaction() as db:
            return db.count("UPDATE api_tokens SET revoked = 1 WHERE user_name = ? AND revoked = 0", (name,))

    def add_audit(self, user: str, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
        """Write one audit row."""
        with self.transaction() as db:
            db.execute("INSERT INTO audit_log (id, at, user_name, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (uuid.uuid4().hex, time.time(), user, action, target, json.dumps(detail or {})))

    def audit_rows(self, limit: int = 100, target: str | None = None) -> list[dict[str, Any]]:
        """The most recent audit rows first."""
        sql = "SELECT at, user_name, action, target, detail FROM audit_log"
        args: list[Any] = []
        if target:
            sql += " WHERE target = ?"
            args.append(target)
        sql += " ORDER BY at DESC LIMIT ?"
        args.append(limit)
        with self.read() as db:
            rows = db.rows(sql, args)
        return [{"at": r["at"], "user": r["user_name"], "action": r["action"], "target": r["target"],
                 "detail": json.loads(r["detail"])} for r in rows]
