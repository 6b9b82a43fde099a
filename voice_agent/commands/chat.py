"""`voice-agent chat`: a text conversation with the dialog brain on stdin/stdout."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from typing import Any

from voice_agent.config import Config


def dialog_options(config: Config, **overrides: Any) -> Any:
    """DialogOptions from the dialog section of the configuration (plus command-line overrides)."""
    from dialog.options import DialogOptions

    values = dataclasses.asdict(config.dialog)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DialogOptions.from_mapping(values)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the chat subcommand."""
    p = sub.add_parser("chat", help="talk to the dialog brain in text (one caller turn per line)",
                       description="Each stdin line is a caller turn; `/dtmf 1` presses a key. Shows sentiment, "
                                   "mood and policy decisions. Ends on goodbye, escalation or end of input.")
    p.add_argument("--json", action="store_true", help="one JSON object per line (greeting, turns, end)")
    p.add_argument("--kb", help="knowledge-base folder (default: dialog.kb_dir, else examples/kb)")
    p.add_argument("--backend", choices=["local", "openai"], help="generation backend (default: dialog.backend)")
    p.add_argument("--no-llm", action="store_true", help="answer from the knowledge base only (no generation)")
    p.add_argument("--keep-going", action="store_true", help="do not stop at escalation or goodbye")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the conversation; exit 2 with one line when a model or the KB is missing."""
    from dialog.errors import DialogError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return asyncio.run(_chat(args, config))
    except DialogError as exc:
        print(f"voice-agent: {exc}", file=sys.stderr)
        return 2


def _emit(args: argparse.Namespace, obj: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(obj, ensure_ascii=False), flush=True)


async def _chat(args: argparse.Namespace, config: Config) -> int:
    from dialog import Brain

    options = dialog_options(config, kb_dir=args.kb, backend=args.backend)
    from voice_agent.actions import HttpActionPort

    brain = Brain(options, config.cache_path, use_llm=not args.no_llm, actions=HttpActionPort())
    await brain.aload()
    call = brain.open_call()
    interactive = sys.stdin.isatty() and not args.json
    greeting = call.greeting()
    if args.json:
        _emit(args, {"type": "greeting", "reply": greeting, "kb": brain.kb.describe(),
                     "backend": brain.generator.name if brain.generator else "none"})
    else:
        print(f"agent: {greeting}", flush=True)
    turn = 0
    try:
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            dtmf = None
            if text.startswith("/dtmf"):
                dtmf = text[5:].strip()[:1] or None
                text = ""
            turn += 1
            reply = await call.respond(text, dtmf=dtmf)
            if not args.json:
                print("agent: ", end="", flush=True)
            async for chunk in reply.stream():
                if not args.json:
                    print(chunk, end="", flush=True)
            d = await reply.outcome()
            if args.json:
                _emit(args, {"type": "turn", "turn": turn, "caller": d.extra.get("caller", ""),
                             "reply": d.extra.get("text", ""), "intent": d.intent, "action": d.action,
                             "sentiment": d.sentiment, "score": round(d.sentiment_score, 4), "mood": round(d.mood, 4),
                             "escalate": d.escalate, "reason": d.reason, "summary": d.summary, "hangup": d.hangup,
                             "topic": d.topic, "sources": d.extra.get("sources", []),
                             "redactions": d.extra.get("redactions", {}),
                             "first_chunk_ms": d.extra.get("first_chunk_ms"),
                             "grounding": d.extra.get("grounding")})
            else:
                flags = f"sentiment {d.sentiment} {d.sentiment_score:.2f} | mood {d.mood:+.2f} | intent {d.intent}"
                flags += f" | {d.action}"
                if d.topic:
                    flags += f" ({d.topic})"
                print(f"\n  [{flags}]", flush=True)
                if d.escalate:
                    print(f"  [ESCALATE: {d.reason}]\n  [summary for the agent: {d.summary}]", flush=True)
            if (d.escalate or d.hangup) and not args.keep_going:
                break
    finally:
        await brain.aclose()
    _emit(args, {"type": "end", "summary": call.summary(), "state": call.state()})
    return 0
