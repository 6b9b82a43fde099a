"""PII redaction: cards (Luhn), phones, e-mails, national IDs, spoken digits; configurable kinds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialog.numbers import ONES, luhn_ok
from dialog.pii import Redactor, spoken_digits

VALID_CARD = "4539 5787 6362 1486"


def with_luhn(prefix: str) -> str:
    """Append the check digit that makes prefix a valid card number."""
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"my card is {VALID_CARD} thanks", "my card is [CARD] thanks"),
        ("card 4539-5787-6362-1486.", "card [CARD]."),
        ("4539578763621486", "[CARD]"),
        ("call me on +44 20 7946 0958 please", "call me on [PHONE] please"),
        ("my number is 555-123-4567", "my number is [PHONE]"),
        ("mail john.doe+x@example.co.uk now", "mail [EMAIL] now"),
        ("my ssn is 123-45-6789", "my ssn is [ID]"),
        ("national insurance AB 12 34 56 C", "national insurance [ID]"),
        ("passport number X1234567", "passport number [ID]"),
        ("it is four five three nine five seven eight seven six three six two one four eight six", "it is [CARD]"),
        ("account number four five double three two one", "account number [NUMBER]"),
        ("oh seven seven oh oh nine oh oh one two three", "[NUMBER]"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "It costs $29.99 a month, 10% off, open 8:00 to 20:00 on 2024-05-01.",
        "Fiber 1000 gives 1 gigabit; I have 3 kids and one dog.",
        "Refunds take 5 to 7 business days, 24/7 outage line.",
        "tracking code 4539578763621487 fails the checksum",
        "one or two things",
    ],
)
def test_leaves_ordinary_numbers(text: str) -> None:
    assert Redactor().redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Whisper dropped a digit: the checksum fails, but a number said after "card" is still a card
        ("My card number is 4532, 0151, 1283036.", "My card number is [CARD]."),
        ("card 4539578763621487 fails the checksum", "card [CARD] fails the checksum"),
        ("my debit card is four five three two one one two eight, ok", "my debit card is [CARD], ok"),
        ("the card ending in 4 4 1 2 please", "the card ending in [CARD] please"),
        ("I have 3 cards and 2 phones", "I have 3 cards and 2 phones"),
    ],
)
def test_numbers_said_after_card_are_cards(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_kinds_are_configurable() -> None:
    text = f"card {VALID_CARD}, mail a@b.com, phone 555-123-4567"
    only_email = Redactor(["email"]).redact(text)
    assert "[EMAIL]" in only_email and VALID_CARD in only_email and "555-123-4567" in only_email
    assert Redactor.for_llm(["email"]).redact(text).count("[CARD]") == 1
    with pytest.raises(ValueError, match="unknown PII kinds"):
        Redactor(["passwords"])


def test_counts() -> None:
    text, counts = Redactor().redact_counted(f"{VALID_CARD} and x@y.org and x@y.org")
    assert text == "[CARD] and [EMAIL] and [EMAIL]"
    assert counts == {"card": 1, "email": 2}


def test_spoken_digits() -> None:
    assert spoken_digits("four five double three oh niner") == "453309"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=12, max_size=18), st.sampled_from(["", " ", "-"]),
       st.sampled_from(["my card is {} ok", "{}", "pay with {}."]))
def test_any_valid_card_is_redacted(prefix: str, sep: str, template: str) -> None:
    card = with_luhn(prefix)
    grouped = sep.join(card[i : i + 4] for i in range(0, len(card), 4))
    out = Redactor().redact(template.format(grouped))
    assert not re.search(r"\d{4}", out), out


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="0123456789", min_size=15, max_size=15))
def test_spoken_cards_never_reach_the_llm(prefix: str) -> None:
    card = with_luhn(prefix)
    spoken = " ".join(ONES[int(d)] for d in card)
    out = Redactor.for_llm(["card"]).redact(f"the number is {spoken} thanks")
    assert out == "the number is [CARD] thanks"


# ---- the way speech recognisers write numbers read aloud (issue 12) ------------------------------
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
GROUPINGS = {"card": [(4, 4, 4, 4), (4, 6, 5), (1,) * 16, (8, 8)], "phone": [(3, 3, 4), (3, 4), (1,) * 10, (10,)],
             "national_id": [(3, 2, 4), (1,) * 9]}


@st.composite
def rendered_number(draw: st.DrawFn) -> tuple[str, str, str]:
    """(kind, digits, how an ASR might write them): hyphens, commas, spaces, words, mixes."""
    kind = draw(st.sampled_from(sorted(GROUPINGS)))
    if kind == "card":
        digits = with_luhn(draw(st.text(alphabet="0123456789", min_size=15, max_size=15)))
    elif kind == "phone":
        digits = draw(st.sampled_from("23456789")) + draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    else:
        digits = draw(st.text(alphabet="123456789", min_size=9, max_size=9))
    grouping = draw(st.sampled_from([g for g in GROUPINGS[kind] if sum(g) == len(digits)]))
    between = draw(st.sampled_from([" ", ", ", "-", ". ", "... ", " - ", ",", " \u2013 "]))
    groups, pos = [], 0
    for size in grouping:
        chunk = digits[pos : pos + size]
        pos += size
        style = draw(st.sampled_from(["plain", "hyphens", "commas", "spaces", "words", "mixed"]))
        if style == "plain":
            groups.append(chunk)
            continue
        inner = {"hyphens": "-", "commas": ", ", "spaces": " "}.get(style, draw(st.sampled_from([" ", "-", ", "])))
        parts = [WORDS[int(d)] if style == "words" or (style == "mixed" and draw(st.booleans())) else d
                 for d in chunk]
        groups.append(inner.join(parts))
    return kind, digits, between.join(groups)


TEMPLATES = ["{}", "my number is {} thanks", "It's {}.", "so, {}, okay", "sure, {}"]


@settings(max_examples=400, deadline=None)
@given(rendered_number(), st.sampled_from(TEMPLATES))
def test_numbers_read_aloud_are_redacted_however_written(number: tuple[str, str, str], template: str) -> None:
    kind, _, rendered = number
    out = Redactor().redact(template.format(rendered))
    words = re.findall(r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine)\b", out, re.IGNORECASE)
    assert not re.search(r"\d", out) and not words, (rendered, out)
    if kind == "card":  # a card is gone even where only cards are redacted
        only_cards = Redactor(["card"]).redact(template.format(rendered))
        assert "[CARD]" in only_cards and not re.search(r"\d{2}", only_cards), (rendered, only_cards)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-1-1-1 1-1-1-1 1-1-1-1 1-1-1-1", "[CARD]"),
        ("111, 111, 111, 1111", "[PHONE]"),
        ("call 5, 5, 5, 0, 1, 4, 3 today", "call [PHONE] today"),
        ("2-0-2, 5-5-5, 0-1-4-3", "[PHONE]"),
        ("It is 4539, 5787, 6362, 1486.", "It is [CARD]."),
        ("4 5 3 9 5 7 8 7 6 3 6 2 1 4 8 6", "[CARD]"),
        ("4539. 5787. 6362. 1486.", "[CARD]."),
        ("five five five, 0143 please", "[NUMBER] please"),
        ("(202) 555-0143", "[PHONE]"),
        ("555.123.4567", "[PHONE]"),
        ("my mobile is 07700 900123", "my mobile is [PHONE]"),
        ("The number is 453-9.", "The number is [NUMBER]."),  # one group per turn when the caller pauses
        ("1 4 8 6", "[NUMBER]"),
    ],
)
def test_whisper_renderings(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


MONTHS = ["January", "March", "May", "December"]


@st.composite
def near_miss(draw: st.DrawFn) -> str:
    """Numbers that are not PII: prices, times, dates, product numbers, counts, ranges, percentages."""
    n = st.integers
    return draw(st.sampled_from([
        f"${draw(n(1, 999))}.{draw(n(0, 99)):02d} a month",
        f"at {draw(n(1, 12))} PM",
        f"from {draw(n(1, 12))}:{draw(n(0, 59)):02d} to {draw(n(13, 23))}:{draw(n(0, 59)):02d}",
        f"on {draw(n(2000, 2030))}-{draw(n(1, 12)):02d}-{draw(n(1, 28)):02d}",
        f"on {draw(st.sampled_from(MONTHS))} {draw(n(1, 28))}, {draw(n(1990, 2030))}",
        f"on {draw(n(1, 12))}/{draw(n(1, 28))}/{draw(n(2000, 2030))}",
        f"the Fiber {draw(st.sampled_from([100, 300, 500, 1000, 2000]))} plan",
        f"model X{draw(n(100, 99999))}",
        f"{draw(n(1, 30))} days",
        f"{draw(n(2, 9))}-{draw(n(10, 30))} business days",
        f"{draw(n(1, 100))}% off",
        f"{draw(n(1, 99))},{draw(n(0, 999)):03d} customers",
        f"in {draw(n(1990, 2030))}, {draw(n(1990, 2030))} and {draw(n(1990, 2030))}",
    ]))


@settings(max_examples=400, deadline=None)
@given(st.lists(near_miss(), min_size=1, max_size=4), st.sampled_from([". ", " and ", "; ", ". Then "]))
def test_ordinary_numbers_stay(parts: list[str], joiner: str) -> None:
    text = "It is " + joiner.join(parts) + "."
    assert Redactor().redact(text) == text


def test_long_inputs_stay_linear() -> None:
    # no catastrophic backtracking on long runs that end in a non-number
    text = "1 " * 5000 + "x" + ", 12" * 3000 + "abc"
    assert Redactor().redact(text).count("[") >= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a caller who pauses between groups gives one turn per group: each turn is only a number
        ("4539.", "[NUMBER]."),
        ("Um, 6362.", "Um, [NUMBER]."),
        ("and 1486", "and [NUMBER]"),
        ("It's 5787.", "It's [NUMBER]."),
        # numbers inside a sentence are not
        # five or six digits in one piece are an identifier wherever they stand (seen in a live caption)
        ("Time Saminate 63621", "Time Saminate [NUMBER]"),
        ("my order is 104552 I think", "my order is [NUMBER] I think"),
        ("it costs $12000", "it costs $12000"),
        ("12,000 customers", "12,000 customers"),
        # a date inside a run of digits ends the number (hypothesis found the first), a card after it still counts
        ("It is on 2000-01-25. 24,466 customers.", "It is on 2000-01-25. 24,466 customers."),
        ("on 2000-01-25, 24,466 customers", "on 2000-01-25, 24,466 customers"),
        ("born 1990-05-01, 4539 5787 6362 1486", "born 1990-05-01, [CARD]"),
        ("Fiber 500.", "Fiber 500."),
        ("I paid 4539 dollars", "I paid 4539 dollars"),
        ("The Fiber 1000 plan", "The Fiber 1000 plan"),
    ],
)
def test_an_utterance_that_is_only_a_number(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sure, it is 4.539, 5.87, 6.36, 2.1486", "Sure, it is [CARD]"),  # seen from the streaming ASR
        ("It costs 39.99, 49.99, 59.99, 69.99 a month", "It costs 39.99, 49.99, 59.99, 69.99 a month"),
        ("versions 2.5, 3.1 and 4.0", "versions 2.5, 3.1 and 4.0"),
        ("rated 4.5, 3.2, 4.8, 5.0 stars", "rated 4.5, 3.2, 4.8, 5.0 stars"),
    ],
)
def test_digit_groups_written_as_decimals(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected
