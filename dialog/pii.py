"""PII redaction for transcripts, logs, the call store and everything the LLM reads.

Speech recognisers write a number read aloud in many ways: "4532 0151 1283 0366",
"4-5-3-2-0-1-5-1...", "4532, 0151, ...", "5, 5, 5, 0, 1, 4, 3", "2-0-2, 5-5-5, 0-1-4-3",
"five five five oh one four three", or a mix of words and digits. All of them are one
*digit run* here: digit groups and digit words joined by spaces, commas, hyphens, dashes
or ellipses (and sentence stops when the run reads digit by digit or is a valid card).
Each run is then classified by how many digits it holds and how it is written, so that
prices ("$39.99"), times ("8:30", "8 PM"), dates ("2024-05-01", "May 5, 2024"), product
numbers ("Fiber 500") and short counts ("3 days") stay as they are.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from dialog.numbers import DIGIT_WORDS, luhn_ok
from dialog.options import PII_KINDS

PLACEHOLDERS = {
    "card": "[CARD]",
    "phone": "[PHONE]",
    "email": "[EMAIL]",
    "national_id": "[ID]",
    "spoken_digits": "[NUMBER]",
}

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_UK_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b", re.IGNORECASE)
# "ID number", "passport number", "social security number" followed by an identifier
_LABELLED_ID = re.compile(
    r"(?P<label>\b(?:social security|national (?:id|insurance)|passport|id|identity card|tax id|ssn)"
    r"(?:\s+(?:number|no\.?|#))?(?:\s+is)?[:\s#]*)(?P<value>[A-Z0-9][A-Z0-9 -]{4,18}[0-9][A-Z0-9]?)\b",
    re.IGNORECASE,
)
# "555.123.4567": dots between digit groups (the digit runs below do not cross a dot without a space)
_DOTTED_PHONE = re.compile(r"(?<![\w$.:,])(?:\+\d{1,3}[ .])?\d{2,4}(?:\.\d{2,4}){2,3}(?![\w%]|[.:]\d)")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMERIC_DATE = re.compile(r"^(?:\d{1,2}-\d{1,2}-(?:\d{2}|\d{4})|\d{4}-\d{1,2}-\d{1,2})$")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+$")
# a date inside a longer run of digits ("on 2000-01-25, 24,466 customers") ends the number before it
_DATE_INSIDE = re.compile(r"(?<!\d)(?:19|20)\d{2}-\d{1,2}-\d{1,2}(?!\d)|(?<!\d)\d{1,2}/\d{1,2}/\d{2,4}(?!\d)")
# a text that is one number (marked #) with at most a filler word or two around it
_FILLER = r"(?:uh|um|er|erm|so|and|then|ok|okay|yes|yeah|right|it's|it is|that's|that is|the rest is|next)"
_ONLY_A_NUMBER = re.compile(rf"[\s,.!?-]*(?:{_FILLER}[\s,.!?-]+){{0,2}}#[\s,.!?-]*(?:{_FILLER}[\s,.!?]*)?",
                            re.IGNORECASE)

_WORD = r"(?:zero|oh|nought|one|two|three|four|five|six|seven|eight|nine|niner)"
_SPOKEN_TOKEN = rf"(?:(?:double|triple)[\s-]+(?:{_WORD}|\d)(?!\w)|{_WORD}(?!\w))"
# one token of a digit run: a digit group, "(202)", a digit word, "double five"
_TOKEN = rf"(?:\(\d{{1,4}}\)|\d+(?![\w%])|{_SPOKEN_TOKEN})"
# between tokens: spaces, commas, hyphens and dashes, ellipses; "wide" runs also cross a full stop
_TIGHT_SEP = r"(?:[ \t]*(?:[,\-\u2013\u2014]|\.{2,3}|\u2026)[ \t]*|[ \t]+)"
_WIDE_SEP = rf"(?:{_TIGHT_SEP}|[ \t]*\.[ \t]+|\s*\n\s*)"
_RUN_START = r"(?<![\w$\u00a3\u20ac.,:/#+\-])(?:\+[ \t]?)?"
_RUN_END = r"(?![\w%])(?![.:,]\d)"
_WIDE_RUN = re.compile(rf"{_RUN_START}{_TOKEN}(?:{_WIDE_SEP}{_TOKEN})*{_RUN_END}", re.IGNORECASE)
_TIGHT_RUN = re.compile(rf"{_RUN_START}{_TOKEN}(?:{_TIGHT_SEP}{_TOKEN})*{_RUN_END}", re.IGNORECASE)
# Whisper sometimes writes digit groups as decimals: "4.539, 5.87, 6.36, 2.1486"
_DECIMAL_RUN = re.compile(
    rf"{_RUN_START}(?:\d+\.\d+(?![\w%])|{_TOKEN})(?:{_TIGHT_SEP}(?:\d+\.\d+(?![\w%])|{_TOKEN}))*{_RUN_END}",
    re.IGNORECASE)
_TOKENS = re.compile(rf"\(\d+\)|\d+|(?:double|triple)[\s-]+(?:{_WORD}|\d)|{_WORD}", re.IGNORECASE)
_SPOKEN_RUN = re.compile(rf"(?<!\w){_SPOKEN_TOKEN}(?:[\s,.-]+{_SPOKEN_TOKEN}){{3,}}", re.IGNORECASE)
_LABELLED_CARD = re.compile(
    r"\b(?:card|credit card|debit card)(?:\s+(?:number|no\.?|#|details|digits))?(?:\s+(?:is|are|ending in))?[:\s#,]*"
    rf"(?P<value>{_TOKEN}(?:{_WIDE_SEP}{_TOKEN})*{_RUN_END})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One piece of PII found in a text."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class DigitRun:
    """Digits said or written in a row, however they were separated."""

    start: int
    end: int
    text: str
    groups: tuple[str, ...]  # the digits of each token ("double five" -> "55")
    words: bool  # some digits were words
    decimal: bool = False  # digit groups written as decimals, 13 digits or more: a card or account number

    @property
    def digits(self) -> str:
        """Every digit in order."""
        return "".join(self.groups)

    @property
    def spelled(self) -> bool:
        """Read digit by digit ("5, 5, 5", "five five", "1-1-1-1")."""
        return all(len(g) == 1 for g in self.groups)

    @property
    def single_groups(self) -> int:
        """How many tokens are one digit."""
        return sum(len(g) == 1 for g in self.groups)


def spoken_digits(run: str) -> str:
    """'four five double three oh' -> '45330'."""
    return "".join(_token_digits(t) for t in _TOKENS.findall(run))


def _token_digits(token: str) -> str:
    low = token.lower()
    if low[0] == "(":
        return low[1:-1]
    if low[0].isdigit():
        return low
    parts = re.split(r"[\s-]+", low)
    if len(parts) == 2 and parts[0] in ("double", "triple"):
        digit = parts[1] if parts[1].isdigit() else DIGIT_WORDS.get(parts[1], "")
        return digit * (2 if parts[0] == "double" else 3)
    return DIGIT_WORDS.get(low, "")


def _run(text: str, start: int, end: int) -> DigitRun:
    span = text[start:end]
    groups: list[str] = []
    words = False
    for token in _TOKENS.findall(span):
        digits = _token_digits(token)
        if not token[0].isdigit() and token[0] != "(":
            words = True
            if token.lower().startswith(("double", "triple")):
                groups.extend(digits)  # "double five" is two digits read one by one
                continue
        groups.append(digits)
    return DigitRun(start, end, span, tuple(groups), words)


def _wide_ok(run: DigitRun) -> bool:
    """Whether a run that crosses a full stop is still one number (read digit by digit, or a card)."""
    n = len(run.digits)
    if (run.spelled and n >= 7) or (13 <= n <= 19 and luhn_ok(run.digits)):
        return True
    # three or more short groups, each stopped with a full stop: "202. 555. 0143.", "111. 11. 1-1-1-1"
    chunks = [_run(c, 0, len(c)) for c in re.split(r"[ \t]*\.[ \t]+|\s*\n\s*", run.text)]
    return (len(chunks) >= 3 and _phone_shaped(run)
            and all(c.spelled or (len(c.groups) == 1 and 2 <= len(c.digits) <= 4) for c in chunks))


def digit_runs(text: str) -> list[DigitRun]:
    """Every run of digits (as digits or digit words) in the text, in order."""
    runs: list[DigitRun] = []
    # Decimals count only in a run as long as a card: "39.99, 49.99" are prices.
    for m in _DECIMAL_RUN.finditer(text):
        run = _run(text, m.start(), m.end())
        fractions = re.findall(r"\d\.(\d+)", run.text)
        # ... and prices have two decimals: a list of them is not a number read out
        if fractions and any(len(f) != 2 for f in fractions) and len(run.digits) >= 13:
            runs.append(DigitRun(run.start, run.end, run.text, run.groups, run.words, decimal=True))
    taken = [(r.start, r.end) for r in runs]
    for m in _WIDE_RUN.finditer(text):
        if any(m.start() < e and s < m.end() for s, e in taken):
            continue
        whole = _run(text, m.start(), m.end())
        tight = [_run(text, t.start(), t.end()) for t in _TIGHT_RUN.finditer(text, m.start(), m.end())]
        if len(tight) == 1 and (tight[0].start, tight[0].end) == (m.start(), m.end()):
            runs.append(whole)
        elif _wide_ok(whole):
            runs.append(whole)
        else:
            runs.extend(tight)
    return sorted((piece for run in runs for piece in _around_dates(text, run)), key=lambda r: r.start)


def _around_dates(text: str, run: DigitRun) -> list[DigitRun]:
    """A run with a date inside it, split into the date and the runs before and after it (each judged alone:
    "2000-01-25, 24,466" is a date and a count; "1990-05-01, 4539 5787 6362 1486" still holds a card)."""
    dates = list(_DATE_INSIDE.finditer(text, run.start, run.end))
    if not dates or (len(dates) == 1 and (dates[0].start(), dates[0].end()) == (run.start, run.end)):
        return [run]
    out: list[DigitRun] = []
    pos = run.start
    for d in dates:
        out.extend(_run(text, m.start(), m.end()) for m in _TIGHT_RUN.finditer(text, pos, d.start()))
        out.append(_run(text, d.start(), d.end()))
        pos = d.end()
    out.extend(_run(text, m.start(), m.end()) for m in _TIGHT_RUN.finditer(text, pos, run.end))
    return out


def _phone_shaped(run: DigitRun) -> bool:
    """Digit groups written the way phone numbers are, and not a list of round numbers or years."""
    n = len(run.digits)
    if not 7 <= n <= 15:
        return False
    if run.spelled or run.single_groups >= 3:
        return True  # read out digit by digit: nobody says a price or a date like that
    if _ISO_DATE.match(run.text) or _NUMERIC_DATE.match(run.text) or _THOUSANDS.match(run.text):
        return False
    multi = [g for g in run.groups if len(g) > 1]
    if len(run.groups) == 1:
        return True  # one unbroken number of 7-15 digits
    if all(len(g) == 4 and g[:2] in ("19", "20") for g in multi):
        return False  # years: "2019, 2020"
    if all(g.endswith("0") and not g.startswith("0") for g in multi):
        return False  # round numbers: "500, 1000"
    if len(run.groups[-1]) < 3 or any(len(g) > 8 for g in run.groups[1:]):
        return False  # "March 12, 2024, 10 people"
    return True


def _card_shaped(run: DigitRun) -> bool:
    digits = run.digits
    if run.decimal:
        return True
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return True
    # 16-19 digits written with separators: a card with a misheard digit; nothing else is that long
    return len(run.groups) > 1 and 16 <= len(digits) <= 19


def _spoken_shaped(run: DigitRun) -> bool:
    """Four or more digits read one by one ("4 5 3 9", "five five", "453-9"), even if not yet a whole number.

    A caller who pauses between groups gives one turn per group; each group must go on its own.
    """
    if len(run.digits) < 4 or _ISO_DATE.match(run.text) or _NUMERIC_DATE.match(run.text):
        return False
    if run.spelled:
        return True
    if not run.single_groups:
        return False
    # a hyphen next to a single digit: "453-9", "2-0-2, 555" (ranges such as "10-15" have none)
    if re.search(r"(?<!\d)\d\s*-|-\s*\d(?!\d)", run.text):
        return True
    # groups after a single digit with only spaces between: "6 360" (dates have commas: "May 5, 2024")
    return re.fullmatch(r"[\d ]+", run.text) is not None


class Redactor:
    """Replaces PII with placeholders such as [CARD]; which kinds is configurable."""

    def __init__(self, kinds: Iterable[str] = PII_KINDS, placeholders: dict[str, str] | None = None) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}: choose from {', '.join(PII_KINDS)}")
        self.placeholders = {**PLACEHOLDERS, **(placeholders or {})}

    @classmethod
    def for_llm(cls, kinds: Iterable[str] = PII_KINDS) -> Redactor:
        """A redactor that always removes card numbers, whatever else is configured."""
        return cls(set(kinds) | {"card"})

    def find(self, text: str) -> list[Finding]:
        """Every PII span, non-overlapping, in text order."""
        found: list[Finding] = []
        taken: list[tuple[int, int]] = []

        def add(kind: str, start: int, end: int) -> None:
            if any(start < e and s < end for s, e in taken):
                return
            taken.append((start, end))
            found.append(Finding(kind, start, end))

        runs = digit_runs(text)
        scans: list[Callable[[str, list[DigitRun]], Iterable[tuple[str, int, int]]]] = [
            self._emails, self._cards, self._national_ids, self._phones, self._spoken,
        ]
        for scan in scans:
            for kind, start, end in scan(text, runs):
                if kind in self.kinds:
                    add(kind, start, end)
        return sorted(found, key=lambda f: f.start)

    def redact_counted(self, text: str) -> tuple[str, Counter[str]]:
        """The redacted text and how many of each kind were replaced."""
        counts: Counter[str] = Counter()
        parts: list[str] = []
        pos = 0
        for f in self.find(text):
            parts.append(text[pos : f.start])
            parts.append(self.placeholders[f.kind])
            counts[f.kind] += 1
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts), counts

    def redact(self, text: str) -> str:
        """The text with every configured kind of PII replaced by its placeholder."""
        return self.redact_counted(text)[0]

    @staticmethod
    def _emails(text: str, runs: list[DigitRun]) -> Iterator[tuple[str, int, int]]:
        for m in _EMAIL.finditer(text):
            yield "email", m.start(), m.end()

    @staticmethod
    def _cards(text: str, runs: list[DigitRun]) -> Iterator[tuple[str, int, int]]:
        # "card number is 4532, 0151, ...": ASR often drops or mishears a digit, so a number said
        # right after the word "card" is a card whatever its checksum
        for m in _LABELLED_CARD.finditer(text):
            if len(spoken_digits(m.group("value"))) >= 4:
                yield "card", m.start("value"), m.end("value")
        for run in runs:
            if _card_shaped(run):
                yield "card", run.start, run.end

    @staticmethod
    def _national_ids(text: str, runs: list[DigitRun]) -> Iterator[tuple[str, int, int]]:
        for pattern in (_SSN, _UK_NINO):
            for m in pattern.finditer(text):
                yield "national_id", m.start(), m.end()
        for m in _LABELLED_ID.finditer(text):
            value = m.group("value").rstrip(" -")
            if sum(ch.isdigit() for ch in value) >= 4:
                yield "national_id", m.start("value"), m.start("value") + len(value)

    @staticmethod
    def _phones(text: str, runs: list[DigitRun]) -> Iterator[tuple[str, int, int]]:
        for run in runs:
            if not run.words and _phone_shaped(run):
                yield "phone", run.start, run.end
        for m in _DOTTED_PHONE.finditer(text):
            if 7 <= len(re.sub(r"\D", "", m.group(0))) <= 15:
                yield "phone", m.start(), m.end()

    @staticmethod
    def _spoken(text: str, runs: list[DigitRun]) -> Iterator[tuple[str, int, int]]:
        for run in runs:
            if _spoken_shaped(run) or (run.words and len(run.digits) >= 4 and run.single_groups >= 2):
                yield "spoken_digits", run.start, run.end
            elif len(run.groups) == 1 and not run.words and 5 <= len(run.digits) <= 6:
                # One unbroken number of five or six digits: a postcode, an order or account number, or
                # the piece of a card the streaming ASR has heard so far ("... 63621"). Amounts are
                # written with a thousands separator or a currency sign, which a run does not start at.
                yield "spoken_digits", run.start, run.end
            elif len(run.digits) >= 4 and _ONLY_A_NUMBER.fullmatch(text[: run.start] + "#" + text[run.end :]):
                # An utterance that is nothing but a number ("4539."): a caller reading a card or an
                # account number in groups, one turn per group, says exactly this.
                yield "spoken_digits", run.start, run.end
