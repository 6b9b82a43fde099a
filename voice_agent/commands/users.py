"""`voice-agent users`: console users and API tokens (the first admin is made here, never by default)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from voice_agent.auth import ROLES, Users
from voice_agent.config import Config
from voice_agent.store import CallStore


def register(sub: argparse._SubParsersAction) -> None:
    """Add the users subcommand."""
    p = sub.add_parser("users", help="console users and API tokens")
    users = p.add_subparsers(dest="users_command", metavar="ACTION")
    users.required = True
    add = users.add_parser("add", help="add a user (password prompted, or read from stdin with --password-stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(func=run_add)
    pw = users.add_parser("passwd", help="set a user's password (their sessions end, their tokens are revoked)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=run_passwd)
    token = users.add_parser("token", help="issue an API token (shown once)")
    token.add_argument("name")
    token.add_argument("--label", default="", help="what the token is for")
    token.add_argument("--days", type=float, default=None,
                       help="how long the token works (default: http.token_days, 90)")
    token.set_defaults(func=run_token)
    revoke = users.add_parser("revoke", help="revoke every API token of a user")
    revoke.add_argument("name")
    revoke.set_defaults(func=run_revoke)
    for action, text in (("disable", "stop a user signing in: their sessions end, their tokens are revoked"),
                         ("enable", "let a disabled user sign in again"),
                         ("delete", "delete a user and their tokens (the audit log keeps the name)")):
        cmd = users.add_parser(action, help=text)
        cmd.add_argument("name")
        cmd.set_defaults(func=run_state, action=action)
    ls = users.add_parser("list", help="list users")
    ls.set_defaults(func=run_list)


@contextmanager
def _users(config: Config) -> Iterator[Users]:
    store = CallStore.from_config(config)
    try:
        yield Users(store, token_days=config.http.token_days)
    finally:
        store.close()


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        from voice_agent.cli import UserError

        raise UserError("the passwords differ")
    return first


def run_add(args: argparse.Namespace, config: Config) -> int:
    """Create a user."""
    password = _password(args)
    with _users(config) as users:
        user = users.add(args.name, args.role, password)
    print(f"user {user.name} added ({user.role})")
    return 0


def run_passwd(args: argparse.Namespace, config: Config) -> int:
    """Replace a password."""
    password = _password(args)
    with _users(config) as users:
        users.set_password(args.name, password)
    print(f"password of {args.name} changed; their sessions and API tokens no longer work")
    return 0


def run_token(args: argparse.Namespace, config: Config) -> int:
    """Issue an API token and print it."""
    with _users(config) as users:
        token = users.issue_token(args.name, args.label, args.days)
    print(token)
    print("keep it secret: only its hash is stored (send it as `Authorization: Bearer TOKEN`)", file=sys.stderr)
    return 0


def run_revoke(args: argparse.Namespace, config: Config) -> int:
    """Revoke tokens."""
    with _users(config) as users:
        n = users.revoke_tokens(args.name)
    print(f"{n} token(s) revoked")
    return 0


def run_state(args: argparse.Namespace, config: Config) -> int:
    """Disable, enable or delete a user."""
    with _users(config) as users:
        getattr(users, args.action)(args.name)
    print(f"user {args.name} {args.action}d")
    return 0


def run_list(args: argparse.Namespace, config: Config) -> int:
    """Print users."""
    with _users(config) as users:
        rows = users.all()
    for r in rows:
        state = "\tdisabled" if r["disabled"] else ""
        print(f"{r['name']}\t{r['role']}{state}")
    return 0
