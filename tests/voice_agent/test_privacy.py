"""PII redaction where data leaves a call: outputs, the store and log lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from voice_agent.config import Config
from voice_agent.logs import _JsonFormatter, log_event
from voice_agent.privacy import Privacy, RedactingFilter, install_log_redaction
from voice_agent.records import save_call
from voice_agent.session import CallResult, TurnRecord
from voice_agent.store import CallStore

CARD = "4532 0151 1283 0366"  # passes the Luhn check


def test_text_segments_and_words() -> None:
    p = Privacy(["card", "email"])
    seg = {"start": 0.0, "end": 3.0, "text": f" my card is {CARD} ok",
           "words": [{"word": w, "start": i * 0.2, "end": i * 0.2 + 0.2}
                     for i, w in enumerate([" my", " card", " is", " 4532", " 0151", " 1283", " 0366", " ok"])]}
    out = p.segments([seg])[0]
    assert out["text"] == " my card is [CARD] ok"
    assert [w["word"] for w in out["words"]] == [" my", " card", " is", " [CARD]", " ok"]
    assert out["words"][3]["start"] == pytest.approx(0.6) and out["words"][3]["end"] == pytest.approx(1.4)
    assert seg["text"].endswith("0366 ok")  # the input is not changed
    assert p.text("write to jo@example.com") == "write to [EMAIL]"


def test_only_configured_kinds() -> None:
    p = Privacy(["email"])
    assert p.text(f"card {CARD}, mail jo@example.com") == f"card {CARD}, mail [EMAIL]"


def test_nested_records() -> None:
    p = Privacy(["card"])
    report = {"turns": [{"caller_text": f"it is {CARD}", "agent_text": "thanks", "voice_to_voice_ms": 700.0}],
              "events": [{"type": "caller_final", "text": CARD, "t": 1.0}],
              "summary": {"outcome": "resolved"}, "call_id": "4532015112830366"}
    out = p.record(report)
    assert out["turns"][0]["caller_text"] == "it is [CARD]"
    assert out["events"][0]["text"] == "[CARD]"
    assert out["call_id"] == report["call_id"]  # identifiers are not speech
    assert out["turns"][0]["voice_to_voice_ms"] == 700.0


def test_transcript_document() -> None:
    p = Privacy(["card"])
    data = {"text": f"card {CARD}", "segments": [{"text": f"card {CARD}"}, {"text": "fine"}], "summary": CARD}
    out = p.transcript(data)
    assert out["text"] == "card [CARD] fine" and out["summary"] == "[CARD]"


def _log_line(logger: logging.Logger, stream: io.StringIO) -> dict[str, object]:
    log_event(logger, f"caller said {CARD}", text=f"my card is {CARD}", nested={"raw": [CARD]}, n=3)
    return dict(json.loads(stream.getvalue().strip().splitlines()[-1]))


def test_log_lines_are_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JsonFormatter())
    handler.addFilter(RedactingFilter(Privacy(["card"]).redactor))
    logger = logging.getLogger("test.privacy")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        line = _log_line(logger, stream)
    finally:
        logger.removeHandler(handler)
    assert CARD not in json.dumps(line)
    assert line["event"] == "caller said [CARD]" and line["text"] == "my card is [CARD]"
    assert line["nested"] == {"raw": ["[CARD]"]} and line["n"] == 3


def test_install_follows_config() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        config = Config()
        config.dialog.redact_logs = False
        install_log_redaction(config)
        assert not handler.filters
        config.dialog.redact_logs = True
        install_log_redaction(config)
        install_log_redaction(config)  # idempotent
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)


def _result() -> CallResult:
    turn = TurnRecord(index=0, caller_text=f"my card number is {CARD}", agent_text="Please don't read it out.")
    return CallResult(
        call_id="c1", outcome="resolved", duration=10.0, turns=[turn],
        events=[{"t": 2.0, "type": "caller_final", "text": turn.caller_text}],
        transcript=[{"start": 1.0, "end": 3.0, "speaker": "caller", "text": turn.caller_text},
                    {"start": 3.5, "end": 5.0, "speaker": "agent", "text": turn.agent_text}],
        sentiment_timeline=[], recording=None,
    )


def test_store_gets_redacted_call_by_default() -> None:
    store = CallStore("sqlite://")
    save_call(store, _result(), "simulated", "test")
    dump = json.dumps([store.get_call("c1").text, store.segments("c1"), store.turns("c1"), store.events("c1")])
    assert CARD not in dump and "[CARD]" in dump


def test_store_redaction_can_be_switched_off() -> None:
    store = CallStore("sqlite://")
    save_call(store, _result(), "simulated", "test", privacy=Privacy(["card"], store=False))
    assert CARD in store.get_call("c1").text
