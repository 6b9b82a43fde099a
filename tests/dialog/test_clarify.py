"""Confidence decides: answer, ask which one (and use the caller's pick, by voice or key), or say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialog import Brain, DialogOptions
from dialog.embeddings import Embedder
from dialog.sentiment import SentimentAnalyzer

PLANS = """topic: Plans
entries:
  - id: plan-basic
    question: How much does the Basic plan cost?
    answer: The Basic plan costs $10 a month with speeds up to 100 megabits.
  - id: plan-plus
    question: How much does the Plus plan cost?
    answer: The Plus plan costs $20 a month with speeds up to 500 megabits.
  - id: plan-max
    question: What is the fastest plan?
    answer: Max is the fastest plan, with speeds up to 2 gigabits, for $35 a month.
"""
OTHER = """topic: Other
entries:
  - id: hours
    question: When are you open?
    answer: We are open Monday to Friday from 9 AM to 5 PM.
  - id: password
    question: How do I reset my password?
    answer: Tap Forgot password on the sign-in screen and follow the link we email you.
  - id: email
    question: What is your email address?
    answer: Write to help@example.org and we reply within a day.
  - id: parking
    question: Is there parking at the office?
    answer: There are ten visitor spaces behind the building.
"""
GARDEN = """topic: Garden centre
entries:
  - id: garden-hours
    question: When is the garden centre open?
    answer: The garden centre is open every day from 9 AM to 6 PM.
"""


@pytest.fixture(scope="module")
def plans_brain(embedder: Embedder, analyzer: SentimentAnalyzer, tmp_path_factory: pytest.TempPathFactory) -> Brain:
    folder = tmp_path_factory.mktemp("plans-kb")
    (folder / "plans.yaml").write_text(PLANS, encoding="utf-8")
    (folder / "garden.yaml").write_text(GARDEN, encoding="utf-8")
    b = Brain(DialogOptions(kb_dir=str(folder)), tmp_path_factory.mktemp("cache"), embedder=embedder,
              sentiment=analyzer, use_llm=False)
    b.load()
    return b


async def say(call, text: str, dtmf: str | None = None) -> tuple[str, str, list[str]]:  # type: ignore[no-untyped-def]
    reply = await call.respond(text, dtmf=dtmf)
    spoken = await reply.text()
    d = reply.decision
    return d.action, spoken, [s["id"] for s in d.extra["sources"]]


async def test_two_close_candidates_are_named_and_the_pick_is_answered(plans_brain: Brain) -> None:
    call = plans_brain.open_call()
    action, spoken, _ = await say(call, "how much is the plan per month")
    assert action == "clarify", spoken
    named = call.conversation.clarifying
    assert len(named) == 2 and set(named) <= {"plan-basic", "plan-plus", "plan-max"}
    action, spoken, sources = await say(call, "the second one")
    assert action == "answer" and sources == [named[1]]
    price = {"plan-basic": "ten dollars", "plan-plus": "twenty dollars", "plan-max": "thirty-five dollars"}
    assert price[named[1]] in spoken
    assert call.conversation.kb_failures == 0


async def test_the_pick_by_key_and_none_of_them(plans_brain: Brain) -> None:
    call = plans_brain.open_call()
    action, _, _ = await say(call, "how much is the plan per month")
    assert action == "clarify"
    first = call.conversation.clarifying[0]
    action, _, sources = await say(call, "", dtmf="1")
    assert action == "answer" and sources == [first]
    again = plans_brain.open_call()
    await say(again, "how much is the plan per month")
    action, spoken, _ = await say(again, "no, neither of those")
    assert action == "not_found" and "colleague" in spoken


async def test_follow_up_resolves_against_the_previous_topic(plans_brain: Brain) -> None:
    call = plans_brain.open_call()
    action, spoken, sources = await say(call, "what does the basic one cost")
    assert action == "answer" and sources == ["plan-basic"] and "ten dollars" in spoken
    action, spoken, sources = await say(call, "and the quickest one?")
    assert action in ("answer", "clarify")
    assert (sources if action == "answer" else call.conversation.clarifying)[0] == "plan-max", spoken


async def test_a_longer_follow_up_is_read_with_the_question_before_it(
        embedder: Embedder, analyzer: SentimentAnalyzer, tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "pool.yaml").write_text("""topic: Swimming pool
