"""Text for the ear: no markdown, short sentences, numbers, prices and times written to be spoken."""

from __future__ import annotations

import re

from dialog.numbers import digits_to_words, ordinal_words, to_words

_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "mr.", "mrs.", "ms.", "dr.", "st.", "a.m.", "p.m.", "no.")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_DAYS = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
         "sat": "Saturday", "sun": "Sunday"}
_MONTHLY = {"mo": "a month", "month": "a month", "yr": "a year", "year": "a year", "day": "a day", "week": "a week"}


def strip_markdown(text: str) -> str:
    """Plain prose: drops emphasis, headings, list bullets, code marks and link targets."""
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(?m)^\s{0,3}#{1,6}\s*", "", text)
    text = re.sub(r"(?m)^\s*(?:[-*+•]|\d+[.)])\s+", "", text)
    text = re.sub(r"[*_`]{1,3}", "", text)
    text = re.sub(r"\s*\n+\s*", " ", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of plain text; decimals, times and common abbreviations do not end one."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        before = text[start:end].lower()
        if before.endswith(_ABBREVIATIONS):
            continue
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


def complete_sentence_end(text: str) -> int:
    """Index just past the first finished sentence in streamed text, or -1 while it is still open."""
    for m in _SENTENCE_END.finditer(text):
        if m.end() >= len(text):
            return -1  # "3." may become "3.5": wait for what follows
        if text[: m.end()].lower().endswith(_ABBREVIATIONS):
            continue
        return m.end()
    return -1


def _time_words(hour: int, minute: int, suffix: str | None) -> str:
    if suffix is None:
        suffix = "AM" if hour < 12 else "PM"
        hour = hour % 12 or 12
    spoken = to_words(hour)
    if minute:
        spoken += " " + (f"oh {to_words(minute)}" if minute < 10 else to_words(minute))
    return f"{spoken} {suffix.upper().replace('.', '')}"


def _price(m: re.Match[str]) -> str:
    whole = int(m.group(1).replace(",", ""))
    cents = int((m.group(2) or "0").ljust(2, "0")[:2])
    unit = "dollar" if whole == 1 else "dollars"
    text = f"{to_words(whole)} {unit}"
    if cents:
        text += f" and {to_words(cents)} cent" + ("" if cents == 1 else "s")
    return text


def _number(m: re.Match[str]) -> str:
    raw = m.group(0).replace(",", "")
    if "." in raw:
        whole, frac = raw.split(".", 1)
        return f"{to_words(int(whole))} point {' '.join(to_words(int(d)) for d in frac)}"
    if len(raw) > 1 and raw.startswith("0"):
        return digits_to_words(raw)
    return to_words(int(raw))


def for_speech(text: str) -> str:
    """Rewrite text so a TTS voice reads it naturally: prices, times, ranges, phone numbers, ordinals."""
    text = strip_markdown(text)
    text = text.replace("&", " and ").replace("24/7", "twenty-four seven")
    text = re.sub(r"\be\.g\.", "for example", text, flags=re.IGNORECASE)
    text = re.sub(r"\bi\.e\.", "that is", text, flags=re.IGNORECASE)
    # web and mail addresses: brightline.example/status -> brightline dot example slash status
    text = re.sub(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]{2,}(?:\.[a-z][\w-]+)+(?:/[\w/-]*)?(?=[\s,;:)]|\.?$|\.\s)",
                  lambda m: m.group(0).replace("@", " at ").replace(".", " dot ").replace("/", " slash ")
                  if re.search(r"[a-z]\.[a-z]", m.group(0)) else m.group(0), text)
    # day ranges: Mon-Fri -> Monday to Friday
    text = re.sub(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\.?\s*[-–]\s*(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\.?",
                  lambda m: f"{_DAYS[m.group(1).lower()]} to {_DAYS[m.group(2).lower()]}", text)
    text = re.sub(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\b\.?", lambda m: _DAYS[m.group(1).lower()], text)
    # phone numbers: read digit by digit, groups separated by a pause
    text = re.sub(r"(?<![\w$.])(?:\+\d{1,3}[ -])?\d{3,4}(?:[ -]\d{3,4}){1,3}(?![\w.]\d)",
                  lambda m: ", ".join(digits_to_words(g) for g in re.split(r"[ -]", m.group(0).lstrip("+"))), text)
    # prices, optionally per period
    text = re.sub(r"\$(\d[\d,]*)(?:\.(\d{1,2}))?(?:\s*(?:/|per\s+)\s*(mo|month|yr|year|day|week)\b)?",
                  lambda m: _price(m) + (f" {_MONTHLY[m.group(3)]}" if m.group(3) else ""), text)
    # ranges: 5-7, 9 a.m.-5 p.m. -> "to" (phone numbers are already words)
    text = re.sub(r"(?<=[\dmM.])\s*[-–]\s*(?=\d)", " to ", text)
    # times: 8:30 PM, 8 a.m., 20:00; a final "p.m." keeps its full stop
    text = re.sub(r"\b(\d{1,2})(?::(\d{2}))?\s*([AaPp]\.?[Mm])(\.?)(?=\W|$)(\s+[A-Z]|\s*$)?",
                  lambda m: _time_words(int(m.group(1)), int(m.group(2) or 0), m.group(3))
                  + ("." if m.group(4) and m.group(5) is not None else "") + (m.group(5) or ""), text)
    text = re.sub(r"\b([01]?\d|2[0-3]):([0-5]\d)\b",
                  lambda m: _time_words(int(m.group(1)), int(m.group(2)), None), text)
    text = re.sub(r"\b(\d+)%", lambda m: f"{to_words(int(m.group(1)))} percent", text)
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal_words(int(m.group(1))), text)
    text = re.sub(r"\b\d{1,3}(?:,\d{3})+(?:\.\d+)?\b|\b\d+(?:\.\d+)?\b", _number, text)
    text = re.sub(r"\s*/\s*", " or ", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def shorten(text: str, max_words: int = 30) -> str:
    """At most max_words words, cut at a sentence or clause end where possible."""
    words = text.split()
    if len(words) <= max_words:
        return text.strip()
    cut = " ".join(words[:max_words])
    for mark in (". ", "; ", ", "):
        idx = cut.rfind(mark)
        if idx > len(cut) // 2:
            return cut[: idx].rstrip(",;") + "."
    return cut.rstrip(",;") + "."
