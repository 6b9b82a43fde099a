"""`voice-agent calls list|show`: read calls and transcripts back from the store."""

from __future__ import annotations

import argparse
import sys
import time

from asr.formats import FORMATS, render
from voice_agent.config import Config
from voice_agent.store import CallStore


def register(sub: argparse._SubParsersAction) -> None:
    """Add the calls subcommand."""
    p = sub.add_parser("calls", help="list calls and show their transcripts")
    calls_sub = p.add_subparsers(dest="calls_command", metavar="ACTION")
    calls_sub.required = True
    lp = calls_sub.add_parser("list", help="most recent calls first")
    lp.add_argument("--limit", type=int, default=50)
    lp.add_argument("--kind", help="transcription, sip, webrtc, simulated...")
    lp.set_defaults(func=list_calls)
    sp = calls_sub.add_parser("show", help="one call's transcript")
    sp.add_argument("call_id", metavar="ID", help="call id (a unique prefix is enough)")
    sp.add_argument("--format", default="txt", choices=FORMATS)
    sp.set_defaults(func=show_call)
    dp = calls_sub.add_parser("delete", help="delete a call and every copy: transcript, turns, events, recording, "
                                             "uploaded audio, job results")
    dp.add_argument("call_id", metavar="ID", help="call id (a unique prefix is enough)")
    dp.set_defaults(func=delete_call)


def list_calls(args: argparse.Namespace, config: Config) -> int:
    """Print a table of calls."""
    store = CallStore.from_config(config)
    try:
        rows = store.list_calls(limit=args.limit, kind=args.kind)
    finally:
        store.close()
    if not rows:
        print("no calls yet", file=sys.stderr)
        return 0
    print(f"{'ID':16}  {'STARTED':19}  {'KIND':13}  {'DURATION':>8}  {'OUTCOME':11}  SOURCE")
    for r in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at))
        dur = f"{r.duration:.1f}s" if r.duration is not None else "-"
        print(f"{r.id:16}  {started}  {r.kind:13}  {dur:>8}  {r.outcome or '-':11}  {r.source}")
    return 0


def show_call(args: argparse.Namespace, config: Config) -> int:
    """Print one call's transcript in the chosen format."""
    store = CallStore.from_config(config)
    try:
        call = store.get_call(args.call_id)
        segments = store.segments(call.id)
    finally:
        store.close()
    data = {
        "call_id": call.id,
        "file": call.source,
        "duration": call.duration,
        "language": call.language,
        "model": call.model,
        "channels": call.meta.get("channels", 1),
        "text": call.text,
        "outcome": call.outcome,
        **{k: v for k, v in call.meta.items() if k not in ("channels",)},
        "segments": segments,
    }
    sys.stdout.write(render(data, args.format))
    return 0


def delete_call(args: argparse.Namespace, config: Config) -> int:
    """Delete one call with all its copies."""
    store = CallStore.from_config(config)
    try:
        call = store.get_call(args.call_id)
        store.delete_call(call.id)
    finally:
        store.close()
    print(f"call {call.id} deleted")
    return 0
