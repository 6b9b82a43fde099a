"""Per-call policy without models: escalation at the right turn and not before, hangup, repeat, retract."""

from __future__ import annotations

from dialog import Conversation, DialogOptions
from dialog.conversation import ANSWER, CLARIFY, ESCALATE, GOODBYE, MENU, NOT_FOUND, REPEAT


def ask(c: Conversation, text: str, valence: float = 0.0, score: float | None = 0.8, **kw: object) -> str:
    d = c.decide(text, valence=valence, best_score=score, topic="Billing", **kw)  # type: ignore[arg-type]
    c.record_reply(f"reply to {text}")
    return d.action


def test_asking_for_a_human_escalates_with_reason_and_summary() -> None:
    c = Conversation()
    assert ask(c, "when is my bill issued") == ANSWER
    d = c.decide("I want to speak to a human")
    assert d.escalate and d.action == ESCALATE and d.reason == "the caller asked for a human"
    assert d.summary.count(". ") == 1 and d.summary.endswith(".")
    assert "billing" in d.summary and "asked for a human" in d.summary


def test_negative_mood_escalates_on_the_nth_turn_only() -> None:
    c = Conversation(DialogOptions(escalate_negative_turns=3))
    decisions = [c.decide(t, valence=-0.9, best_score=0.8, topic="Outages") for t in ("a", "b", "c")]
    assert [d.escalate for d in decisions] == [False, False, True]
    assert decisions[-1].reason == "the caller has been upset for 3 turns"
    assert decisions[0].extra["upset"]


def test_one_calm_turn_resets_the_negative_streak() -> None:
    c = Conversation(DialogOptions(escalate_negative_turns=2))
    assert not c.decide("bad", valence=-0.9, best_score=0.8).escalate
    assert not c.decide("fine", valence=0.9, best_score=0.8).escalate
    assert not c.decide("bad", valence=-0.9, best_score=0.8).escalate


def test_a_neutral_turn_after_cross_ones_does_not_extend_the_streak() -> None:
    # the smoothed mood is still low after two cross turns, but a plain question is not a third upset turn
    c = Conversation(DialogOptions(escalate_negative_turns=3))
    decisions = [c.decide(t, valence=v, best_score=0.8) for t, v in (("a", -0.6), ("b", -0.65), ("c", -0.05))]
    assert decisions[-1].extra["upset"] and not decisions[-1].escalate


def test_loud_voice_over_neutral_words_counts_as_agitation() -> None:
    calm = Conversation()
    loud = Conversation()
    calm.decide("my bill", valence=0.0, best_score=0.8)
    loud.decide("my bill", valence=0.0, arousal=0.9, best_score=0.8)
    assert loud.mood.mood < calm.mood.mood


def test_two_kb_failures_in_a_row_escalate() -> None:
    c = Conversation()
    assert ask(c, "pizza?", score=0.2) == NOT_FOUND
    assert ask(c, "bill?", score=0.9) == ANSWER  # an answer resets the count
    assert ask(c, "weather?", score=0.1) == NOT_FOUND
    d = c.decide("football?", best_score=0.1)
    assert d.escalate and "could not answer 2" in d.reason
    assert 'could not answer "football?"' in d.summary


def test_yes_after_an_offer_escalates_and_no_after_anything_else_hangs_up() -> None:
    c = Conversation()
    c.decide("pizza?", best_score=0.1)
    c.record_reply("I don't know. Would you like me to connect you with a colleague?", offered_human=True)
    assert c.decide("yes please").escalate
    c2 = Conversation()
    c2.decide("thanks")
    c2.record_reply("You're welcome. Is there anything else I can help with?")
    d = c2.decide("no")
    assert d.action == GOODBYE and d.hangup


def test_goodbye_repeat_menu() -> None:
    c = Conversation(DialogOptions(menu=["1=billing", "0=agent"]))
    ask(c, "when is my bill issued")
    assert ask(c, "say that again") == REPEAT
    assert c.last_reply() == "reply to when is my bill issued"
    d = c.decide("", dtmf="1")
    assert d.action == MENU and d.topic == "billing"
    assert c.decide("", dtmf="0").escalate
    c2 = Conversation()
    d2 = c2.decide("goodbye")
    assert d2.hangup and not d2.escalate


def test_retract_restores_state() -> None:
    c = Conversation()
    ask(c, "pizza?", score=0.1)
    before = (c.kb_failures, c.mood.mood, len(c.history))
    c.decide("more nonsense", valence=-1.0, best_score=0.1)
    c.retract()
    assert (c.kb_failures, c.mood.mood, len(c.history)) == before
    assert not c.escalated


def test_clarifying_is_not_a_kb_failure() -> None:
    c = Conversation(DialogOptions(escalate_kb_failures=2))
    assert c.decide("how much is it", best_score=0.35, tier=CLARIFY).action == CLARIFY
    assert c.decide("the other thing", best_score=0.35, tier=CLARIFY).action == CLARIFY
    assert c.kb_failures == 0 and not c.escalated
    assert c.decide("do you sell bicycles", best_score=0.1, tier=NOT_FOUND).action == NOT_FOUND
    d = c.decide("and scooters", best_score=0.1, tier=NOT_FOUND)
    assert d.escalate and c.kb_failures == 2


def test_clarification_state_is_undone_with_the_turn() -> None:
    c = Conversation()
    c.decide("how much is it", best_score=0.35, tier=CLARIFY)
    c.ask_which(["a", "b"], "how much is it")
    c.decide("the first", best_score=0.35, tier=CLARIFY)  # a new turn clears it
    assert c.clarifying == []
    c.retract()
    assert c.clarifying == ["a", "b"] and c.clarified_question == "how much is it"
