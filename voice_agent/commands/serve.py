"""`voice-agent serve`: answer phone calls over SIP (UDP and TCP) until SIGINT/SIGTERM.

The server is a list of front ends, each with ``async start()`` / ``async stop()``; the SIP
front end is one of them, so others (the web front end) start and stop beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any, Protocol

from voice_agent.config import Config
from voice_agent.logs import log_event
from voice_agent.phone import PhoneFrontend, engine_factory, parse_listen, trunks_from_config

log = logging.getLogger("voice_agent.serve")


class Frontend(Protocol):
    """One startable, stoppable piece of the server."""

    async def start(self) -> None:
        """Begin accepting work."""
        ...

    async def stop(self) -> None:
        """Stop accepting, finish or end work in progress."""
        ...


def register(sub: argparse._SubParsersAction) -> None:
    """Add the serve subcommand."""
    p = sub.add_parser("serve", help="answer phone calls (SIP) with the voice agent")
    p.add_argument("--sip-listen", metavar="HOST:PORT",
                   help="SIP address, UDP and TCP (default: sip.listen, 127.0.0.1:5060)")
    p.add_argument("--max-calls", type=int, help="concurrent calls (default: sip.max_calls)")
    p.add_argument("--echo", action="store_true",
                   help="answer with an echo instead of the agent (no models; wiring checks and benchmarks)")
    p.add_argument("--http-listen", metavar="HOST:PORT",
                   help="web front end: browser calls, console and REST API (default: http.listen, 127.0.0.1:8080; "
                        "'off' disables it; with --echo it starts only when given)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Load the models once, then serve until a signal."""
    if args.max_calls is not None:
        config.sip.max_calls = args.max_calls
    asyncio.run(serve(config, args))
    return 0


def build_frontends(config: Config, args: argparse.Namespace) -> list[Any]:
    """The front ends this process runs (models loaded once and shared by every call)."""
    parse_listen(args.sip_listen or config.sip.listen)  # bad settings fail before minutes of model loading
    trunks_from_config(config.sip)
    http_listen = getattr(args, "http_listen", None)
    # An echo server is a wiring check: it opens the web port only when asked to.
    web_on = http_listen != "off" and (http_listen is not None or not args.echo)
    if web_on:
        from voice_agent.web.server import parse_listen as parse_http_listen

        parse_http_listen(http_listen or config.http.listen)
    from voice_agent.store import CallStore

    # A missing, wrong or retired protection key fails here with one line, not after minutes of model loading.
    CallStore.from_config(config).close()
    engine = None
    if not args.echo:
        from voice_agent.engine import Engine

        engine = Engine.from_config(config)
    web_frontend = None
    if web_on:
        from voice_agent.web.server import WebFrontend

        web_frontend = WebFrontend(config, engine, listen=http_listen)
    # Phone calls are listed in the web front end's live calls, so the console can take them over.
    phone = PhoneFrontend(config, engine_factory(engine) if engine is not None else None,
                          listen=args.sip_listen, voice=engine.voice if engine is not None else None,
                          echo=args.echo, live=web_frontend.live if web_frontend is not None else None,
                          load=engine.load if engine is not None else None)
    phone.engine = engine  # type: ignore[attr-defined]
    frontends: list[Any] = [phone] if web_frontend is None else [phone, web_frontend]
    if config.retention.enabled:  # recordings, transcripts and uploads past their time, deleted on a schedule
        from voice_agent.protection.retention import RetentionService

        frontends.append(RetentionService(config))
    return frontends


async def serve(config: Config, args: argparse.Namespace) -> None:
    """Start every front end, wait for SIGINT/SIGTERM, stop them gracefully."""
    frontends = build_frontends(config, args)
    for fe in frontends:
        engine = getattr(fe, "engine", None)
        if engine is not None:
            await engine.warm_up()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Any] = []
    try:
        for fe in frontends:
            await fe.start()
            started.append(fe)
        log_event(log, "serve_ready")
        await stop.wait()
        log_event(log, "serve_shutdown")
    finally:
        for fe in reversed(started):
            await fe.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
