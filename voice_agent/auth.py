"""Console users, password hashing, API tokens, signed sessions, roles and the audit log.

Passwords are hashed with argon2id when ``argon2-cffi`` is installed, else with
scrypt from the standard library; both verify. API tokens are random and only
their SHA-256 is stored. There is no default account: the first admin comes
from ``voice-agent users add NAME --role admin``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_agent.store import CallStore, StoreError, private_file

ROLES = ("viewer", "agent", "admin")
_LEVEL = {name: i for i, name in enumerate(ROLES)}
TOKEN_PREFIX = "va_"
# scrypt at n=2**15, r=8 costs 32 MiB and ~50-100 ms: slow for guessing, fine for a sign-in.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 10


class AuthError(StoreError):
    """A user, password or token problem, told in one line."""


@dataclass(frozen=True)
class User:
    """A signed-in person or token holder."""

    name: str
    role: str

    def can(self, role: str) -> bool:
        """Whether this user has at least ``role``."""
        return _LEVEL.get(self.role, -1) >= _LEVEL[role]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """A salted, slow hash of the password in a self-describing string."""
    try:
        from argon2 import PasswordHasher

        return "argon2$" + str(PasswordHasher().hash(password))
    except ImportError:
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P,
                                maxmem=64 * 1024 * 1024, dklen=32)
        return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether the password matches the stored hash (constant time)."""
    kind, _, rest = stored.partition("$")
    if kind == "argon2":
        try:
            from argon2 import PasswordHasher
            from argon2.exceptions import VerificationError

            return bool(PasswordHasher().verify(rest, password))
        except ImportError:
            return False
        except (VerificationError, ValueError):
            return False
    if kind == "scrypt":
        try:
            n, r, p, salt, digest = rest.split("$")
            expected = _unb64(digest)
            got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                 maxmem=64 * 1024 * 1024, dklen=len(expected))
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(got, expected)
    return False


# A hash to compare against when the user does not exist, so timing does not reveal names.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


def check_password_strength(password: str, name: str = "") -> None:
    """Refuse passwords too weak to survive guessing (voice_agent.passwords: length, common, the name, repeats)."""
    from voice_agent.passwords import PasswordRejected, check_password

    try:
        check_password(password, name)
    except PasswordRejected as exc:
        raise AuthError(str(exc)) from None


