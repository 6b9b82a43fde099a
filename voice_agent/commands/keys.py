"""`voice-agent keys generate|status|rotate`: the key that encrypts recordings and transcripts at rest."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from voice_agent.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    """Add the keys subcommand."""
    p = sub.add_parser("keys", help="encryption at rest: make a key, show what is encrypted, rotate keys")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION")
    keys.required = True
    gen = keys.add_parser("generate", help="write a new random key to a file (owner-only, never overwritten)")
    gen.add_argument("--output", type=Path, required=True, metavar="FILE")
    gen.set_defaults(func=run_generate)
    st = keys.add_parser("status", help="the configured key, the store's key and what is encrypted with which")
    st.set_defaults(func=run_status)
    rot = keys.add_parser("rotate", help="re-encrypt every recording, upload and transcript with a new key "
                                         "(resumable: run it again after an interruption)")
    rot.add_argument("--new-key-file", type=Path, required=True, metavar="FILE",
                     help="the new key (voice-agent keys generate); the configured key must open the data")
    rot.add_argument("--by", default="", help="who rotates, for the audit log (default: cli:<login name>)")
    rot.set_defaults(func=run_rotate)


def _actor(given: str) -> str:
    if given:
        return given
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def run_generate(args: argparse.Namespace, config: Config) -> int:
    """Make a key file and say how to use it."""
    from voice_agent.protection.keys import write_key_file

    key = write_key_file(args.output)
    print(f"key {key.id} written to {args.output} (owner-only). Keep a copy somewhere safe: without it nothing "
          f"encrypted can be read. Use it with: [protection] key_file = \"{args.output}\"", file=sys.stderr)
    return 0


def run_status(args: argparse.Namespace, config: Config) -> int:
    """Print the key status as JSON."""
    from voice_agent.protection.rotation import status

    print(json.dumps(status(config), indent=2))
    return 0


def run_rotate(args: argparse.Namespace, config: Config) -> int:
    """Re-encrypt everything with the new key; print the summary."""
    from voice_agent.protection.keys import read_key_file
    from voice_agent.protection.rotation import rotate

    new_key = read_key_file(args.new_key_file, "--new-key-file")
    summary = rotate(config, new_key, by=_actor(args.by), progress=lambda text: print(text, file=sys.stderr))
    print(json.dumps(summary, indent=2))
    print(f"done: the store is encrypted with key {new_key.id}. Set protection.key_file = \"{args.new_key_file}\" "
          "on every worker before starting it (a worker with the old key will refuse to start).", file=sys.stderr)
    return 0
