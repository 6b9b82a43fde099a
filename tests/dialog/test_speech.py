"""Text for the ear: numbers, prices, times, ranges, markdown, sentence splitting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialog.numbers import ordinal_words, to_words, words_to_number
from dialog.speech import complete_sentence_end, for_speech, shorten, split_sentences, strip_markdown


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Fiber 500 costs $39.99/month.",
         "Fiber five hundred costs thirty-nine dollars and ninety-nine cents a month."),
        ("Open Mon-Fri 8 AM to 8 PM.", "Open Monday to Friday eight AM to eight PM."),
        ("Sat 9:30 a.m. - 5 p.m.", "Saturday nine thirty AM to five PM."),
        ("Support closes at 20:00.", "Support closes at eight PM."),
        ("Refunds take 5-7 business days.", "Refunds take five to seven business days."),
        ("Bills are issued on the 1st.", "Bills are issued on the first."),
        ("Call 0800 555 0199.", "Call oh eight oh oh, five five five, oh one nine nine."),
        ("Up to 3% once a year, 24/7.", "Up to three percent once a year, twenty-four seven."),
        ("See brightline.example/status.", "See brightline dot example slash status."),
        ("A fee of $1 or $2.50.", "A fee of one dollar or two dollars and fifty cents."),
        ("**Bold** and `code`", "Bold and code"),
    ],
)
def test_for_speech(text: str, spoken: str) -> None:
    assert for_speech(text) == spoken


def test_no_digits_left_for_the_voice() -> None:
    text = "Fiber 1000 costs $49.99 a month, speeds up to 1,000 Mbps, 12-month contract, 2.5 hours."
    assert not any(ch.isdigit() for ch in for_speech(text))


def test_strip_markdown_lists() -> None:
    assert strip_markdown("# Title\n- one\n- two\n1. three") == "Title one two three"


def test_sentences() -> None:
    assert split_sentences("It costs $29.99 a month. Open at 8 a.m. daily! OK? yes") == [
        "It costs $29.99 a month.", "Open at 8 a.m. daily!", "OK?", "yes"]
    assert complete_sentence_end("It costs 29.") == -1  # may continue as 29.99
    assert complete_sentence_end("It costs 29.99 a month. Next") == len("It costs 29.99 a month.")
    assert complete_sentence_end("Open at 8 a.m. daily") == -1


def test_shorten() -> None:
    long = "word " * 50
    assert len(shorten(long, 10).split()) <= 10
    assert shorten("Short one.", 10) == "Short one."


@given(st.integers(min_value=0, max_value=999_999))
def test_words_round_trip(n: int) -> None:
    assert words_to_number(to_words(n)) == n


def test_ordinals() -> None:
    assert [ordinal_words(n) for n in (1, 2, 3, 12, 21, 30)] == [
        "first", "second", "third", "twelfth", "twenty-first", "thirtieth"]
