"""Hybrid retrieval pieces without models: tokens, sound-alike expansion, answer types, tiers."""

from __future__ import annotations

import math

from dialog.kb import Hit, Passage, Retrieval
from dialog.retrieval import LexicalIndex, answer_type_penalty, content_terms, number_bonus, sound_key, tokens


def test_number_words_become_digits() -> None:
    assert "500" in tokens("the five hundred meg package")
    assert "29" in tokens("twenty-nine dollars")
    assert tokens("Fiber 500") == ["fiber", "500"]


def test_sound_alike_words_share_a_key() -> None:
    assert sound_key("done") == sound_key("down")
    assert sound_key("bill") == sound_key("bell")
    assert sound_key("refund") != sound_key("router")


def test_words_the_kb_never_uses_search_their_sound_alikes() -> None:
    index = LexicalIndex(["The internet is down in your area.", "Refunds take five days."])
    expanded = index.expand(content_terms("my internet has been done since yesterday"))
    assert "down" in expanded
    assert index.shares_words("my internet has been done", 0)
    assert not index.shares_words("can I order a pizza", 1)
    scores = index.scores("it's been done all day")
    assert scores[0] > scores[1]


def test_answer_types_and_numbers() -> None:
    answers = ["Fiber 500 costs $39.99 a month.", "You can upgrade in the app.", "We are open 9 AM to 5 PM."]
    price = answer_type_penalty("how much does it cost", answers)
    assert price[0] == 0 and price[1] > 0
    when = answer_type_penalty("when are you open", answers)
    assert when[2] == 0 and when[1] > 0
    bonus = number_bonus("the five hundred plan", ["Fiber 100", "Fiber 500", "Fiber 1000"])
    assert list(bonus > 0) == [False, True, False]


def _hits(*scores: tuple[str, float, float]) -> list[Hit]:
    return [Hit(Passage(pid, "t", f"question {pid}", "answer", "f.yaml"), rel, fused) for pid, rel, fused in scores]


def test_tiers_answer_clarify_not_found() -> None:
    clear = Retrieval(_hits(("a", 0.7, 9.0), ("b", 0.5, 6.0)), 3.0)
    assert clear.tier(0.3, 0.4, 0.6)[0] == "answer"
    close = Retrieval(_hits(("a", 0.6, 6.0), ("b", 0.55, 5.8)), 0.2)
    action, named = close.tier(0.3, 0.4, 0.6)
    assert action == "clarify" and [h.passage.id for h in named] == ["a", "b"]
    middling = Retrieval(_hits(("a", 0.35, 8.0), ("b", 0.2, 4.0)), 4.0)
    action, named = middling.tier(0.3, 0.4, 0.6)
    assert action == "clarify" and [h.passage.id for h in named] == ["a"]
    nothing = Retrieval(_hits(("a", 0.1, 3.0), ("b", 0.05, 2.9)), 0.1)
    assert nothing.tier(0.3, 0.4, 0.6) == ("not_found", [])
    assert Retrieval([], math.inf).tier(0.3, 0.4, 0.6) == ("not_found", [])


def test_words_the_asr_split_in_two_are_joined_when_the_kb_uses_the_whole_word() -> None:
    index = LexicalIndex(["Report an outage on the status page.", "Refunds go back to your card.",
                          "A technician visit is free.", "You can pay in instalments."])
    assert index.repair("is there an out age near me") == "is there an outage near me"
    assert index.repair("can the tech nician come today?") == "can the technician come today?"
    assert index.repair("I want a reef und please") == "I want a refund please"  # sounds like a KB word
    # ordinary pairs of words stay apart, even when the pair sounds like a KB word
    for text in ("can you pay it for the card", "I want to report it", "the status of my order"):
        assert index.repair(text) == text


def test_a_misheard_vowel_is_read_as_the_kb_word_but_other_consonants_are_not() -> None:
    index = LexicalIndex(["Is the internet down in my area? Check the status page.",
                          "Your bill is issued on the first of the month.", "Use the live chat in the app.",
                          "We ship to most countries."])
    assert index.sound_alike_reading("my internet has been done since Monday") == (
        "my internet has been down since Monday")
    assert index.sound_alike_reading("why is my bell so high") == "why is my bill so high"
    # different consonants are different words, and a long word is not two letters away from another
    for text in ("would you cut me off", "can I swap it", "my interest rate"):
        assert index.sound_alike_reading(text) == text
