"""`voice-agent sentiment`: the caller-sentiment model on lines of text, one JSON object per line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from voice_agent.config import Config

if TYPE_CHECKING:
    from dialog.sentiment import SentimentAnalyzer


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sentiment subcommand."""
    p = sub.add_parser("sentiment", help="label text as negative, neutral or positive (JSON lines)",
                       description="Reads lines from stdin (or --text) and prints {text, label, score} per line.")
    p.add_argument("--text", action="append", help="text to analyse instead of stdin (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Print one JSON object per input line."""
    from dialog.errors import DialogError
    from dialog.sentiment import SentimentAnalyzer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        analyzer = SentimentAnalyzer(config.dialog.sentiment_head or None)
        texts = args.text if args.text else (line.rstrip("\n") for line in sys.stdin)
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if args.text or len(batch) >= 32 or sys.stdin.isatty():
                _flush(analyzer, batch)
        _flush(analyzer, batch)
    except DialogError as exc:
        print(f"voice-agent: {exc}", file=sys.stderr)
        return 2
    return 0


def _flush(analyzer: SentimentAnalyzer, batch: list[str]) -> None:
    if not batch:
        return
    for text, s in zip(batch, analyzer.analyze_many(batch), strict=True):
        print(json.dumps({"text": text, "label": s.label, "score": round(s.score, 4)}, ensure_ascii=False), flush=True)
    batch.clear()
