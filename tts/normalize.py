"""Text normalisation for speech: what a phone agent would read aloud, deterministically.

Money, times, dates, percentages, ordinals and plain numbers become words;
phone, order and account numbers are read digit by digit in groups; common
abbreviations, units, e-mail addresses and web addresses are spelled for the ear.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
        "twelve": "twelfth"}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_MONTH_ABBR = {m[:3].lower(): m for m in _MONTHS} | {"sept": "September"}
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence")}
_ABBREVIATIONS = {
    "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Dr.": "Doctor", "St.": "Street", "Ave.": "Avenue",
    "Rd.": "Road", "approx.": "approximately", "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera",
    "vs.": "versus", "no.": "number", "No.": "number", "Mon.": "Monday", "Tue.": "Tuesday", "Wed.": "Wednesday",
    "Thu.": "Thursday", "Fri.": "Friday", "Sat.": "Saturday", "Sun.": "Sunday",
}
_UNITS = {"Mbps": "megabits per second", "Gbps": "gigabits per second", "GB": "gigabytes", "MB": "megabytes",
          "TB": "terabytes", "km": "kilometers", "kg": "kilograms", "min": "minutes", "mins": "minutes",
          "hr": "hours", "hrs": "hours", "h": "hours", "sec": "seconds", "secs": "seconds"}


def number_words(n: int) -> str:
    """0 <= n < 10**12 in English words ("one hundred and five")."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            high, rest = divmod(n, size)
            joiner = " and " if 0 < rest < 100 else " "
            return f"{number_words(high)} {name}" + (f"{joiner}{number_words(rest)}" if rest else "")
    return str(n)


def ordinal_words(n: int) -> str:
    """1 -> "first", 22 -> "twenty-second"."""
    words = number_words(n)
    head, _, last = words.rpartition("-") if "-" in words else words.rpartition(" ")
    sep = "-" if "-" in words else " "
    if last in _ORD:
        last = _ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}{sep}{last}" if head else last


def digits(text: str, group: int = 0) -> str:
    """Read digits one by one ("4 0 7" -> "four oh seven" style, zero as "zero"), grouped with commas."""
    ds = [c for c in text if c.isdigit()]
    words = [_ONES[int(d)] for d in ds]
    if group and len(words) > group:
        chunks = [" ".join(words[i : i + group]) for i in range(0, len(words), group)]
        return ", ".join(chunks)
    return " ".join(words)


def _year(n: int) -> str:
    if 2000 <= n < 2010:
        return number_words(n)
    if 1100 <= n < 2100:
        high, low = divmod(n, 100)
        tail = "hundred" if low == 0 else (f"oh {_ONES[low]}" if low < 10 else number_words(low))
        return f"{number_words(high)} {tail}"
    return number_words(n)


def _money(m: re.Match[str]) -> str:
    symbol, whole, frac, scale = m.group("sym"), m.group("whole"), m.group("frac"), m.group("scale")
    one, many, cent, cents = _CURRENCY[symbol]
    amount = int(whole.replace(",", ""))
    if scale:
        words = number_words(amount) + f" {'million' if scale.lower().startswith('m') else 'thousand'}"
        return f"{words} {many}"
    out = f"{number_words(amount)} {one if amount == 1 else many}"
    if frac and int(frac):
        c = int(frac.ljust(2, "0")[:2])
        out += f" and {number_words(c)} {cent if c == 1 else cents}"
    return out


def _time(m: re.Match[str]) -> str:
    hour, minute, suffix = int(m.group("h")), int(m.group("m") or 0), (m.group("ampm") or "").lower()
    if hour > 23 or minute > 59:
        return m.group(0)
    if not suffix and hour == 12 and minute == 0:
        return "noon"
    if not suffix and hour == 0 and minute == 0:
        return "midnight"
    if not suffix and hour > 12:
        hour, suffix = hour - 12, "pm"  # callers hear "five p m", not "seventeen hundred"
    words = number_words(hour)
    if minute == 0:
        words += "" if suffix else " o'clock"
    elif minute < 10:
        words += f" oh {_ONES[minute]}"
    else:
        words += f" {number_words(minute)}"
    if suffix:
        words += " a m" if suffix.startswith("a") else " p m"
    end = m.end()
    rest = m.string[end:].lstrip()
    if m.group(0).endswith(".") and (not rest or rest[0].isupper()):
        words += "."  # the abbreviation's dot also ended the sentence
    return words


def _date_iso(m: re.Match[str]) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return f"{_MONTHS[mo - 1]} {ordinal_words(d)}, {_year(y)}"


