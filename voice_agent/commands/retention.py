"""`voice-agent retention run`: apply the retention settings once now (``serve`` does it on a schedule)."""

from __future__ import annotations

import argparse
import json
import sys

from voice_agent.config import Config
from voice_agent.store import CallStore


def register(sub: argparse._SubParsersAction) -> None:
    """Add the retention subcommand."""
    p = sub.add_parser("retention", help="delete recordings, transcripts and uploads older than [retention] says")
    r = p.add_subparsers(dest="retention_command", metavar="ACTION")
    r.required = True
    run_p = r.add_parser("run", help="apply the retention settings once now")
    run_p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """One retention pass; prints how much went."""
    from voice_agent.protection.retention import apply_retention

    if not config.retention.enabled:
        print("retention: every period is 0 (keep everything); set retention.recordings_days, transcripts_days "
              "or uploads_days", file=sys.stderr)
        return 0
    store = CallStore.from_config(config)
    try:
        done = apply_retention(store, config)
    finally:
        store.close()
    print(json.dumps(done))
    return 0
