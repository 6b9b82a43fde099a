"""Call analytics: per-call numbers, their storage on SQLite and PostgreSQL, grouping of KB gaps, summaries."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import pytest

from voice_agent.analytics import (
    ANALYTICS_VERSION,
    analyze_call,
    backfill,
    calls_csv,
    compute_call,
    gaps_csv,
    group_gaps,
    normalise_question,
    redact_all,
    summarize,
    talk_times,
    transfer_category,
)
from voice_agent.records import save_call
from voice_agent.session import CallResult, TurnRecord
from voice_agent.store import CallStore

CARD = "4532 0151 1283 0366"  # passes the Luhn check
DAY = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC


def _turn(index: int, caller: str, agent: str, *, action: str = "answer", sentiment: str = "neutral",
          source: str = "", intent: str = "question", end: float = 0.0, v2v: float | None = 800.0,
          **extra: Any) -> dict[str, Any]:
    return {"index": index, "caller_text": caller, "agent_text": agent, "action": action, "sentiment": sentiment,
            "sentiment_score": 0.8, "intent": intent, "end_of_speech": end, "voice_to_voice_ms": v2v,
            "sources": [{"id": source, "score": 0.9}] if source else [], **extra}


def test_talk_silence_and_overlap_per_side() -> None:
    segments = [{"speaker": "agent", "start": 0.0, "end": 2.0}, {"speaker": "caller", "start": 3.0, "end": 6.0},
                {"speaker": "agent", "start": 5.0, "end": 8.0},  # the caller talks over the agent for 1 s
                {"speaker": "caller", "start": 5.5, "end": 6.5}]
    times = talk_times(segments, 10.0)
    assert times == {"caller_talk_s": 3.5, "agent_talk_s": 5.0, "silence_s": 3.0, "overlap_s": 1.5}


def test_a_contained_call() -> None:
    turns = [_turn(0, "when are you open", "Monday to Friday.", source="hours-weekday", end=4.0),
             _turn(1, "and how do I pay my bill", "By direct debit.", source="bill-payment-methods", end=9.0,
                   v2v=1200.0),
             _turn(2, "thanks bye", "Thank you for calling. Goodbye.", action="goodbye", intent="goodbye", end=12.0,
                   v2v=None)]
    events = [{"t": 0.0, "type": "greeting"}, {"t": 7.0, "type": "barge_in"}]
    segments = [{"speaker": "agent", "start": 0.2, "end": 2.0}, {"speaker": "caller", "start": 2.5, "end": 4.0}]
    a = compute_call({"kind": "webrtc", "started_at": DAY, "duration": 14.0, "outcome": "resolved", "meta": {}},
                     segments, turns, events, redact_all)
    row = a.row
    assert row["outcome"] == "contained" and row["transfer_reason"] == ""
    assert row["handle_s"] == 14.0 and row["turns"] == 3 and row["barge_ins"] == 1
    assert row["data"]["topics"] == {"hours-weekday": 1, "bill-payment-methods": 1}
    assert row["data"]["qa"] == {"greeted": True, "empathy_on_upset": None, "no_guard_rejections": True,
                                 "transfer_offered_when_asked": None}
    assert (row["qa_passed"], row["qa_checked"]) == (2, 2)
    assert row["data"]["latency_p50_ms"] == 1000.0
    assert a.gaps == []
    assert row["version"] == ANALYTICS_VERSION


def test_a_transferred_call_with_gaps_upset_turns_and_guard_rejections() -> None:
    turns = [_turn(0, f"my card is {CARD} do you sell gift cards", "I'm sorry, I don't have information about "
                   "that. Would you like me to connect you with a colleague?", action="not_found", end=5.0),
             _turn(1, "this is useless", "Of course.", action="answer", sentiment="negative", source="x", end=9.0,
                   guard_rejections=2),
             _turn(2, "do you sell vouchers", "I'm sorry, I can't answer that myself.", action="escalate",
                   escalate=True, end=14.0)]
    meta = {"transfer": {"reason": "the knowledge base could not answer 2 questions in a row"},
            "sentiment_timeline": [{"turn": 0, "mood": 0.1}, {"turn": 1, "mood": -0.5}, {"turn": 2, "mood": -0.3}]}
    a = compute_call({"kind": "phone", "started_at": DAY, "duration": 20.0, "outcome": "transferred", "meta": meta},
                     [], turns, [{"t": 14.0, "type": "transfer"}], redact_all)
    row = a.row
    assert row["outcome"] == "transferred"
    assert row["transfer_reason"] == "knowledge base could not answer"
    assert row["data"]["qa"]["empathy_on_upset"] is False  # "Of course." to an upset caller
    assert row["data"]["qa"]["no_guard_rejections"] is False
    assert row["data"]["qa"]["greeted"] is False
    assert [p["value"] for p in row["data"]["trajectory"]] == [0.1, -0.5, -0.3]
    assert (row["sentiment_start"], row["sentiment_end"]) == (0.1, -0.3)
    assert [g["turn"] for g in a.gaps] == [0, 2]  # the not-found turn and the one that escalated for the KB
    assert CARD not in json.dumps(a.gaps) and "[CARD]" in a.gaps[0]["question"]
    assert a.gaps[0]["at"] == DAY + 5.0


def test_transfer_offered_when_asked_and_abandoned_calls() -> None:
    asked = [_turn(0, "can I speak to a person", "Let me check.", action="smalltalk", intent="human")]
    a = compute_call({"kind": "webrtc", "started_at": DAY, "duration": 5.0, "outcome": "resolved", "meta": {}},
                     [], asked, [], redact_all)
    assert a.row["data"]["qa"]["transfer_offered_when_asked"] is False
    b = compute_call({"kind": "webrtc", "started_at": DAY, "duration": 5.0, "outcome": "transferred",
                      "meta": {"transfer": {"reason": "the caller asked for a human"}}}, [], asked, [], redact_all)
    assert b.row["data"]["qa"]["transfer_offered_when_asked"] is True
    assert b.row["transfer_reason"] == "caller asked for a person"
    c = compute_call({"kind": "webrtc", "started_at": DAY, "duration": 3.0, "outcome": "abandoned", "meta": {}},
                     [], [], [], redact_all)
    assert c.row["outcome"] == "abandoned" and c.row["sentiment_mean"] is None


def test_clarifying_questions_that_led_nowhere_are_gaps() -> None:
    turns = [_turn(0, "can I park at the shop", "Just to check, do you mean when are the shops open?",
                   action="clarify", end=4.0),
             _turn(1, "no", "I'm sorry, I don't have information about that.", action="not_found", end=8.0),
             _turn(2, "how much is the router", "Just to check, do you mean the router fee?", action="clarify",
                   end=12.0),
             _turn(3, "yes", "The router is free.", action="answer", source="router-fee", end=15.0),
             _turn(4, "do you sell phones", "Just to check, do you mean phone support hours?", action="clarify",
                   end=20.0)]
    a = compute_call({"kind": "webrtc", "started_at": DAY, "duration": 30.0, "outcome": "resolved", "meta": {}},
                     [], turns, [], redact_all)
    # the declined guess names the question asked before it; a confirmed guess is no gap; an unconfirmed one is
    assert [(g["turn"], g["question"]) for g in a.gaps] == [(1, "can I park at the shop"), (4, "do you sell phones")]


@pytest.mark.parametrize(("reason", "category"), [
    ("the caller has been upset for 3 turns", "caller upset"), ("requested by ann", "transferred from the console"),
    ("the caller asked for a human", "caller asked for a person"), ("something new", "other"), ("", "")])
def test_transfer_categories(reason: str, category: str) -> None:
    assert transfer_category(reason) == category


def test_normalised_questions_ignore_filler_and_order() -> None:
    assert normalise_question("Um, do you sell gift cards?") == "card gift sell"
    assert normalise_question("Gift cards: do you sell them?") == "card gift sell"
    assert normalise_question("My card is [CARD]") == "card"


def _gap(call: str, turn: int, at: float, question: str) -> dict[str, Any]:
    return {"call_id": call, "turn": turn, "at": at, "question": question, "norm": normalise_question(question)}


def test_gaps_group_by_words_without_an_embedder() -> None:
    gaps = [_gap("a", 0, DAY + 1, "Do you sell gift cards?"), _gap("b", 0, DAY + 5, "do you sell gift cards"),
            _gap("c", 1, DAY + 3, "Do you have a gift card?"), _gap("c", 2, DAY + 4, "Can I bring my dog to the shop?")]
    groups = group_gaps(gaps)
    assert [g["count"] for g in groups] == [3, 1]
    first = groups[0]
    assert first["calls"] == 3 and first["last_seen"] == DAY + 5 and first["first_seen"] == DAY + 1
    assert first["examples"][0] == "do you sell gift cards"  # newest first, each wording once
    assert len(first["examples"]) == 3


def test_gaps_group_by_meaning_with_minilm() -> None:
    from dialog.embeddings import shared_embedder

    embedder = shared_embedder()
    gaps = [_gap("a", 0, DAY + 1, "Do you sell gift cards?"), _gap("b", 0, DAY + 2, "Can I buy a gift voucher?"),
            _gap("c", 0, DAY + 3, "Is there parking at your shop?"),
            _gap("d", 0, DAY + 4, "Where can I park my car near the store?"),
            _gap("e", 0, DAY + 5, "Is there a branch in Paris?"), _gap("f", 0, DAY + 6, "You have an office in Paris."),
            _gap("g", 0, DAY + 7, "Can I bring my dog to the shop?")]
    with_meaning = group_gaps(gaps, embedder.encode)
    assert sorted(g["count"] for g in with_meaning) == [1, 2, 2, 2], [g["examples"] for g in with_meaning]
    assert len(group_gaps(gaps)) == 7  # the words alone keep them apart


def _rows() -> list[dict[str, Any]]:
    base = {"kind": "webrtc", "turns": 2, "caller_talk_s": 3.0, "agent_talk_s": 4.0, "silence_s": 1.0,
            "overlap_s": 0.0, "barge_ins": 0, "qa_passed": 2, "qa_checked": 2, "transfer_reason": "",
            "version": ANALYTICS_VERSION}
    return [
        {**base, "call_id": "a", "started_at": DAY, "outcome": "contained", "handle_s": 60.0, "sentiment_start": 0.0,
         "sentiment_end": 0.4, "sentiment_mean": 0.2, "data": {"topics": {"hours": 1}, "qa": {"greeted": True}}},
        {**base, "call_id": "b", "started_at": DAY + 1800, "outcome": "transferred", "handle_s": 120.0,
         "transfer_reason": "caller upset", "sentiment_start": -0.2, "sentiment_end": -0.6, "sentiment_mean": -0.4,
         "barge_ins": 2, "data": {"topics": {"hours": 1, "bills": 3}, "qa": {"greeted": False,
                                                                               "empathy_on_upset": True}}},
        {**base, "call_id": "c", "started_at": DAY + 86400 + 3600, "outcome": "contained", "handle_s": 30.0,
         "sentiment_start": None, "sentiment_end": None, "sentiment_mean": None, "data": {}},
    ]


def test_summary_counts_per_hour_and_day_in_the_viewers_time_zone() -> None:
    s = summarize(_rows(), [500.0, 700.0, 900.0, 1100.0, 3000.0])
    assert s["calls"] == 3 and s["outcomes"]["contained"] == 2 and s["containment_rate"] == round(2 / 3, 3)
    assert s["avg_handle_s"] == 70.0
    assert [h["calls"] for h in s["per_hour"] if h["calls"]] == [2, 1]
    assert s["per_hour"][20]["calls"] == 2 and s["per_hour"][21]["calls"] == 1
    assert [(d["day"], d["calls"], d["transferred"]) for d in s["per_day"]] == [("2026-05-28", 2, 1),
                                                                               ("2026-05-29", 1, 0)]
    assert s["transfer_reasons"] == [{"reason": "caller upset", "count": 1}]
    assert s["latency_ms"]["p50"] == 900.0 and s["latency_ms"]["turns"] == 5
    assert s["sentiment"] == {"start": -0.1, "end": -0.1, "mean": -0.1}
    assert s["qa"]["greeted"] == {"passed": 1, "checked": 2}
    assert s["topics"][:2] == [{"id": "bills", "count": 3}, {"id": "hours", "count": 2}]
    assert s["barge_ins"] == 2
    east = summarize(_rows(), [], offset_min=240)  # UTC+4: 20:26 and 20:56 UTC are past midnight
    assert [(d["day"], d["calls"]) for d in east["per_day"]] == [("2026-05-29", 2), ("2026-05-30", 1)]
    assert east["per_hour"][0]["calls"] == 2


def test_csv_exports_are_spreadsheet_safe() -> None:
    rows = _rows()
    rows[0]["transfer_reason"] = "=HYPERLINK(\"x\")"
    lines = list(csv.DictReader(io.StringIO(calls_csv(rows))))
    assert [r["call_id"] for r in lines] == ["a", "b", "c"]
    assert lines[0]["started_at"] == "2026-05-28T20:26:40+00:00"
    assert lines[0]["transfer_reason"].startswith("'=")
    assert lines[1]["topics"] == "bills hours"
    groups = group_gaps([_gap("a", 0, DAY, "-1 do you sell gift cards")])
    assert list(csv.reader(io.StringIO(gaps_csv(groups))))[1][0].startswith("'-1")


def _result(call_id: str, outcome: str = "resolved") -> CallResult:
    turns = [TurnRecord(index=0, caller_text="when are you open", agent_text="Monday to Friday.", sentiment="neutral",
                        end_of_speech=3.0, voice_to_voice_ms=900.0, action="answer",
                        sources=[{"id": "hours", "score": 0.9}]),
             TurnRecord(index=1, caller_text=f"do you sell gift cards, my card is {CARD}",
                        agent_text="I'm sorry, I don't have information about that.", sentiment="neutral",
                        end_of_speech=8.0, voice_to_voice_ms=700.0, action="not_found")]
    return CallResult(call_id=call_id, outcome=outcome, duration=12.0, turns=turns,
                      events=[{"t": 0.0, "type": "greeting", "text": "Hello."}],
                      transcript=[{"start": 0.0, "end": 1.0, "speaker": "agent", "text": "Hello."},
                                  {"start": 1.5, "end": 3.0, "speaker": "caller", "text": turns[0].caller_text}],
                      sentiment_timeline=[], recording=None)


def test_saved_calls_get_analytics_and_the_store_reads_them(store_url: str) -> None:
    store = CallStore(store_url)
    save_call(store, _result("c1"), "webrtc", "browser 127.0.0.1", started_at=DAY)
    row = store.call_analytics("c1")
    assert row is not None and row["outcome"] == "contained" and row["data"]["topics"] == {"hours": 1}
    gaps = store.kb_gap_rows()
    assert [(g["call_id"], g["turn"]) for g in gaps] == [("c1", 1)]
    assert CARD not in gaps[0]["question"]
    assert store.latency_values(DAY - 1, DAY + 1) == [900.0, 700.0]
    assert store.latency_values(DAY + 1) == []
    assert [r["call_id"] for r in store.analytics_rows(DAY, DAY + 1)] == ["c1"]
    assert store.analytics_rows(DAY + 1) == []

    # a KB entry written for the question marks it covered; computing the call again keeps the mark
    assert store.cover_kb_gaps([gaps[0]["norm"]], "gift-cards") == 1
    assert store.kb_gap_rows() == []
    analyze_call(store, "c1")
    assert store.kb_gap_rows(covered=True)[0]["entry"] == "gift-cards"

    # an older call with no analytics (stored before this feature) is computed on the first read
    old = store.add_call("phone", "sip:x", started_at=DAY - 86400, duration=5.0, outcome="abandoned")
    store.add_call("transcription", "/x.wav", duration=5.0, outcome="transcribed")  # not a call the assistant took
    assert store.calls_needing_analytics(ANALYTICS_VERSION) == [old]
    assert backfill(store) == 1 and store.calls_needing_analytics(ANALYTICS_VERSION) == []
    assert store.call_analytics(old)["outcome"] == "abandoned"  # type: ignore[index]

    # deleting a call deletes its analytics and its questions
    assert store.delete_call("c1")
    assert store.call_analytics("c1") is None and store.kb_gap_rows(covered=True) == []
    store.close()


def test_a_failing_analysis_does_not_lose_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import voice_agent.records as records

    def boom(*_: Any) -> None:
        raise RuntimeError("no")

    monkeypatch.setattr(records, "analyze_call", boom)
    store = CallStore("sqlite://")
    save_call(store, _result("c2"), "webrtc", "browser")
    assert store.get_call("c2").outcome == "resolved" and store.call_analytics("c2") is None
    assert store.calls_needing_analytics(ANALYTICS_VERSION) == ["c2"]  # the next read computes it


def test_empty_inputs() -> None:
    s = summarize([], [])
    assert s["calls"] == 0 and s["containment_rate"] is None and s["latency_ms"]["p50"] is None
    assert group_gaps([]) == [] and group_gaps([], lambda texts: np.zeros((0, 384), np.float32)) == []


def test_the_dashboard_report_on_both_databases(store_url: str) -> None:
    from voice_agent.web.analytics import _report

    store = CallStore(store_url)
    save_call(store, _result("r1"), "webrtc", "browser", started_at=DAY)
    save_call(store, _result("r2", "transferred"), "phone", "sip:x", started_at=DAY + 3600)
    store.add_call("webrtc", "browser", call_id="r3", started_at=DAY + 86400, duration=4.0, outcome="abandoned")
    report = _report(store, DAY, DAY + 2 * 86400, 0, None)  # r3 has no analytics yet: computed here
    assert report["calls"] == 3 and report["outcomes"]["abandoned"] == 1
    assert [d["calls"] for d in report["per_day"]] == [2, 1]
    assert report["latency_ms"]["turns"] == 4 and report["latency_ms"]["p50"] == 800.0
    assert report["kb_gaps"][0]["count"] == 2 and CARD not in json.dumps(report["kb_gaps"])
    assert _report(store, DAY + 86400, None, 0, None)["calls"] == 1
    store.close()


def test_a_new_version_recomputes_calls_but_not_those_whose_transcript_expired() -> None:
    store = CallStore("sqlite://")
    save_call(store, _result("kept"), "webrtc", "browser", started_at=DAY)
    save_call(store, _result("expired"), "webrtc", "browser", started_at=DAY - 86400)
    assert store.calls_needing_analytics(ANALYTICS_VERSION) == []
    store.drop_transcript("expired")  # retention: the words are gone, the numbers stay as they were
    assert store.calls_needing_analytics(ANALYTICS_VERSION + 1) == ["kept"]
    assert store.call_analytics("expired")["turns"] == 2  # type: ignore[index]
