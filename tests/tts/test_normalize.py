"""Text normalisation for speech."""

from __future__ import annotations

import pytest

from tts.normalize import normalize_for_speech, number_words, ordinal_words


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("It costs $29.99 a month.", "It costs twenty-nine dollars and ninety-nine cents a month."),
        ("Pay €5 or £1.01.", "Pay five euros or one pound and one penny."),
        ("Moving costs $49.", "Moving costs forty-nine dollars."),
        ("We open at 9:30 am and close at 17:00.", "We open at nine thirty a m and close at five p m."),
        ("From 8 AM to 8 PM.", "From eight a m to eight p m."),
        ("At 12:00 and 00:00.", "At noon and midnight."),
        ("On 2026-11-22.", "On November twenty-second, twenty twenty-six."),
        ("Due Nov 3, 2025.", "Due November third, twenty twenty-five."),
        ("Speeds up to 500 Mbps, 20% off.", "Speeds up to five hundred megabits per second, twenty percent off."),
        ("Call 0800 123 4567 now.", "Call zero eight zero zero, one two three, four five six seven now."),
        ("Your order number 48213977 ships.", "Your order number four eight two, one three nine, seven seven ships."),
        ("Ticket #A12-345.", "Ticket number A one two, three four five."),
        ("Dr. Smith on Main St. e.g. today.", "Doctor Smith on Main Street for example today."),
        ("Email help@brightline.example.", "Email help at brightline dot example."),
        ("Visit www.brightline.example/shops today.", "Visit w w w dot brightline dot example slash shops today."),
        ("The 1st and 22nd of May.", "The first and twenty-second of May."),
        ("It takes 3.5 days.", "It takes three point five days."),
        ("In the 1990s we had 1,250 customers.",
         "In the nineteen nineties we had one thousand two hundred and fifty customers."),
        ("from eight AM to eight PM", "from eight a m to eight p m"),
    ],
)
def test_normalize(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


def test_number_words() -> None:
    assert number_words(0) == "zero"
    assert number_words(105) == "one hundred and five"
    assert number_words(2_000_001) == "two million and one"
    assert ordinal_words(12) == "twelfth" and ordinal_words(40) == "fortieth" and ordinal_words(23) == "twenty-third"
