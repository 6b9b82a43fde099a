"""`voice-agent dial sip:user@host`: place one outbound call and run the agent on it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from telephony.sip.uri import SipUri
from voice_agent.config import Config
from voice_agent.phone import PhoneFrontend, engine_factory, parse_listen


def register(sub: argparse._SubParsersAction) -> None:
    """Add the dial subcommand."""
    p = sub.add_parser("dial", help="call a SIP URI and run the voice agent on the call")
    p.add_argument("target", help="who to call, e.g. sip:alice@127.0.0.1:5080")
    p.add_argument("--sip-listen", metavar="HOST:PORT",
                   help="our SIP address (default: the host of sip.listen, any free port)")
    p.add_argument("--report", type=Path, help="write the JSON report here (default: stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Dial, converse, print the report."""
    SipUri.parse(args.target)  # a bad URI is a clear one-line error before any model loads
    listen = args.sip_listen or f"{parse_listen(config.sip.listen)[0]}:0"
    from voice_agent.engine import Engine

    engine = Engine.from_config(config)
    report = asyncio.run(_dial(config, engine, listen, args.target))
    text = json.dumps(report, indent=2)
    if args.report:
        args.report.write_text(text + "\n")
        s = report["summary"]
        print(f"call {report['call_id']}: {s['outcome']}, {s['turns']} turns", file=sys.stderr)
    else:
        print(text)
    return 0


async def _dial(config: Config, engine: object, listen: str, target: str) -> dict[str, Any]:
    phone = PhoneFrontend(config, engine_factory(engine), listen=listen, voice=getattr(engine, "voice", None))
    await phone.start()
    try:
        result = await phone.dial(target)
    finally:
        await phone.stop(timeout=5.0)
    return result.report()