def _date_month(m: re.Match[str]) -> str:
    month = _MONTH_ABBR[m.group("mon")[:4].lower().rstrip(".")[:3] if m.group("mon")[:4].lower() != "sept"
                        else "sept"]
    day = int(m.group("day"))
    year = m.group("year")
    return f"{month} {ordinal_words(day)}" + (f", {_year(int(year))}" if year else "")


def _email(m: re.Match[str]) -> str:
    user, domain = m.group(0).split("@", 1)
    spoken_domain = domain.replace(".", " dot ")
    return f"{user.replace('.', ' dot ').replace('_', ' underscore ')} at {spoken_domain}"


def _url(m: re.Match[str]) -> str:
    text = re.sub(r"^https?://", "", m.group(0)).rstrip("/")
    text = text.replace("www.", "w w w dot ", 1)
    return text.replace(".", " dot ").replace("/", " slash ")


_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), _email),
    (re.compile(r"\b(?:https?://|www\.)\S+|\b[\w-]+\.(?:com|org|net|example|io)(?:/\S*)?\b"), _url),
    # Order, account, reference and ticket numbers: digit by digit, grouped in threes.
    (re.compile(r"(?i)\b(order|account|reference|ref|ticket|case|invoice)(\s+(?:number|no\.?|#)?\s*)#?([A-Z]*\d[\dA-Z-]{3,})"),
     lambda m: f"{m.group(1)}{m.group(2)}" + _spell_code(m.group(3))),
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), _date_iso),
    (re.compile(r"(?i)\b(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
                r"sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?"
                r"(?:,?\s+(?P<year>\d{4}))?\b"), _date_month),
    # Phone numbers: digit by digit in the caller's grouping.
    (re.compile(r"(?<!\w)\+?\d[\d\s().-]{6,}\d(?!\w)"),
     lambda m: ", ".join(digits(g) for g in re.findall(r"\d+", m.group(0)))),
    (re.compile(r"(?P<sym>[$€£])(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d{1,2}))?(?:\s*(?P<scale>million|m|k|thousand)\b)?",
                re.IGNORECASE), _money),
    (re.compile(r"(?i)\b(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>a\.?m\.?|p\.?m\.?)(?=\W|$)"), _time),
    (re.compile(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})\b(?P<ampm>)"), _time),
    (re.compile(r"\b(\d+(?:\.\d+)?)\s?%"), lambda m: f"{_plain(m.group(1))} percent"),
    (re.compile(r"\b(\d+)(st|nd|rd|th)\b"), lambda m: ordinal_words(int(m.group(1)))),
    (re.compile(r"\b(\d+(?:\.\d+)?)\s?(Mbps|Gbps|GB|MB|TB|km|kg|mins?|hrs?|secs?)\b"),
     lambda m: f"{_plain(m.group(1))} {_UNITS[m.group(2)]}"),
    (re.compile(r"\b(1[1-9]\d\d|20\d\d)s\b"), lambda m: _year(int(m.group(1))).replace("ty", "ties")),
    (re.compile(r"\b\d{1,3}(?:,\d{3})+(?:\.\d+)?\b|\b\d+(?:\.\d+)?\b"), lambda m: _plain(m.group(0))),
]


def _spell_code(code: str) -> str:
    parts = []
    for ch in code:
        if ch.isdigit():
            parts.append(_ONES[int(ch)])
        elif ch.isalpha():
            parts.append(ch.upper())
    groups = [" ".join(parts[i : i + 3]) for i in range(0, len(parts), 3)]
    return ", ".join(groups)


def _plain(text: str) -> str:
    grouped = "," in text
    text = text.replace(",", "")
    if "." in text:
        whole, frac = text.split(".", 1)
        return f"{number_words(int(whole))} point {' '.join(_ONES[int(d)] for d in frac)}"
    if len(text) > 12:
        return digits(text)
    if not grouped and len(text) == 4 and 1100 <= int(text) < 2100:
        return _year(int(text))
    return number_words(int(text))


def normalize_for_speech(text: str) -> str:
    """The text as it should be spoken."""
    for short, full in _ABBREVIATIONS.items():
        text = re.sub(rf"(?<!\w){re.escape(short)}(?=\s|$)", full, text)
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    # "eight AM" from text that was already spelled out for speech
    text = re.sub(r"\b([a-z]+) ([AaPp])\.?[Mm]\.?(?=\W|$)", lambda m: f"{m.group(1)} {m.group(2).lower()} m", text)
    text = text.replace("&", " and ").replace("#", " number ").replace("@", " at ")
    return re.sub(r"\s{2,}", " ", text).strip()
