"""The agent-assist builders: suggestions from a retrieval, the live summary, the drafted wrap-up, the lookups."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dialog.kb import Hit, Passage, Retrieval
from voice_agent.assist import (
    AgentAssist,
    Suggestion,
    clean_wrapup,
    draft_wrapup,
    live_summary,
    suggestions_from_hits,
)
from voice_agent.engine import Engine


def _hit(pid: str, score: float, answer: str = "An answer.") -> Hit:
    return Hit(Passage(pid, "topic", f"Question {pid}?", answer, "kb.md"), score)


def test_suggestions_are_the_best_distinct_entries_above_the_floor() -> None:
    hits = [_hit("a", 0.5), _hit("b", 0.9), _hit("a", 0.4), _hit("c", 0.1), _hit("d", 0.3), _hit("e", 0.25)]
    found = suggestions_from_hits(hits, k=3)
    assert [s.id for s in found] == ["b", "a", "d"]  # best first, each entry once, noise (0.1) left out
    assert found[0] == Suggestion("b", "Question b?", "An answer.", 0.9)
    assert suggestions_from_hits([_hit("x", 0.05)]) == []


def test_a_long_answer_is_cut_at_a_word() -> None:
    [s] = suggestions_from_hits([_hit("a", 0.8, "word " * 400)])
    assert len(s.answer) <= 602 and s.answer.endswith(" …") and "  " not in s.answer


class _Kb:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def retrieve(self, query: str, k: int = 3) -> Retrieval:
        self.queries.append(query)
        return Retrieval([_hit("hours-0", 0.8, "Monday to Friday, 8 AM to 8 PM."), _hit("bill-0", 0.3)], 0.5)


def test_engine_suggest_uses_the_knowledge_base() -> None:
    engine = Engine(None, None, None, None)  # type: ignore[arg-type]
    assert engine.suggest("when are you open") == []  # no knowledge base: nothing to suggest
    engine.knowledge = _Kb()
    assert [s.id for s in engine.suggest("when are you open", 2)] == ["hours-0", "bill-0"]
    assert engine.suggest("  ") == [] and engine.knowledge.queries == ["when are you open"]


def test_live_summary() -> None:
    events = [{"type": "caller_turn", "text": "my internet is down"}, {"type": "agent_text", "text": "Sorry."},
              {"type": "caller_turn", "text": "when will it be fixed"}]
    assert live_summary("The caller asked about outages.", events, None) == \
        'The caller asked about outages. Latest: "when will it be fixed".'
    assert live_summary("", events, None) == 'The caller said "my internet is down"; "when will it be fixed".'
    assert live_summary("", [], None) == "The caller has not asked anything yet."
    assert live_summary("", events[:1], {"reason": "asked for a human", "summary": "Upset about an outage."}) == \
        'Upset about an outage. Latest: "my internet is down".'


def test_wrapup_draft_from_the_call_record() -> None:
    meta = {"transfer": {"reason": "the caller asked for a human",
                         "summary": "The caller asked about outages and the assistant could not answer"},
            "human_agents": ["ann"]}
    turns = [{"index": 0, "caller_text": "is there an outage", "action": "answer"},
             {"index": 1, "caller_text": "do you sell gift cards", "action": "not_found"}]
    events = [{"type": "action", "name": "book_technician", "outcome": "failed", "error": "timeout"},
              {"type": "action", "name": "outage_status", "outcome": "done"}]
    d = draft_wrapup("transferred", meta, turns, events, notes="promised a call back")
    assert d["summary"] == ("The caller asked about outages and the assistant could not answer. Taken over by ann. "
                            "Promised a call back. Actions: book_technician failed, outage_status done.")
    assert d["outcome"] == "transferred (the caller asked for a human)"
    assert d["follow_ups"].splitlines() == ['Answer the caller\'s question: "do you sell gift cards"',
                                            "Check action book_technician: failed (timeout)",
                                            "Add a KB entry for the unanswered question"]


def test_wrapup_draft_without_a_transfer_quotes_the_caller() -> None:
    events = [{"type": "caller_turn", "text": "what are your opening hours"},
              {"type": "caller_turn", "text": "can I pay by card"}]
    d = draft_wrapup("resolved", {}, [{"caller_text": "what are your opening hours", "action": ""}], events)
    assert d == {"summary": 'The caller said "what are your opening hours"; "can I pay by card".',
                 "outcome": "resolved", "follow_ups": ""}
    assert draft_wrapup(None, {}, [], [])["outcome"] == "ended"


def test_clean_wrapup() -> None:
    assert clean_wrapup({"summary": " a\r\nb ", "outcome": "ok"}) == {"summary": "a\nb", "outcome": "ok",
                                                                        "follow_ups": ""}
    try:
        clean_wrapup({"summary": 3})
    except ValueError as exc:
        assert "summary" in str(exc)
    else:
        raise AssertionError("a number is not a summary")


async def test_lookups_run_off_the_loop_and_the_latest_wins(tmp_path: Path) -> None:
    sent: list[dict[str, object]] = []
    started = asyncio.Event()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def search(text: str, k: int) -> list[Suggestion]:
        if text.startswith("slow"):
            loop.call_soon_threadsafe(started.set)
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(5)
        return [Suggestion(text, text, "answer", 0.9)]

    assist = AgentAssist(search, sent.append)
    assist.heard("slow first question", True)
    await started.wait()  # the loop is free while the search runs in a thread
    assist.heard("hi", False)  # a short partial: no search
    assist.heard("second question now", False)
    assist.heard("second question now", True)  # the same words again: no second search
    await asyncio.sleep(0)
    release.set()
    await assist.drain()
    # the older answer came late and was dropped; the finished turn re-sent the latest (with a fresh summary)
    assert [m["text"] for m in sent if m["text"]] == ["second question now"]
    assert assist.latest["suggestions"] == [{"id": "second question now", "question": "second question now",
                                             "answer": "answer", "score": 0.9}]


def test_wrapup_is_saved_sealed_with_the_call(store_url: str) -> None:
    import os

    from voice_agent.protection.cipher import Cipher, Key
    from voice_agent.store import CallStore

    store = CallStore(store_url, cipher=Cipher(Key(os.urandom(32))))
    cid = store.add_call("webrtc", "browser", call_id="w1", meta={"human_agents": ["ann"]})
    assert store.wrapup(cid) is None
    saved = store.save_wrapup(cid, {"summary": "Rebooked the engineer", "outcome": "resolved", "follow_ups": ""},
                              "ann")
    assert store.wrapup(cid) == saved and saved["by"] == "ann" and saved["summary"] == "Rebooked the engineer"
    assert store.get_call(cid).meta["human_agents"] == ["ann"]  # merged into the call's details, not replacing them
    with store.read() as db:
        raw = str(db.value("SELECT meta FROM calls WHERE id = ?", (cid,)))
    assert "Rebooked" not in raw and "wrapup" not in raw  # encrypted at rest like the transcript


async def test_suggestions_reach_only_the_agent_with_the_callers_words_redacted() -> None:
    from dialog.options import PII_KINDS
    from voice_agent.privacy import Privacy
    from voice_agent.web.live import LiveCall

    class Side:
        def __init__(self) -> None:
            self.events: list[dict[str, object]] = []

        def send_event(self, event: dict[str, object]) -> None:
            self.events.append(event)

        def hang_up(self) -> None:
            pass

    class Knows:
        executor = None

        def __init__(self) -> None:
            self.asked: list[str] = []

        def suggest(self, text: str, k: int = 3) -> list[Suggestion]:
            self.asked.append(text)
            return [Suggestion("bill-0", "How can I pay my bill?", "By card or direct debit.", 0.8)]

    caller, agent, knows = Side(), Side(), Knows()
    call = LiveCall(caller, "browser", "Please hold.", Privacy(PII_KINDS))
    call.emit({"type": "caller_turn", "text": "my card is 4532 0151 1283 0366, can I pay my bill with it"})
    call.agent = agent  # type: ignore[assignment]
    call._start_assist(knows)  # type: ignore[arg-type]  # what take_over does once the person is on the line
    assert call.assist is not None
    await call.assist.drain()
    views = [e for e in agent.events if e.get("type") == "suggestions"]
    assert views[-1]["suggestions"] == [{"id": "bill-0", "question": "How can I pay my bill?",
                                         "answer": "By card or direct debit.", "score": 0.8}]
    assert "4532" in knows.asked[0]  # the lookup hears what was said; the console sees it redacted
    assert "4532" not in str(views) and "0366" not in str(views)
    assert "suggestions" not in [e.get("type") for e in caller.events]
    assert call.assist_view() == views[-1]
