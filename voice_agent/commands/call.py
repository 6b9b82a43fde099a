"""`voice-agent call --caller FILE`: a whole simulated call from a caller recording."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from voice_agent.config import Config
from voice_agent.engine import Engine
from voice_agent.privacy import Privacy
from voice_agent.records import save_call
from voice_agent.simulate import FileSource, caller_frames, phone_line
from voice_agent.store import CallStore


def register(sub: argparse._SubParsersAction) -> None:
    """Add the call subcommand."""
    p = sub.add_parser("call", help="simulate a call from a caller recording")
    p.add_argument("--caller", type=Path, required=True, help="the caller's audio (any format and rate)")
    p.add_argument("--fast", action="store_true",
                   help="as fast as the models allow (latencies still include model time)")
    p.add_argument("--telephony", action="store_true", help="8 kHz with G.711 mu-law both ways, as a phone line")
    p.add_argument("--rate", type=int, help="transport sample rate (default 16000, 8000 with --telephony)")
    p.add_argument("--record", type=Path, help="write the stereo recording here (caller left, agent right)")
    p.add_argument("--report", type=Path, help="write the JSON report here (default: stdout)")
    p.add_argument("--no-store", action="store_true", help="do not save the call in the store")
    p.add_argument("--interrupt-at", type=float, metavar="SECONDS",
                   help="the caller's audio from here on waits until the agent has spoken 1 s of an answer, so "
                        "an interruption there lands mid-answer however fast the machine is (report: caller_cue_s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the simulated call and print or write its report."""
    rate = args.rate or (8000 if args.telephony else 16000)
    audio = caller_frames(args.caller, rate, telephony=args.telephony)
    engine = Engine.from_config(config)
    recording = args.record or (config.recordings_path / f"sim-{int(time.time())}.wav")
    report = asyncio.run(_call(engine, config, audio, rate, args, recording))
    text = json.dumps(report, indent=2)
    if args.report:
        args.report.write_text(text + "\n")
        s = report["summary"]
        print(f"call {report['call_id']}: {s['outcome']}, {s['turns']} turns, first audio p50 "
              f"{s['p50_first_audio_ms']} ms (p95 {s['p95_first_audio_ms']}), answer audio p50 "
              f"{s['p50_answer_audio_ms']} ms (p95 {s['p95_answer_audio_ms']}), event-loop lag p99 "
              f"{s['loop_lag_p99_ms']} ms", file=sys.stderr)
    else:
        print(text)
    return 0


async def _call(
    engine: Engine, config: Config, audio: np.ndarray, rate: int, args: argparse.Namespace, recording: Path
) -> dict[str, Any]:
    started = time.time()
    privacy = Privacy.from_config(config)
    # On a simulated phone line the agent's audio is companded like the caller's.
    session = engine.session(rate, recording_path=recording, outgoing=phone_line if args.telephony else None)
    def answering() -> bool:
        return bool(session.turns) and session.agent_speaking_s >= 1.0

    source = FileSource(audio, rate, fast=args.fast, busy=lambda: session.busy > 0, hold=session.holding_line,
                        wait_at=args.interrupt_at, ready=answering)

    async def sink(frame: np.ndarray) -> None:
        return None

    result = await session.run(source.frames(), sink)
    if not args.no_store:
        store = CallStore.from_config(config)
        save_call(store, result, "simulated", str(args.caller.resolve()), started_at=started, privacy=privacy)
        store.close()
    report = result.report()
    if args.interrupt_at is not None:
        report["caller_cue_s"] = source.cue_s  # line time at which the waiting caller audio went out
    return privacy.record(report) if privacy.transcripts else report
