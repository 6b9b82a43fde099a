"""`voice-agent cluster up --workers N`: kamailio, PostgreSQL and N serve workers on this machine."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from voice_agent.cluster import Cluster, ClusterError, describe_json
from voice_agent.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    """Add the cluster subcommand."""
    p = sub.add_parser("cluster", help="try several workers behind kamailio on one machine")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    up = actions.add_parser("up", help="start kamailio, PostgreSQL and N serve workers; Ctrl-C stops them all")
    up.add_argument("--workers", type=int, default=2, help="serve workers (default 2)")
    up.add_argument("--sip-port", type=int, default=5060,
                    help="kamailio's UDP port on 127.0.0.1 (default 5060; workers get the next ports)")
    up.add_argument("--http-port", type=int, default=8081,
                    help="first worker's web port on 127.0.0.1 (default 8081; the next workers count up)")
    up.add_argument("--echo", action="store_true", help="echo workers (no models; wiring checks)")
    up.add_argument("--workdir", type=Path, help="where logs and data go (default: a new temp dir)")
    up.add_argument("--quiet", action="store_true", help="do not print the processes' logs")
    up.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Start the cluster, print its addresses, wait for Ctrl-C or SIGTERM, stop everything."""
    if args.workers < 1:
        print("voice-agent: cluster up: --workers must be at least 1", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="voice-agent-cluster-"))
    # An explicitly configured store (e.g. an existing PostgreSQL) is used instead of a temp one.
    store_url = config.store.url if config.store.url.startswith("postgresql") else ""
    cache = config.cache_path
    cache.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(args.workers, workdir, echo=args.echo, store_url=store_url, sip_port=args.sip_port,
                      http_port=args.http_port, cache_dir=cache)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    echo = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        print(f"voice-agent: starting PostgreSQL, {args.workers} workers and kamailio in {workdir} ...",
              file=sys.stderr, flush=True)
        try:
            cluster.start(echo)
        except ClusterError as exc:
            print(f"voice-agent: cluster: {exc}", file=sys.stderr)
            return 1
        print(describe_json(cluster), flush=True)
        print(f"voice-agent: cluster up: call sip:agent@127.0.0.1:{cluster.kamailio.port}; consoles at "
              + ", ".join(f"{w.url}/console" for w in cluster.workers) + "; Ctrl-C stops everything",
              file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            dead = [w.name for w in cluster.workers if w.proc is not None and w.proc.poll() is not None]
            if cluster.kamailio.proc is not None and cluster.kamailio.proc.poll() is not None:
                print("voice-agent: kamailio stopped; stopping the cluster", file=sys.stderr)
                return 1
            if dead and len(dead) == len(cluster.workers):
                print("voice-agent: every worker stopped; stopping the cluster", file=sys.stderr)
                return 1
        return 0
    finally:
        print("voice-agent: stopping the cluster ...", file=sys.stderr, flush=True)
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
