"""Phone-line intents from the caller's words."""

from __future__ import annotations

import pytest

from dialog.intents import Intent, detect_intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("I want to speak to a human", "human"),
        ("can I talk to a real person please", "human"),
        ("put me through to an agent", "human"),
        ("agent", "human"),
        ("I need a manager now", "human"),
        ("get me someone who knows what they're doing, transfer me to a supervisor", "human"),
        ("goodbye", "goodbye"),
        ("that's all, thanks", "goodbye"),
        ("ok thanks bye", "goodbye"),
        ("can you repeat that", "repeat"),
        ("sorry, I didn't catch that", "repeat"),
        ("pardon?", "repeat"),
        ("thank you", "thanks"),
        # a turn that ends on thanks after an acknowledgement closes the exchange, a request does not
        ("perfect, that sorts it, thank you very much", "thanks"),
        ("alright then, ta", "thanks"),
        ("okay, I'll ring back tomorrow, cheers", "thanks"),
        ("okay, I want to know the fee, thanks", "question"),
        ("the modem keeps dropping, thanks", "question"),
        ("right, and how much is it, thanks", "question"),
        ("hello", "greeting"),
        ("yes please", "yes"),
        ("no thanks", "no"),
        ("when are you open on Saturday?", "question"),
        ("your agent was rude to me last week", "question"),
        ("my internet is down", "question"),
        # many ways of asking for a person
        ("put me through to someone", "human"),
        ("I'd rather deal with your team directly, could you transfer me", "human"),
        ("just put me through please", "human"),
        ("a real human", "human"),
        ("operator", "human"),
        ("agent please", "human"),
        ("I need to talk to an actual human being please", "human"),
        ("let me speak with somebody", "human"),
        ("can I get a live person", "human"),
        ("transfer me to customer service", "human"),
        # near misses that are not requests
        ("can a person come to my house", "question"),
        ("I spoke to someone last week", "question"),
        ("is an engineer a real person", "question"),
        ("can someone come and fix the line", "question"),
        ("the agent I talked to yesterday said it was fixed", "question"),
    ],
)
def test_intents(text: str, intent: str) -> None:
    assert detect_intent(text).name == intent


def test_menu_choices() -> None:
    assert detect_intent("press two") == Intent("menu", "2")
    assert detect_intent("option one please") == Intent("menu", "1")
    assert detect_intent("", dtmf="0") == Intent("menu", "0")
    assert detect_intent("I'd like to pick option three for moving").name == "menu"


def test_personal_details_are_not_questions() -> None:
    assert detect_intent("my card is [CARD]").name == "details"
    assert detect_intent("The number is [PHONE] and my email is [EMAIL]").name == "details"
    assert detect_intent("my card is [CARD], can you check my payment?").name == "question"
