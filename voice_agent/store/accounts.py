"""Console users, API tokens and the audit log (hashing and policy live in voice_agent.auth)."""

from __future__ import annotations

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
            now = time.time()
            # sessions_after: a cookie from a deleted user of the same name must not sign this one in.
            db.execute("INSERT INTO users (name, role, password_hash, created_at, sessions_after)"
                       " VALUES (?, ?, ?, ?, ?)", (name, role, password_hash, now, now))
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
        """Replace a user's password hash, ending their sessions and revoking their tokens; False when absent."""
        with self.transaction() as db:
            if not db.count("UPDATE users SET password_hash = ?, sessions_after = ? WHERE name = ?",
                            (password_hash, time.time(), name)):
                return False
            db.execute("UPDATE api_tokens SET revoked = 1 WHERE user_name = ? AND revoked = 0", (name,))
        return True

    def set_user_disabled(self, name: str, disabled: bool) -> bool:
        """Disable (sessions end, tokens revoked) or enable a user; False when absent."""
        with self.transaction() as db:
            if not disabled:
                return db.count("UPDATE users SET disabled = 0 WHERE name = ?", (name,)) > 0
            if not db.count("UPDATE users SET disabled = 1, sessions_after = ? WHERE name = ?", (time.time(), name)):
                return False
            db.execute("UPDATE api_tokens SET revoked = 1 WHERE user_name = ? AND revoked = 0", (name,))
        return True

    def delete_user(self, name: str) -> bool:
        """Delete a user and their tokens (audit rows keep the name); False when absent."""
        with self.transaction() as db:
            db.execute("DELETE FROM api_tokens WHERE user_name = ?", (name,))
            db.execute("DELETE FROM revoked_sessions WHERE user_name = ?", (name,))
            return db.count("DELETE FROM users WHERE name = ?", (name,)) > 0

    def insert_token(self, name: str, token_hash: str, label: str, expires_at: float | None = None) -> str:
        """Store an API token's hash for a user; returns the token's id."""
        token_id = uuid.uuid4().hex[:12]
        with self.transaction() as db:
            db.execute("INSERT INTO api_tokens (id, user_name, token_hash, label, created_at, expires_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (token_id, name, token_hash, label, time.time(), expires_at))
        return token_id

    def token_owner(self, token_hash: str) -> tuple[str, str] | None:
        """(name, role) of a live, unexpired token's enabled owner, marking the token used; None otherwise."""
        now = time.time()
        with self.transaction() as db:
            row = db.row("SELECT u.name, u.role, t.id FROM api_tokens t JOIN users u ON u.name = t.user_name"
                         " WHERE t.token_hash = ? AND t.revoked = 0 AND u.disabled = 0"
                         " AND (t.expires_at IS NULL OR t.expires_at > ?)", (token_hash, now))
            if row is None:
                return None
            db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, row[2]))
        return str(row[0]), str(row[1])

    def token_rows(self, name: str | None = None) -> list[dict[str, Any]]:
        """Tokens (never their hashes): id, user, label, created, expires, last used, revoked."""
        sql = "SELECT id, user_name, label, created_at, expires_at, last_used_at, revoked FROM api_tokens"
        args: list[Any] = []
        if name:
            sql += " WHERE user_name = ?"
            args.append(name)
        with self.read() as db:
            rows = db.rows(sql + " ORDER BY created_at", args)
        return [{"id": r["id"], "user": r["user_name"], "label": r["label"], "created_at": r["created_at"],
                 "expires_at": r["expires_at"], "last_used_at": r["last_used_at"], "revoked": bool(r["revoked"])}
                for r in rows]

    def revoke_session(self, nonce: str, name: str, expires_at: float) -> None:
        """Remember a signed-out session until it would have expired anyway (forgetting the expired ones)."""
        with self.transaction() as db:
            db.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (time.time(),))
            db.execute("INSERT INTO revoked_sessions (nonce, user_name, expires_at) VALUES (?, ?, ?)"
                       " ON CONFLICT (nonce) DO NOTHING", (nonce, name, expires_at))

    def session_valid(self, nonce: str, name: str, issued_at: float) -> bool:
        """Whether a signed session still stands: not signed out, user enabled, issued after the last
        password change or disabling."""
        with self.read() as db:
            row = db.row("SELECT u.sessions_after, (SELECT COUNT(*) FROM revoked_sessions r WHERE r.nonce = ?)"
                         " FROM users u WHERE u.name = ? AND u.disabled = 0", (nonce, name))
        return row is not None and int(row[1]) == 0 and float(row[0]) <= issued_at

    def revoke_user_tokens(self, name: str) -> int:
        """Revoke every live token of a user; how many."""
        with self.transaction() as db:
            return db.count("UPDATE api_tokens SET revoked = 1 WHERE user_name = ? AND revoked = 0", (name,))

    def add_audit(self, user: str, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
        """Write one audit row (with a key, its details and a searched text are sealed: they may quote a caller)."""
        if target.startswith("q:"):
            target = self.seal(target)
        with self.transaction() as db:
            db.execute("INSERT INTO audit_log (id, at, user_name, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (uuid.uuid4().hex, time.time(), user, action, target, self.seal_json(detail or {})))

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
        return [{"at": r["at"], "user": r["user_name"], "action": r["action"],
                 "target": self.unseal(r["target"], "an audit row"),
                 "detail": self.unseal_json(r["detail"], {}, "an audit row")} for r in rows]
