"""The grounding guard: invented numbers, swapped ranges, meta talk and cheer at anger are caught."""

from __future__ import annotations

from dialog.grounding import Grounding, extractive_answer, quantities

HOURS = ("Phone support is open Monday to Friday from 8 AM to 8 PM, and Saturday from 9 AM to 5 PM. "
         "We are closed on Sundays and public holidays.")
PRICE = "Fiber 500 costs $39.99 a month with speeds up to 500 megabits per second. It is our most popular plan."


def test_quantities_normalise_times_prices_and_words() -> None:
    assert quantities(HOURS) == ["t08:00", "t20:00", "t09:00", "t17:00"]
    assert quantities("It costs $39.99, or twenty-nine dollars, at 20:00.") == ["39.99", "29", "t20:00"]
    assert quantities("one moment please") == []  # "one" is a pronoun as often as a number


def test_accepts_what_the_passage_says() -> None:
    g = Grounding(HOURS, "When are you open on Saturday?")
    assert g.check("On Saturday we are open from 9 AM to 5 PM.").ok
    assert g.check("We open at nine on Saturday.").ok


def test_rejects_invented_or_mixed_facts() -> None:
    g = Grounding(HOURS, "When are you open on Saturday?")
    assert "not in the passage" in g.check("We are open from 10 AM to 6 PM.").reason
    assert "not paired" in g.check("We are open from 8 AM to 5 PM.").reason
    p = Grounding(PRICE, "How much is Fiber 500?")
    assert not p.check("Fiber 500 costs $29.99 a month.").ok
    assert not p.check("It offers speeds of up to 1.2 gigabits per second.").ok
    assert p.check("Fiber 500 costs $39.99 a month.").ok


def test_rejects_meta_talk_negation_and_drift() -> None:
    p = Grounding(PRICE, "How much is Fiber 500?")
    assert p.check("As a phone support agent, I cannot see prices.").reason == "meta talk"
    assert "negation" in p.check("Fiber 500 is not available.").reason
    assert "words" in p.check("Our premium unlimited plans include streaming television bundles.").reason


def test_no_cheer_at_an_upset_caller() -> None:
    p = Grounding(PRICE, "How much is Fiber 500?")
    assert p.check("Great, Fiber 500 costs $39.99 a month!").ok
    assert not p.check("Great, Fiber 500 costs $39.99 a month!", upset=True).ok


def test_covers() -> None:
    g = Grounding(HOURS)
    assert g.covers("On Saturday we are open from 9 AM to 5 PM.", HOURS)
    assert not g.covers("We are happy to help.", HOURS)
    assert Grounding("Tap Forgot password on the login screen.").covers(
        "Tap Forgot password on the app login screen.", "Tap Forgot password on the login screen.")


def test_extractive_answer_picks_the_relevant_sentence() -> None:
    answer = "You can reschedule for free up to 24 hours before the visit. Missed appointments cost $35."
    assert extractive_answer("what does a missed appointment cost", answer, 1) == ["Missed appointments cost $35."]
    both = extractive_answer("reschedule", answer, 2)
    assert both == answer.replace("visit. ", "visit.|").split("|")

    def scorer(question: str, sentences: list[str]) -> list[float]:
        return [1.0 if "reschedule" in s else 0.0 for s in sentences]

    assert extractive_answer("change my visit", answer, 1, scorer=scorer)[0].startswith("You can reschedule")


LIGHTS = ("A solid white light means everything is working. Flashing amber means the router is starting up. "
          "A red light means there is no signal on the line.")


def test_claims_must_sit_in_one_passage_sentence() -> None:
    g = Grounding(LIGHTS, "The little light on my modem has gone red")
    assert g.check("A red light means there is no signal on the line.").ok
    # every word is in the passage, but red belongs to "no signal", not to "starting up"
    assert "colour" in g.check("The red light means the router is starting up.").reason
    assert not g.check("A green light means everything is working.").ok


def test_yes_no_and_names_need_support() -> None:
    p = Grounding(PRICE, "Is there a student discount?", names=["Example Co"])
    assert "yes or no" in p.check("Yes, there is.").reason
    assert not p.check("Yes, there is a student discount.").ok
    assert "name" in p.check("Our Gigabit Max plan costs $39.99 a month.").reason  # a name the passage lacks
    assert p.check("Fiber 500 costs $39.99 a month at Example Co.").ok  # the company's own name is free


def test_a_swapped_colour_is_caught_even_when_every_other_word_matches() -> None:
    g = Grounding("A green light on the front of the router means the fibre line is working normally. "
                  "Any other light means there is a fault.", "what does the red light mean")
    assert g.check("A green light on the front of the router means the fibre line is working normally.").ok
    swapped = "A red light on the front of the router means the fibre line is working normally."
    assert "colour" in g.check(swapped).reason
