"""PII redaction for transcripts, logs, the call store and everything the LLM reads."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
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
# 13-19 digits with optional single spaces or dashes between them
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# "card number is 4532, 0151, ..." : ASR often drops or mishears a digit, so a number said right after the
# word "card" is a card whatever its checksum (digits with spaces, commas, dashes or dots between groups)
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_UK_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b", re.IGNORECASE)
# "ID number", "passport number", "social security number" followed by an identifier
_LABELLED_ID = re.compile(
    r"(?P<label>\b(?:social security|national (?:id|insurance)|passport|id|identity card|tax id|ssn)"
    r"(?:\s+(?:number|no\.?|#))?(?:\s+is)?[:\s#]*)(?P<value>[A-Z0-9][A-Z0-9 -]{4,18}[0-9][A-Z0-9]?)\b",
    re.IGNORECASE,
)
_PHONE = re.compile(
    r"(?<![\w$.:])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,4}(?![\w%]|[.:]\d)"
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SPOKEN_TOKEN = r"(?:zero|oh|nought|one|two|three|four|five|six|seven|eight|nine|niner|(?:double|triple)\s+\w+)"
_SPOKEN_RUN = re.compile(rf"\b{_SPOKEN_TOKEN}(?:[\s,.-]+{_SPOKEN_TOKEN}){{3,}}\b", re.IGNORECASE)
_LABELLED_CARD = re.compile(
    r"\b(?:card|credit card|debit card)(?:\s+(?:number|no\.?|#|details|digits))?(?:\s+(?:is|are|ending in))?[:\s#,]*"
    rf"(?P<value>\d(?:[\s,.-]{{0,2}}\d){{3,22}}(?!\d)|{_SPOKEN_TOKEN}(?:[\s,.-]+{_SPOKEN_TOKEN}){{3,}}\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One piece of PII found in a text."""

    kind: str
    start: int
    end: int


def spoken_digits(run: str) -> str:
    """'four five double three oh' -> '45330'."""
    out: list[str] = []
    words = re.split(r"[\s,.-]+", run.lower())
    i = 0
    while i < len(words):
        word = words[i]
        repeat = {"double": 2, "triple": 3}.get(word)
        if repeat and i + 1 < len(words) and words[i + 1] in DIGIT_WORDS:
            out.append(DIGIT_WORDS[words[i + 1]] * repeat)
            i += 2
            continue
        if word in DIGIT_WORDS:
            out.append(DIGIT_WORDS[word])
        i += 1
    return "".join(out)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


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

        scans: list[tuple[str, Callable[[str], Iterable[tuple[str, int, int]]]]] = [
            ("email", self._emails),
            ("card", self._cards),
            ("national_id", self._national_ids),
            ("phone", self._phones),
            ("spoken_digits", self._spoken),
        ]
        for _, scan in scans:
            for kind, start, end in scan(text):
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
    def _emails(text: str) -> Iterable[tuple[str, int, int]]:
        for m in _EMAIL.finditer(text):
            yield "email", m.start(), m.end()

    @staticmethod
    def _cards(text: str) -> Iterable[tuple[str, int, int]]:
        for m in _CARD.finditer(text):
            digits = _digits(m.group(0))
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                yield "card", m.start(), m.end()
        for m in _SPOKEN_RUN.finditer(text):
            digits = spoken_digits(m.group(0))
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                yield "card", m.start(), m.end()
        for m in _LABELLED_CARD.finditer(text):
            yield "card", m.start("value"), m.end("value")

    @staticmethod
    def _national_ids(text: str) -> Iterable[tuple[str, int, int]]:
        for pattern in (_SSN, _UK_NINO):
            for m in pattern.finditer(text):
                yield "national_id", m.start(), m.end()
        for m in _LABELLED_ID.finditer(text):
            value = m.group("value").rstrip(" -")
            if sum(ch.isdigit() for ch in value) >= 4:
                yield "national_id", m.start("value"), m.start("value") + len(value)

    @staticmethod
    def _phones(text: str) -> Iterable[tuple[str, int, int]]:
        for m in _PHONE.finditer(text):
            raw = m.group(0).rstrip(" .-")
            digits = _digits(raw)
            if 7 <= len(digits) <= 15 and not _ISO_DATE.match(raw):
                yield "phone", m.start(), m.start() + len(raw)

    @staticmethod
    def _spoken(text: str) -> Iterable[tuple[str, int, int]]:
        for m in _SPOKEN_RUN.finditer(text):
            if len(spoken_digits(m.group(0))) >= 4:
                yield "spoken_digits", m.start(), m.end()
