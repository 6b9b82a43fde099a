"""`voice-agent models`: which models are on this machine."""

from __future__ import annotations

import argparse

from asr.models import available_models
from voice_agent.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    """Add the models subcommand."""
    p = sub.add_parser("models", help="list the speech models installed on this machine")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Print the model table."""
    print(f"{'NAME':18} {'INSTALLED':9}  DESCRIPTION")
    for name, description, installed in available_models():
        mark = "yes" if installed else "no"
        default = " (configured)" if name == config.asr.model else ""
        print(f"{name:18} {mark:9}  {description}{default}")
    print("\nAlso accepted: a CTranslate2 model directory, an openai-whisper .pt checkpoint, or a hub")
    print("name such as small.en with --allow-download (fetches from the internet).")
    return 0
