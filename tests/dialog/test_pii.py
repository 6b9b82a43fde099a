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
