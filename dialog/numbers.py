"""Numbers as words and back: speech output, spoken digit runs, and fact checks."""

from __future__ import annotations

import re

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}

# Words a caller uses for single digits when reading a number aloud.
DIGIT_WORDS = {w: str(i) for i, w in enumerate(ONES[:10])} | {"oh": "0", "o": "0", "nought": "0", "niner": "9"}
WORD_VALUES = {w: i for i, w in enumerate(ONES)} | {w: 10 * i for i, w in enumerate(TENS) if w}


def to_words(n: int) -> str:
    """An integer in English words: 1234 -> 'one thousand two hundred thirty-four'."""
    if n < 0:
        return "minus " + to_words(-n)
    if n < 20:
        return ONES[n]
    if n < 100:
        tens, rest = divmod(n, 10)
        return TENS[tens] + (f"-{ONES[rest]}" if rest else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{ONES[hundreds]} hundred" + (f" {to_words(rest)}" if rest else "")
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{to_words(head)} {name}" + (f" {to_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """1 -> 'first', 21 -> 'twenty-first'."""
    words = to_words(n)
    head, sep, last = words.rpartition("-") if "-" in words else words.rpartition(" ")
    if last in ORDINALS:
        last = ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}{sep}{last}" if sep else last


def digits_to_words(digits: str) -> str:
    """'0800' -> 'oh eight oh oh': how people read phone numbers."""
    return " ".join("oh" if d == "0" else ONES[int(d)] for d in digits if d.isdigit())


_WORD_NUMBER = re.compile(
    r"\b(?:(?:" + "|".join(TENS[2:]) + r")(?:[- ](?:" + "|".join(ONES[1:10]) + r"))?|"
    + "|".join(ONES[2:]) + r")(?:\s+hundred(?:\s+and)?(?:\s+\w+(?:-\w+)?)?)?\b",
    re.IGNORECASE,
)


def words_to_number(phrase: str) -> int | None:
    """'twenty-nine' -> 29, 'two hundred fifty' -> 250; None when it is not a number phrase."""
    total = 0
    current = 0
    seen = False
    for word in re.split(r"[\s-]+", phrase.lower().strip()):
        if not word or word == "and":
            continue
        if word in WORD_VALUES:
            current += WORD_VALUES[word]
            seen = True
        elif word == "hundred":
            current = max(current, 1) * 100
            seen = True
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
            seen = True
        else:
            return None
    return total + current if seen else None


def find_word_numbers(text: str) -> list[tuple[int, int, int]]:
    """Spans of number words ('two', 'forty-five') as (start, end, value); 'one' is skipped (a pronoun too)."""
    out: list[tuple[int, int, int]] = []
    for m in _WORD_NUMBER.finditer(text):
        phrase = m.group(0)
        value = words_to_number(phrase)
        if value is None:
            # a trailing non-number word was swallowed by the optional group: drop it
            phrase = phrase.rsplit(" ", 1)[0]
            value = words_to_number(phrase)
        if value is not None:
            out.append((m.start(), m.start() + len(phrase), value))
    return out


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum that every payment card number passes."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0
