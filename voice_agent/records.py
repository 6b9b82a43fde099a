"""Saving a finished live call in the store."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from dialog.options import PII_KINDS
from voice_agent.analytics import analyze_call
from voice_agent.privacy import Privacy
from voice_agent.session import CallResult
from voice_agent.store import CallStore

log = logging.getLogger("voice_agent.records")
_CHANNEL = {"caller": 0, "agent": 1}
_KEPT = ("human", "interrupted")


def save_call(store: CallStore, result: CallResult, kind: str, source: str, started_at: float | None = None,
              privacy: Privacy | None = None, media: dict[str, float] | None = None) -> str:
    """Store the call, both sides of its transcript, turns, events and where its recording is, and its analytics.

    PII is redacted before anything is written unless `privacy` says otherwise (default: every kind).
    `media` holds the transport's counters (RTP packets, loss, jitter) for phone calls.
    """
    privacy = privacy or Privacy(PII_KINDS)
    scrub = privacy.record if privacy.store else (lambda value: value)
    report = result.report()
    segments: list[dict[str, Any]] = [
        {"start": seg["start"], "end": seg["end"], "speaker": seg["speaker"],
         "channel": _CHANNEL.get(seg["speaker"], 0), "text": seg["text"],
         # who spoke for the agent side after a takeover, and a segment cut short by an interruption
         **{k: seg[k] for k in _KEPT if k in seg}}
        for seg in sorted(result.transcript, key=lambda s: s["start"])
    ]
    segments = scrub(segments)
    text = " ".join(s["text"] for s in segments)
    start = started_at if started_at is not None else time.time() - result.duration
    store.add_call(
        kind, source, call_id=result.call_id, started_at=start, ended_at=start + result.duration,
        duration=result.duration, outcome=result.outcome, text=text,
        meta=scrub({"channels": 2, "recording": result.recording, "summary": report["summary"],
                    "sentiment_timeline": result.sentiment_timeline, "transfer": result.transfer,
                    **({"media": media} if media else {})}),
        segments=segments,
    )
    store.add_turns(result.call_id, scrub([asdict(t) for t in result.turns]))
    store.add_events(result.call_id, scrub(result.events))
    try:  # the numbers of the call for the dashboard; a failure here must not lose the call itself
        analyze_call(store, result.call_id)
    except Exception as exc:  # computed again on the next read of /api/analytics
        log.warning("analytics for call %s failed: %s: %s", result.call_id, type(exc).__name__, exc)
    return result.call_id


def save_turn(store: CallStore, call_id: str, turn: dict[str, Any], privacy: Privacy | None = None) -> None:
    """Store one finished turn of a live call as it finishes (a killed worker loses no finished turn).

    Blocking: run it in a thread. PII is redacted as in ``save_call``.
    """
    privacy = privacy or Privacy(PII_KINDS)
    store.add_turn(call_id, privacy.record(turn) if privacy.store else turn)
