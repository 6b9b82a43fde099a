"""`voice-agent erase --phone NUMBER | --customer ID`: delete one person's calls with every copy; print a receipt."""

from __future__ import annotations

import argparse
import json

from voice_agent.commands.keys import _actor
from voice_agent.config import Config
from voice_agent.store import CallStore


def register(sub: argparse._SubParsersAction) -> None:
    """Add the erase subcommand."""
    p = sub.add_parser("erase", help="erase one caller's or customer's data (calls, transcripts, recordings, "
                                     "uploads, analytics) and print a receipt")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone", metavar="NUMBER", help="the caller's number as dialled, e.g. +44 7700 900123")
    who.add_argument("--customer", metavar="ID", help="the customer id calls were linked to")
    p.add_argument("--by", default="", help="who asks, for the receipt and the audit log (default: cli:<login>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Erase and print the receipt (JSON)."""
    from voice_agent.protection.erasure import erase_subject

    store = CallStore.from_config(config)
    try:
        receipt = erase_subject(store, phone=args.phone, customer=args.customer, by=_actor(args.by), via="cli")
    finally:
        store.close()
    print(json.dumps(receipt, indent=2, ensure_ascii=False))
    return 0