entries:
  - id: pool-hours
    question: When is the swimming pool open?
    answer: The pool is open from 6 AM to 9 PM on weekdays and from 8 AM to 6 PM at weekends.
  - id: pool-guests
    question: Can guests use the swimming pool?
    answer: Members may bring a guest to the pool for a day fee of $8.
  - id: locker-rental
    question: Can I rent a locker?
    answer: Lockers can be rented at reception for $5 a month.
""", encoding="utf-8")
    b = Brain(DialogOptions(kb_dir=str(tmp_path / "kb")), tmp_path / "cache", embedder=embedder,
              sentiment=analyzer, use_llm=False)
    b.load()
    call = b.open_call()
    action, _, sources = await say(call, "what time does the pool open in the morning")
    assert action == "answer" and sources == ["pool-hours"]
    # "bring my sister along to it" names neither the pool nor guests' fees: the previous question does
    follow_up = "and can I bring my sister along to it one day"
    action, spoken, sources = await say(call, follow_up)
    assert action in ("answer", "clarify"), spoken
    assert (sources if action == "answer" else call.conversation.clarifying)[0] == "pool-guests", spoken
    # on its own, the same turn is too vague to answer
    action, spoken, _ = await say(b.open_call(), follow_up)
    assert action == "not_found", spoken


async def test_a_short_follow_up_never_takes_another_topics_fact(
        embedder: Embedder, analyzer: SentimentAnalyzer, tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "moving.yaml").write_text("""topic: Moving
entries:
  - id: move-how
    question: How do I move my service to a new address?
    answer: Tell us your new address a month before you move and we switch the service over on the day.
  - id: move-fee
    question: Is there a fee for moving my service?
    answer: Moving your service to a new address costs $25.
""", encoding="utf-8")
    (tmp_path / "kb" / "repairs.yaml").write_text("""topic: Repairs
entries:
  - id: repair-fee
    question: Does a repair visit cost anything?
    answer: A repair visit is free for faults on our side; otherwise the call-out charge is $60.
  - id: repair-book
    question: How do I book a repair?
    answer: Book a repair in the app or by phone; the first slot is usually within two days.
""", encoding="utf-8")
    (tmp_path / "kb" / "other.yaml").write_text(OTHER, encoding="utf-8")
    b = Brain(DialogOptions(kb_dir=str(tmp_path / "kb")), tmp_path / "cache", embedder=embedder,
              sentiment=analyzer, use_llm=False)
    b.load()
    # on its own the question is a confident match for the repairs entry ...
    action, _, sources = await say(b.open_call(), "does it cost anything")
    assert action == "answer" and sources == ["repair-fee"]
    # ... but after a question about moving, "it" is the move: never the repair's price
    call = b.open_call()
    action, _, sources = await say(call, "we're moving to a new house next month, what do I need to do")
    assert action == "answer" and sources == ["move-how"]
    action, spoken, sources = await say(call, "does it cost anything")
    named = sources if action == "answer" else call.conversation.clarifying
    assert action in ("answer", "clarify") and named[0] == "move-fee", (action, spoken)
    assert "sixty" not in spoken


async def test_nothing_relevant_is_said_and_a_human_offered(plans_brain: Brain) -> None:
    call = plans_brain.open_call()
    action, spoken, _ = await say(call, "can you recommend a good pizza place")
    assert action == "not_found" and "colleague" in spoken
    assert "dollars" not in spoken


def test_company_names_come_from_settings(plans_brain: Brain, tmp_path: Path) -> None:
    # no assistant.yaml: a neutral greeting, never another company's name
    greeting = plans_brain.open_call().greeting()
    assert greeting == "Thank you for calling. How can I help you today?"
