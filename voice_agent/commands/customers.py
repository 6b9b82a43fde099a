"""`voice-agent customers`: sign a widget reference, check the directory, look a customer up (for operators)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sized

from voice_agent.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    """Add the customers subcommand."""
    p = sub.add_parser("customers", help="the customer directory: sign widget references, check, look up")
    actions = p.add_subparsers(dest="action", required=True)
    sign = actions.add_parser("sign", help="print the signed reference of a customer id (customers.reference_secret), "
                                           "for a site's widget: data-customer-ref=\"...\"")
    sign.add_argument("customer_id")
    actions.add_parser("check", help="open customers.directory and say what it holds (or what is wrong)")
    look = actions.add_parser("lookup", help="print one customer's record as the console shows it")
    who = look.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone", metavar="NUMBER")
    who.add_argument("--id", metavar="ID")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Do the action; DirectoryError and ConfigError are one line (exit 2)."""
    from voice_agent.config import ConfigError
    from voice_agent.customers import open_directory, sign_reference

    s = config.customers
    if args.action == "sign":
        if not s.reference_secret:
            raise ConfigError("customers.reference_secret is not set (VOICE_AGENT_CUSTOMERS__REFERENCE_SECRET)")
        print(sign_reference(s.reference_secret, args.customer_id))
        return 0
    if not s.directory:
        raise ConfigError("customers.directory is not set (a CSV or SQLite file, or the CRM's http(s) URL)")
    directory = open_directory(s.directory, timeout_s=s.timeout_s, api_key=s.api_key, country_code=s.country_code)
    if args.action == "check":
        size = len(directory) if isinstance(directory, Sized) else None  # a CRM does not say
        print(json.dumps({"directory": type(directory).__name__, "customers": size}))
        return 0
    found = directory.lookup_by_phone(args.phone) if args.phone else directory.lookup_by_id(args.id)
    if found is None:
        print("no such customer")
        return 1
    print(json.dumps(found.card(), indent=2, ensure_ascii=False))
    return 0