class Users:
    """Users, tokens and the audit log; the SQL is the store's (``voice_agent.store.accounts``)."""

    def __init__(self, store: CallStore, token_days: float = 90.0) -> None:
        self.store = store
        self.token_days = token_days  # how long a new API token works (http.token_days)

    def add(self, name: str, role: str, password: str) -> User:
        """Create a user; refuses a duplicate name, an unknown role or a weak password."""
        name = name.strip()
        if not name or len(name) > 64 or any(c.isspace() for c in name):
            raise AuthError("a user name is 1-64 characters without spaces")
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        check_password_strength(password, name)
        if not self.store.insert_user(name, role, hash_password(password)):
            raise AuthError(f"user {name!r} already exists")
        return User(name, role)

    def get(self, name: str) -> User | None:
        """The user by name, or None (disabled users count as absent)."""
        row = self.store.user_row(name)
        return User(row["name"], row["role"]) if row else None

    def all(self) -> list[dict[str, Any]]:
        """Every user (without password hashes)."""
        return self.store.user_rows()

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password: their console sessions end and their API tokens are revoked."""
        check_password_strength(password, name)
        if not self.store.set_password_hash(name, hash_password(password)):
            raise AuthError(f"no user {name!r}")

    def disable(self, name: str) -> None:
        """Stop a user signing in: their sessions end and their API tokens are revoked."""
        if not self.store.set_user_disabled(name, True):
            raise AuthError(f"no user {name!r}")

    def enable(self, name: str) -> None:
        """Let a disabled user sign in again (with new sessions and tokens)."""
        if not self.store.set_user_disabled(name, False):
            raise AuthError(f"no user {name!r}")

    def delete(self, name: str) -> None:
        """Delete a user and their tokens; the audit log keeps their name."""
        if not self.store.delete_user(name):
            raise AuthError(f"no user {name!r}")

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right, else None (same cost either way)."""
        row = self.store.user_row(name)
        if row is None:
            verify_password(password, _dummy_hash())
            return None
        return User(row["name"], row["role"]) if verify_password(password, row["password_hash"]) else None

    def issue_token(self, name: str, label: str = "", days: float | None = None) -> str:
        """A new API token for the user, working ``days`` (default ``token_days``); only its hash is kept,
        so this is the one time it is shown."""
        days = self.token_days if days is None else days
        if not days > 0:
            raise AuthError(f"a token must work for a positive number of days, not {days}")
        if self.get(name) is None:
            raise AuthError(f"no user {name!r}: add it first with `voice-agent users add {name}`")
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.store.insert_token(name, _token_hash(raw), label, time.time() + days * 86400)
        return raw

    def token_user(self, raw: str) -> User | None:
        """The user an API token belongs to, or None when unknown, revoked, expired or the user is disabled."""
        if not raw.startswith(TOKEN_PREFIX):
            return None
        owner = self.store.token_owner(_token_hash(raw))
        return User(*owner) if owner else None

    def revoke_tokens(self, name: str) -> int:
        """Revoke every token of a user; returns how many."""
        return self.store.revoke_user_tokens(name)

    def audit(self, user: str, action: str, target: str = "", **detail: Any) -> None:
        """Write one audit row (who read or changed what, when)."""
        self.store.add_audit(user, action, target, detail)

    def audit_rows(self, limit: int = 100, target: str | None = None) -> list[dict[str, Any]]:
        """The most recent audit rows first."""
        return self.store.audit_rows(limit, target)


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class SessionSigner:
    """Console sessions: an HMAC-signed cookie and a CSRF token derived from it.

    With a store, sign-outs are kept there (they survive a restart and reach every worker) and a
    session ends when its user changes password or is disabled; without one, sign-outs are per process.
    """

    def __init__(self, secret: bytes, max_age_s: float = 12 * 3600, store: CallStore | None = None) -> None:
        self.secret = secret
        self.max_age_s = max_age_s
        self.store = store
        self._revoked: dict[str, float] = {}  # without a store: signed-out sessions until they expire

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self.secret, text.encode(), hashlib.sha256).digest())

    def issue(self, user: User) -> str:
        """A cookie value for the signed-in user."""
        now = time.time()
        body = _b64(json.dumps({"u": user.name, "r": user.role, "exp": int(now + self.max_age_s), "iat": now,
                                "n": secrets.token_hex(8)}).encode())
        return f"{body}.{self._mac(body)}"

    def _claims(self, cookie: str) -> dict[str, Any] | None:
        body, _, mac = cookie.partition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int | float):
            return None
        return data

    def read(self, cookie: str) -> User | None:
        """The user of a valid, unexpired, not signed-out cookie (blocking with a store: run it off the loop)."""
        data = self._claims(cookie)
        if data is None or data["exp"] < time.time() or data.get("n") in self._revoked:
            return None
        user = User(str(data.get("u")), str(data.get("r")))
        if self.store is not None:
            issued = float(data.get("iat", data["exp"] - self.max_age_s))
            if not self.store.session_valid(str(data.get("n")), user.name, issued):
                return None
        return user

    def revoke(self, cookie: str) -> None:
        """Sign a session out: its cookie stops working even if it was copied (blocking with a store)."""
        data = self._claims(cookie)
        if data is None:
            return
        if self.store is not None:
            self.store.revoke_session(str(data.get("n")), str(data.get("u")), float(data["exp"]))
            return
        now = time.time()
        self._revoked = {n: exp for n, exp in self._revoked.items() if exp > now}
        self._revoked[str(data.get("n"))] = float(data["exp"])

    def csrf(self, cookie: str) -> str:
        """The CSRF token that goes with a session cookie (sent back in a header)."""
        return self._mac("csrf:" + cookie)

    def check_csrf(self, cookie: str, token: str) -> bool:
        """Whether the header token belongs to this cookie."""
        return bool(token) and hmac.compare_digest(token, self.csrf(cookie))


def load_secret(configured: str, data_dir: Path) -> bytes:
    """The session secret: configured, or random and kept in the data dir (owner-only) across restarts."""
    if configured:
        return configured.encode()
    path = data_dir / "web-secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        pass
    secret = secrets.token_bytes(32)
    private_file(path)
    path.write_text(secret.hex())
    return secret


__all__ = ["ROLES", "AuthError", "SessionSigner", "User", "Users", "hash_password", "load_secret",
           "verify_password"]
