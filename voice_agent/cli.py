"""The `voice-agent` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from voice_agent import __version__
from voice_agent.config import Config, ConfigError, load_config, parse_overrides
from voice_agent.logs import setup_logging

# Each entry is a module in voice_agent.commands with register(subparsers).
COMMANDS = [
    "transcribe",
    "calls",
    "models",
    "chat",
    "sentiment",
    "call",
    "talk",
    "users",
    "serve",
    "dial",
    "cluster",
    "keys",
    "erase",
    "retention",
    "customers",
]


class UserError(Exception):
    """An error caused by input or environment, printed as one clear line (exit 2)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Every package's base error: shown as one line, never a traceback."""
    found: list[type[BaseException]] = [UserError, ConfigError]
    for module, name in (("asr.errors", "AsrError"), ("dialog.errors", "DialogError"),
                         ("tts.errors", "TtsError"), ("telephony.errors", "TelephonyError"),
                         ("voice_agent.store", "StoreError"), ("voice_agent.protection.cipher", "SealError"),
                         ("voice_agent.protection.erasure", "ErasureError"),
                         ("voice_agent.customers.directory", "DirectoryError")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="voice-agent", description="Voice call-center assistant (offline by default)."
    )
    parser.add_argument("--version", action="version", version=f"voice-agent {__version__}")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one configuration value (repeatable)",
    )
    parser.add_argument("--store-url", default=None, metavar="URL",
                        help="call store: sqlite:///path/calls.db or postgresql://user@host:port/db "
                             "(env VOICE_AGENT_STORE_URL)")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--log-format", default=None, choices=["json", "text"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"voice_agent.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config: Config = load_config(args.config, parse_overrides(args.set))
    except ConfigError as exc:
        print(f"voice-agent: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.store_url:
        config.store.url = args.store_url
    if args.log_level:
        config.log.level = args.log_level
    if args.log_format:
        config.log.format = args.log_format
    setup_logging(config.log.level, config.log.format)
    try:
        from voice_agent.privacy import install_log_redaction

        install_log_redaction(config)
        return int(args.func(args, config) or 0)
    except user_errors() as exc:
        print(f"voice-agent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("voice-agent: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, details at debug level
        logging.getLogger("voice_agent").debug("unhandled error", exc_info=True)
        print(f"voice-agent: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
