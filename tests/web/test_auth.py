"""Users, password hashing, API tokens, signed sessions, the audit log and the users command."""

from __future__ import annotations

import io
import stat
import time
from pathlib import Path

import pytest

from voice_agent.auth import AuthError, SessionSigner, User, Users, hash_password, load_secret, verify_password
from voice_agent.cli import main
from voice_agent.store import CallStore


def test_password_hashes_are_salted_slow_and_verify() -> None:
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a != b  # a fresh salt each time
    assert a.split("$")[0] in ("scrypt", "argon2")
    assert "correct horse" not in a
    assert verify_password("correct horse battery", a)
    assert not verify_password("correct horse batterY", a)
    assert not verify_password("x", "scrypt$garbage")
    assert not verify_password("x", "md5$whatever")
    if a.startswith("scrypt$"):
        assert int(a.split("$")[1]) >= 2**14  # a cost that makes guessing expensive


def test_users_roles_and_weak_passwords() -> None:
    users = Users(CallStore("sqlite://"))
    with pytest.raises(AuthError, match="at least"):
        users.add("eve", "admin", "short")
    with pytest.raises(AuthError, match="unknown role"):
        users.add("eve", "root", "long-enough-password")
    with pytest.raises(AuthError, match="without spaces"):
        users.add("two words", "agent", "long-enough-password")
    users.add("eve", "agent", "long-enough-password")
    with pytest.raises(AuthError, match="already exists"):
        users.add("eve", "admin", "long-enough-password")
    user = users.authenticate("eve", "long-enough-password")
    assert user == User("eve", "agent")
    assert user.can("viewer") and user.can("agent") and not user.can("admin")
    assert users.authenticate("eve", "wrong-password-here") is None
    assert users.authenticate("nobody", "long-enough-password") is None
    users.set_password("eve", "another-long-password")
    assert users.authenticate("eve", "another-long-password") is not None


def test_tokens_are_stored_hashed_and_can_be_revoked() -> None:
    store = CallStore("sqlite://")
    users = Users(store)
    users.add("bot", "viewer", "long-enough-password")
    token = users.issue_token("bot", "reports")
    assert token.startswith("va_") and len(token) > 40
    with store.transaction() as db:
        stored = [tuple(r) for r in db.execute("SELECT token_hash, label FROM api_tokens")]
    assert len(stored) == 1 and token not in stored[0][0] and stored[0][1] == "reports"
    assert users.token_user(token) == User("bot", "viewer")
    assert users.token_user(token + "x") is None
    assert users.token_user("not-a-token") is None
    with pytest.raises(AuthError, match="no user"):
        users.issue_token("ghost")
    assert users.revoke_tokens("bot") == 1
    assert users.token_user(token) is None


def test_session_cookies_are_signed_expire_and_bind_csrf() -> None:
    signer = SessionSigner(b"k" * 32, max_age_s=60)
    cookie = signer.issue(User("ann", "agent"))
    assert signer.read(cookie) == User("ann", "agent")
    body, mac = cookie.split(".")
    forged = SessionSigner(b"other-secret" * 3).issue(User("ann", "admin"))
    assert signer.read(forged) is None
    assert signer.read(body + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B")) is None
    assert signer.read("garbage") is None
    csrf = signer.csrf(cookie)
    assert signer.check_csrf(cookie, csrf)
    assert not signer.check_csrf(signer.issue(User("ann", "agent")), csrf)  # bound to its own session
    assert not signer.check_csrf(cookie, "")
    expired = SessionSigner(b"k" * 32, max_age_s=-1).issue(User("ann", "agent"))
    assert signer.read(expired) is None
    signer.revoke(cookie)
    assert signer.read(cookie) is None  # signed out, even if the cookie was copied
    other = signer.issue(User("ann", "agent"))
    assert signer.read(other) == User("ann", "agent")


def test_secret_is_random_private_and_kept(tmp_path: Path) -> None:
    first = load_secret("", tmp_path)
    assert len(first) == 32
    assert stat.S_IMODE((tmp_path / "web-secret").stat().st_mode) == 0o600
    assert load_secret("", tmp_path) == first
    assert load_secret("configured", tmp_path) == b"configured"


def test_audit_rows_newest_first() -> None:
    users = Users(CallStore("sqlite://"))
    users.audit("ann", "read_transcript", "call1", via="token")
    time.sleep(0.01)
    users.audit("ada", "delete_call", "call1")
    users.audit("ann", "read_transcript", "call2")
    rows = users.audit_rows(target="call1")
    assert [(r["user"], r["action"]) for r in rows] == [("ada", "delete_call"), ("ann", "read_transcript")]
    assert rows[1]["detail"] == {"via": "token"}


def test_users_command_adds_an_admin_and_issues_a_token(data_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-admin-password\n"))
    assert main(["users", "add", "alice", "--role", "admin", "--password-stdin"]) == 0
    assert "alice added (admin)" in capsys.readouterr().out
    assert main(["users", "token", "alice", "--label", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    store = CallStore(f"sqlite:///{data_home / 'calls.db'}")
    assert Users(store).token_user(token) == User("alice", "admin")
    assert Users(store).authenticate("alice", "a-long-admin-password") == User("alice", "admin")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "bob", "--password-stdin"]) == 2
    assert "at least" in capsys.readouterr().err
    assert main(["users", "token", "nobody"]) == 2
    assert main(["users", "list"]) == 0
    assert capsys.readouterr().out.split() == ["alice", "admin"]
