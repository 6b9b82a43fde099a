"""Actions: things the assistant does for the caller (book a visit, check a status), declared beside the KB.

A KB folder may hold ``actions.yaml``: each action has a name, a description and example phrasings (how a
caller asks for it: recognised with the KB's MiniLM embedder), typed slots, a confirmation template and an
HTTP endpoint. ``ActionFlow`` is the per-call state machine (fill the slots by voice or keypad, re-ask once,
confirm, then call); it is pure logic. The call itself goes through an injected ``ActionPort`` (the product
wires an HTTP one), so ``dialog`` decides and never does network I/O of its own.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from dialog.errors import KnowledgeBaseError
from dialog.kb import ACTION_FILES
from dialog.numbers import DIGIT_WORDS

SLOT_TYPES = ("date", "time_slot", "postcode", "digits", "yes_no", "choice")
PII_TYPES = ("postcode", "digits")  # redacted in audits and never logged
METHODS = ("GET", "POST", "PUT", "PATCH")
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_TIME_SLOTS = ("morning", "afternoon", "evening")
ACTION_KEYS = ("name", "description", "examples", "slots", "confirm", "endpoint", "result", "failure", "done")
SLOT_KEYS = ("name", "type", "question", "choices", "min_length", "max_length", "pattern", "example", "pii")
FILE_KEYS = ("base_url", "timeout_s", "match_score", "actions")
DEFAULT_MATCH_SCORE = 0.55  # MiniLM cosine of the caller's words to an example phrasing (with a request cue)


# An action starts only when the caller asks the assistant to do something ("can you book ...", "I'd like to
# ...", "please check ..."); "how do I book ...?" and "is there an outage?" stay questions for the KB.
_REQUEST = re.compile(
    r"\b(?:can|could|would|will)\s+you\b|\bplease\b|\b(?:i'?d|i\s+would)\s+(?:like|love)\b|"
    r"\bi\s+(?:want|need|wanna)\b(?!\s+to\s+know)|\bcan\s+i\s+(?:book|schedule|arrange)\b|"
    r"^\W*(?:(?:ok(?:ay)?|right|so|then)\W+)?(?:book|check|send|text|schedule|arrange|look\s+up|find\s+out|"
    r"get\s+me|sign\s+me)\b", re.I)
_INFO = re.compile(r"^\W*(?:how|what|when|why|where|which|who|does|do|is|are|am)\b|"
                   r"\b(?:how\s+(?:do|can|would|will)\s+i|cost|fee|charge|price)\b", re.I)


def asks_to_do(text: str) -> bool:
    """Whether the caller asks the assistant to do something (not how to do it, or whether something is so)."""
    t = " ".join(text.split())
    return bool(_REQUEST.search(t)) and not _INFO.search(t)


class ActionError(KnowledgeBaseError):
    """actions.yaml is invalid: the message names the file and the field."""


# -- declarations ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotSpec:
    """One piece of information the action needs from the caller."""

    name: str
    type: str
    question: str
    choices: tuple[str, ...] = ()
    min_length: int = 1
    max_length: int = 32
    pattern: str = ""  # postcode: a regex replacing the UK format
    example: str = ""  # said when the value was not understood ("like SW1A 1AA")
    pii: bool = False

    @property
    def personal(self) -> bool:
        """Whether the value is personal data: kept out of logs and audits."""
        return self.pii or self.type in PII_TYPES


@dataclass(frozen=True)
class Endpoint:
    """Where the action is carried out."""

    url: str
    method: str = "POST"
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class ActionSpec:
    """One declared action."""

    name: str
    description: str
    examples: tuple[str, ...]
    slots: tuple[SlotSpec, ...]
    confirm: str
    endpoint: Endpoint
    result: str = ""  # spoken when the response has no `say` (fields: the slots, then the response's keys)
    failure: str = ""  # spoken when the call fails, before the offer of a human
    source: str = ""

    def slot(self, name: str) -> SlotSpec:
        """A slot by name."""
        return next(s for s in self.slots if s.name == name)


@dataclass(frozen=True)
class ActionSet:
    """The actions of a KB folder and how sure a match must be."""

    actions: tuple[ActionSpec, ...] = ()
    match_score: float = DEFAULT_MATCH_SCORE

    def __bool__(self) -> bool:
        return bool(self.actions)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``${NAME}`` and ``${NAME:-default}`` from the environment (a URL's port, say)."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        value = env.get(m.group(1))
        if value:
            return value
        if m.group(2) is not None:
            return m.group(2)
        raise KeyError(m.group(1))

    return _ENV.sub(sub, text)


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]


def load_actions(kb_dir: Path, environ: Mapping[str, str] | None = None) -> ActionSet:
    """The actions declared in a KB folder (none when it has no actions.yaml); ActionError names file and field."""
    for name in ACTION_FILES:
        path = Path(kb_dir) / name
        if path.is_file():
            return parse_actions(path, environ)
    return ActionSet()


def parse_actions(path: Path, environ: Mapping[str, str] | None = None) -> ActionSet:
    """Read and validate one actions file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ActionError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("actions"), list):
        raise ActionError(f"{path}: expected a list under `actions:`")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ActionError(f"{path}: unknown keys {unknown} (known: {', '.join(FILE_KEYS)})")

    def err(where: str, what: str) -> ActionError:
        return ActionError(f"{path}: {where}: {what}")

    base = data.get("base_url") or ""
    if not isinstance(base, str):
        raise err("base_url", "must be a URL such as http://127.0.0.1:8765")
    try:
        base = expand_env(base, environ)
    except KeyError as exc:
        raise err("base_url", f"environment variable {exc} is not set and has no default") from None
    default_timeout = _number(data.get("timeout_s", DEFAULT_TIMEOUT_S), lambda m: err("timeout_s", m))
    match = _number(data.get("match_score", DEFAULT_MATCH_SCORE), lambda m: err("match_score", m))
    if not 0 < match < 1:
        raise err("match_score", "must be between 0 and 1")
    out: list[ActionSpec] = []
    for i, raw in enumerate(data["actions"]):
        where = _entry(raw, f"actions[{i}]", "action", ACTION_KEYS, ("name", "description", "confirm"),
                       "name, description, examples, slots, confirm, endpoint", err)
        name = raw["name"].strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
            raise err(where, "`name` must be a word like book_technician")
        if name in {a.name for a in out}:
            raise err(where, "`name` is used twice")
        examples = raw.get("examples")
        if not isinstance(examples, list) or not examples or not all(isinstance(e, str) and e.strip()
                                                                      for e in examples):
            raise err(where, "`examples` must be a non-empty list of caller phrasings")
        slots = _slots(raw.get("slots", []), _within(err, where))
        names = {s.name for s in slots}
        for key in ("confirm", "result", "failure"):
            template = raw.get(key) or ""
            if not isinstance(template, str):
                raise err(where, f"`{key}` must be text")
            try:
                used = _fields(template)
            except ValueError as exc:
                raise err(where, f"`{key}` is not a valid template ({exc})") from None
            if key != "result":
                missing = [f for f in used if f not in names]
                if missing:
                    raise err(where, f"`{key}` names {missing}, which are not slots of this action")
        out.append(ActionSpec(
            name=name, description=raw["description"].strip(), examples=tuple(e.strip() for e in examples),
            slots=slots, confirm=raw["confirm"].strip(),
            endpoint=_endpoint(raw.get("endpoint"), base, default_timeout, environ,
                               _at(err, f"{where}: endpoint")),
            result=str(raw.get("result") or "").strip(), failure=str(raw.get("failure") or "").strip(),
            source=str(path)))
    return ActionSet(tuple(out), match)


def _within(err: Callable[[str, str], ActionError], where: str) -> Callable[[str, str], ActionError]:
    return lambda inner, what: err(f"{where}: {inner}", what)


def _at(err: Callable[[str, str], ActionError], where: str) -> Callable[[str], ActionError]:
    return lambda what: err(where, what)


def _number(value: Any, err: Callable[[str], ActionError]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise err("must be a positive number")
    return float(value)


def _entry(raw: Any, position: str, kind: str, known: Sequence[str], required: Sequence[str], shape: str,
           err: Callable[[str, str], ActionError]) -> str:
    """Check one declared action or slot: a mapping of known keys with its required texts; returns where it is
    (by name once it has one) for the errors about it."""
    if not isinstance(raw, dict):
        raise err(position, f"must be a mapping with {shape}")
    where = f"{kind} {raw['name']!r}" if isinstance(raw.get("name"), str) else position
    extra = sorted(set(raw) - set(known))
    if extra:
        raise err(where, f"unknown keys {extra} (known: {', '.join(known)})")
    for key in required:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise err(where, f"`{key}` is required (text)")
    return where


def _slots(raw: Any, err: Callable[[str, str], ActionError]) -> tuple[SlotSpec, ...]:
    if not isinstance(raw, list):
        raise err("slots", "must be a list")
    out: list[SlotSpec] = []
    for j, s in enumerate(raw):
        where = _entry(s, f"slots[{j}]", "slot", SLOT_KEYS, ("name", "type", "question"), "name, type, question", err)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s["name"]):
            raise err(where, "`name` must be an identifier like postcode")
        if s["name"] in {x.name for x in out}:
            raise err(where, "`name` is used twice")
        kind = s["type"].strip()
        if kind not in SLOT_TYPES:
            raise err(where, f"`type` {kind!r} is not one of {', '.join(SLOT_TYPES)}")
        choices = s.get("choices")
        if kind == "choice" and (not isinstance(choices, list) or len(choices) < 2):
            raise err(where, "`choices` must list at least two options for type choice")
        if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, str) and c.strip()
                                                                              for c in choices)):
            raise err(where, "`choices` must be a list of words")
        if choices is not None and kind not in ("choice", "time_slot"):
            raise err(where, "`choices` only applies to types choice and time_slot")
        lengths = [s.get("min_length", 1), s.get("max_length", 32)]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lengths) \
                or lengths[0] > lengths[1]:
            raise err(where, "`min_length`/`max_length` must be positive whole numbers, min <= max")
        pattern = s.get("pattern") or ""
        if pattern:
            if kind != "postcode":
                raise err(where, "`pattern` only applies to type postcode")
            try:
                re.compile(str(pattern))
            except re.error as exc:
                raise err(where, f"`pattern` is not a valid regular expression ({exc})") from None
        out.append(SlotSpec(
            name=s["name"], type=kind, question=s["question"].strip(),
            choices=tuple(c.strip().lower() for c in (choices or (DEFAULT_TIME_SLOTS if kind == "time_slot"
                                                                    else ()))),
            min_length=lengths[0], max_length=lengths[1], pattern=str(pattern), example=str(s.get("example") or ""),
            pii=bool(s.get("pii", False))))
    return tuple(out)


def _endpoint(raw: Any, base: str, timeout: float, environ: Mapping[str, str] | None,
              err: Callable[[str], ActionError]) -> Endpoint:
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str) or not raw["url"].strip():
        raise err("`url` is required (an http:// URL, or a path under base_url)")
    extra = sorted(set(raw) - {"url", "method", "timeout_s"})
    if extra:
        raise err(f"unknown keys {extra} (known: url, method, timeout_s)")
    try:
        url = expand_env(raw["url"].strip(), environ)
    except KeyError as exc:
        raise err(f"environment variable {exc} in `url` is not set and has no default") from None
    if url.startswith("/"):
        if not base:
            raise err("`url` is a path but the file has no base_url")
        url = base.rstrip("/") + url
    if not re.match(r"https?://[^/\s]+", url):
        raise err(f"`url` {url!r} is not an http(s) URL")
    method = str(raw.get("method", "POST")).upper()
    if method not in METHODS:
        raise err(f"`method` must be one of {', '.join(METHODS)}")
    return Endpoint(url, method, _number(raw.get("timeout_s", timeout), lambda m: err(f"`timeout_s` {m}")))


# -- slot values ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotValue:
    """A filled slot: what the endpoint receives and how the agent says it."""

    value: str
    spoken: str


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
                  "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
                  "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
                  "nineteenth": 19, "twentieth": 20, "thirtieth": 30}
_YES = re.compile(r"^\W*(?:yes|yeah|yep|yup|sure|ok(?:ay)?|correct|right|go ahead|please do|do it|"
                  r"that'?s (?:right|correct|fine)|sounds good|please)\b", re.I)
_NO = re.compile(r"^\W*(?:no|nope|nah|not really|don'?t|do not)\b", re.I)
CANCEL = re.compile(r"\b(?:forget (?:it|that|about it)|never ?mind|cancel(?: (?:it|that|this))?|stop|"
                    r"don'?t bother|leave it)\b|^\W*(?:no|nope|nah)\W*(?:thanks?|thank you)?\W*$", re.I)


def spoken_date(day: dt.date) -> str:
    """'Tuesday 8 December'."""
    return f"{WEEKDAYS[day.weekday()].title()} {day.day} {MONTHS[day.month - 1].title()}"


def parse_date(text: str, today: dt.date) -> SlotValue | None:
    """A day from today on: 'tomorrow', 'Tuesday', 'next Friday', 'the 14th', '14 December', '2026-12-14'."""
    t = " ".join(text.lower().replace(",", " ").split())
    day: dt.date | None = None
    if m := re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", t):
        try:
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return None
    elif re.search(r"\bday after tomorrow\b", t):
        day = today + dt.timedelta(days=2)
    elif re.search(r"\btomorrow\b", t):
        day = today + dt.timedelta(days=1)
    elif re.search(r"\btoday\b", t):
        day = today
    else:
        month = next((i + 1 for i, name in enumerate(MONTHS) if re.search(rf"\b{name[:3]}(?:{name[3:]})?\b", t)
                      and not (name == "may" and re.search(r"\bmay (?:i|we|you|be)\b", t))), None)
        number = re.search(r"\b(\d{1,2})(st|nd|rd|th)?\b(?!\s*(?:a\.?m|p\.?m|o'?clock|:|\d))", t)
        ordinal = next((n for w, n in _ORDINAL_WORDS.items() if re.search(rf"\b{w}\b", t)), None)
        dom = int(number[1]) if number else ordinal
        weekday = next((i for i, name in enumerate(WEEKDAYS) if re.search(rf"\b{name}s?\b", t)), None)
        marked = ordinal is not None or (number is not None and (number[2] or re.search(rf"\bthe {number[1]}", t)))
        if dom is not None and (month is not None or marked):
            if not 1 <= dom <= 31:
                return None
            year, mon = today.year, month or today.month
            for _ in range(13):
                try:
                    candidate = dt.date(year, mon, dom)
                except ValueError:
                    candidate = None
                if candidate is not None and candidate >= today:
                    day = candidate
                    break
                if month is not None:
                    year += 1
                else:
                    mon, year = (1, year + 1) if mon == 12 else (mon + 1, year)
            if day is None:
                return None
        elif weekday is not None:
            ahead = (weekday - today.weekday()) % 7
            if ahead == 0 or re.search(rf"\bnext week\b|\bweek on {WEEKDAYS[weekday]}\b", t):
                ahead += 7
            day = today + dt.timedelta(days=ahead)
    if day is None or day < today:
        return None
    return SlotValue(day.isoformat(), spoken_date(day))


_SLOT_WORDS = {"morning": r"morning|a\.?m\.?|before (?:noon|lunch)|early",
               "afternoon": r"afternoon|after (?:noon|lunch)|midday|lunch ?time",
               "evening": r"evening|night|after work|late"}
_SLOT_HOURS = {"morning": range(6, 12), "afternoon": range(12, 16), "evening": range(16, 22)}


def parse_choice(text: str, choices: tuple[str, ...], dtmf: str | None = None) -> SlotValue | None:
    """One of a list: its word (or the word of a time of day), its position ('the second one'), or its key."""
    if dtmf:
        key = dtmf.rstrip("#")[:1]
        if key.isdigit() and 1 <= int(key) <= len(choices):
            choice = choices[int(key) - 1]
            return SlotValue(choice, choice)
        return None
    t = " ".join(text.lower().split())
    found = [c for c in choices if re.search(rf"\b{re.escape(c)}s?\b", t)]
    if len(found) == 1:
        return SlotValue(found[0], found[0])
    if found:
        return None  # "morning or afternoon": no choice made
    for c in choices:
        if c in _SLOT_WORDS and re.search(rf"\b(?:{_SLOT_WORDS[c]})\b", t):
            return SlotValue(c, c)
    hour = re.search(r"\b(\d{1,2})(?::\d\d)?\s*(a\.?m\.?|p\.?m\.?|o'?clock)?\b", t)
    if hour and hour[2]:
        h = int(hour[1]) % 12 + (12 if hour[2].startswith("p") else 0)
        for c in choices:
            if c in _SLOT_HOURS and h in _SLOT_HOURS[c]:
                return SlotValue(c, c)
    positions = ("first", "second", "third", "fourth", "fifth")
    for i, word in enumerate(positions[: len(choices)]):
        if re.search(rf"\b(?:{word}|number {i + 1}|option {i + 1})\b", t):
            return SlotValue(choices[i], choices[i])
    return None


def spoken_digits(text: str) -> str:
    """The digits a caller read out, in order: '4 5 6', 'four five six', 'double seven', '07700-900'."""
    out: list[str] = []
    repeat = 1
    for w in re.findall(r"[a-z]+|\d", text.lower()):
        if w in ("double", "triple"):
            repeat = 2 if w == "double" else 3
            continue
        digit = w if w.isdigit() else DIGIT_WORDS.get(w)
        if digit is not None:
            out.append(digit * repeat)
        repeat = 1
    return "".join(out)


def parse_digits(text: str, spec: SlotSpec, dtmf: str | None = None) -> SlotValue | None:
    """A number read out or keyed in (keys end with #), of the declared length."""
    digits = re.sub(r"\D", "", dtmf) if dtmf else spoken_digits(text)
    if not spec.min_length <= len(digits) <= spec.max_length:
        return None
    return SlotValue(digits, " ".join(digits))


_UK_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})")
_SPELLING = {w: d for w, d in DIGIT_WORDS.items() if w not in ("o", "oh")} | {"oh": "0"}


def parse_postcode(text: str, spec: SlotSpec) -> SlotValue | None:
    """A postcode however the recogniser wrote it ('SW1A 1AA', 's w one a one a a', 'SW1A1AA.').

    Candidates are runs of whole words (so 'for SW1A 1AA on' never borrows letters from 'for'); the longest
    and then the last one wins.
    """
    text = re.sub(r"\bdouble[\s-]*(?:u|you)\b", "W", text, flags=re.I)  # how W is said
    words = re.findall(r"[A-Za-z0-9]+", text)
    tokens = [_SPELLING.get(w.lower(), w.upper()) for w in words]
    best: SlotValue | None = None
    best_len = 0
    for i in range(len(tokens)):
        for j in range(i + 1, min(len(tokens), i + 8) + 1):
            joined = "".join(tokens[i:j])
            if len(joined) > 8:
                break
            if spec.pattern:
                spaced = " ".join(words[i:j]).upper()
                hit = next((c for c in (joined, spaced) if re.fullmatch(spec.pattern, c, re.I)), None)
                if hit is not None and len(hit) >= best_len:
                    best, best_len = SlotValue(hit, hit), len(hit)
                continue
            m = _UK_POSTCODE.fullmatch(joined)
            if m and len(joined) >= best_len:
                best, best_len = SlotValue(f"{m[1]} {m[2]}", f"{m[1]} {m[2]}"), len(joined)
    return best


# a postcode or one cut short by a live caption ('W1A 1H'): logs lose nothing they should keep
_PARTIAL_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{1,2}")


def mask_postcodes(text: str, placeholder: str = "[POSTCODE]") -> str:
    """Every UK postcode in a text (or the start of one), however it was written ('SW1A 1AA', 'E-C-1-A-1-B-B')."""
    words = list(re.finditer(r"[A-Za-z0-9]+", text))
    tokens = [_SPELLING.get(w.group().lower(), w.group().upper()) for w in words]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        end = None
        for j in range(i + 1, min(len(tokens), i + 8) + 1):
            joined = "".join(tokens[i:j])
            if len(joined) > 8:
                break
            if _PARTIAL_POSTCODE.fullmatch(joined):
                end = j
        if end is None:
            i += 1
            continue
        spans.append((words[i].start(), words[end - 1].end()))
        i = end
    for start, stop in reversed(spans):
        text = text[:start] + placeholder + text[stop:]
    return text


def parse_yes_no(text: str, dtmf: str | None = None) -> SlotValue | None:
    """'yes' / 'no' (keys: 1 yes, 2 no)."""
    if dtmf:
        key = dtmf.rstrip("#")[:1]
        return {"1": SlotValue("yes", "yes"), "2": SlotValue("no", "no")}.get(key)
    if _NO.match(text):
        return SlotValue("no", "no")
    if _YES.match(text):
        return SlotValue("yes", "yes")
    return None


def parse_slot(spec: SlotSpec, text: str, *, today: dt.date, dtmf: str | None = None) -> SlotValue | None:
    """The slot's value in what the caller said (or keyed), or None when it is not there or not valid."""
    if spec.type == "digits":
        return parse_digits(text, spec, dtmf)
    if spec.type == "yes_no":
        return parse_yes_no(text, dtmf)
    if spec.type in ("choice", "time_slot"):
        return parse_choice(text, spec.choices, dtmf)
    if dtmf:
        return None  # dates and postcodes are said, not keyed
    if spec.type == "date":
        return parse_date(text, today)
    if spec.type == "postcode":
        return parse_postcode(text, spec)
    raise AssertionError(spec.type)


def redacted_slots(action: ActionSpec, values: Mapping[str, SlotValue]) -> dict[str, str]:
    """The slots as an audit may show them: personal values masked."""
    out: dict[str, str] = {}
    for s in action.slots:
        if s.name in values:
            out[s.name] = f"[{s.type.upper()}]" if s.personal else values[s.name].value
    return out


# -- the call of an action ------------------------------------------------------------------------------


@dataclass
class ActionResult:
    """What the endpoint answered: ok with its JSON, or the failure (timeout, refused, HTTP status, bad JSON)."""

    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # "timeout", "connection refused", "http 500", "bad json", ...
    status: int | None = None
    latency_ms: float = 0.0


class ActionPort(Protocol):
    """Carries out an action (the product's is an HTTP client); must not block the event loop."""

    async def invoke(self, action: ActionSpec, slots: dict[str, str]) -> ActionResult:
        """Call the action's endpoint with the slot values; never raises for a failed call."""
        ...


# -- the dialog of one action ---------------------------------------------------------------------------

ASK = "ask"
REASK = "reask"
CONFIRM = "confirm"
CANCELLED = "cancelled"
GAVE_UP = "gave_up"
CALL = "call"
KEY = "key"  # a keypad digit was taken: nothing to say until # ends the number


@dataclass
class Step:
    """What the flow wants said (and done) after one caller turn."""

    kind: str
    say: list[str] = field(default_factory=list)
    offer_human: bool = False

    @property
    def finished(self) -> bool:
        """The flow is over (cancelled, given up, or ready to call)."""
        return self.kind in (CANCELLED, GAVE_UP, CALL)


def _fill(template: str, values: Mapping[str, str]) -> str:
    return string.Formatter().vformat(template, (), _Default(values))


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


class ActionFlow:
    """Fill the slots, confirm, then call: one action being carried out for the caller."""

    def __init__(self, action: ActionSpec, today: dt.date) -> None:
        self.action = action
        self.today = today
        self.values: dict[str, SlotValue] = {}
        self.asking: str | None = None  # slot asked for last
        self.confirming = False
        self.misses = 0  # invalid answers to the current question
        self.keys = ""  # keypad digits typed so far (ended by #)

    def copy(self) -> ActionFlow:
        """A snapshot (a retracted turn restores it)."""
        other = ActionFlow(self.action, self.today)
        other.values, other.asking, other.confirming = dict(self.values), self.asking, self.confirming
        other.misses, other.keys = self.misses, self.keys
        return other

    def missing(self) -> list[SlotSpec]:
        """Slots still to fill, in declared order."""
        return [s for s in self.action.slots if s.name not in self.values]

    def slot_values(self) -> dict[str, str]:
        """What the endpoint receives."""
        return {k: v.value for k, v in self.values.items()}

    def spoken(self) -> dict[str, str]:
        """How each value is said in templates."""
        return {k: v.spoken for k, v in self.values.items()}

    def start(self, text: str) -> Step:
        """The caller asked for the action: take any slot values already said, then ask for the rest."""
        self._harvest(text)
        return self._next()

    def turn(self, text: str, dtmf: str | None = None) -> Step:
        """One caller turn while the action is in progress."""
        current = self.action.slot(self.asking) if self.asking else None
        if dtmf:
            if dtmf == "*":
                return Step(CANCELLED, ["Okay, I've cancelled that."])
            if self.confirming:  # 1 yes, 2 no: one key is the whole answer
                yes_no = parse_yes_no("", dtmf)
                if yes_no is not None:
                    return Step(CALL) if yes_no.value == "yes" else Step(CANCELLED, ["Okay, I won't do that."])
            elif current is not None and current.type != "digits":
                return self._answer("", dtmf)  # a choice is one key
            self.keys += dtmf
            if not self.keys.endswith("#"):
                return Step(KEY)
            keyed, self.keys = self.keys, ""
            if self.confirming:
                return self.turn("", keyed[:1])
            return self._answer("", keyed)
        self.keys = ""
        if self.confirming:
            if self._harvest(text, overwrite=True):  # "no, Wednesday": a correction, confirm again
                self.misses = 0
                return self._next()
            yes_no = parse_yes_no(text)
            if yes_no is not None and yes_no.value == "yes" and not CANCEL.search(text):
                return Step(CALL)
            if (yes_no is not None and yes_no.value == "no") or CANCEL.search(text):
                return Step(CANCELLED, ["Okay, I won't do that."])
            self.misses += 1
            if self.misses > 1:
                return Step(GAVE_UP, ["Sorry, I'll leave that for now."], offer_human=True)
            return Step(REASK, ["Sorry, was that a yes?", self._confirmation()])
        if current is not None and current.type != "yes_no" and CANCEL.search(text) and \
                parse_slot(current, text, today=self.today) is None:
            return Step(CANCELLED, ["Okay, I've cancelled that."])
        return self._answer(text, None)

    def _answer(self, text: str, dtmf: str | None) -> Step:
        current = self.action.slot(self.asking) if self.asking else None
        if current is None:
            return self._next()
        value = parse_slot(current, text, today=self.today, dtmf=dtmf)
        if value is None:
            self.misses += 1
            if self.misses > 1:
                return Step(GAVE_UP, [f"Sorry, I couldn't get the {self._label(current)}."], offer_human=True)
            return Step(REASK, [self._reask(current)])
        self.values[current.name] = value
        if dtmf is None:
            self._harvest(text)  # "Tuesday morning": the next slot may be in the same breath
        self.misses = 0
        return self._next()

    def _harvest(self, text: str, overwrite: bool = False) -> bool:
        """Fill the slots whose values are in the text; True when something new was filled."""
        changed = False
        for s in self.action.slots:
            if s.type == "yes_no" or (s.name in self.values and not overwrite):
                continue
            value = parse_slot(s, text, today=self.today)
            if value is not None and self.values.get(s.name) != value:
                self.values[s.name] = value
                changed = True
        return changed

    def _next(self) -> Step:
        missing = self.missing()
        if missing:
            if self.asking != missing[0].name:
                self.misses = 0
            self.asking = missing[0].name
            self.confirming = False
            return Step(ASK, [missing[0].question])
        self.asking = None
        self.confirming = True
        return Step(CONFIRM, [self._confirmation()])

    def _confirmation(self) -> str:
        return _fill(self.action.confirm, self.spoken())

    @staticmethod
    def _label(slot: SlotSpec) -> str:
        return slot.name.replace("_", " ")

    def _reask(self, slot: SlotSpec) -> str:
        hint = {
            "date": "a day, like tomorrow or next Tuesday",
            "time_slot": "one of " + _or(slot.choices),
            "choice": "one of " + _or(slot.choices),
            "postcode": f"a postcode, like {slot.example or 'SW1A 1AA'}" if not slot.pattern
            else f"the {slot.name.replace('_', ' ')}" + (f", like {slot.example}" if slot.example else ""),
            "digits": "the digits one by one, or type them on your keypad and press hash",
            "yes_no": "yes or no",
        }[slot.type]
        return f"Sorry, I didn't get that. {slot.question} Please say {hint}."

    def result_text(self, result: ActionResult) -> list[str]:
        """What the agent says once the endpoint answered."""
        say = result.data.get("say")
        if isinstance(say, str) and say.strip():  # the service's own words, success or not ("that day is full")
            return [say.strip()]
        if result.ok:
            values = {k: str(v) for k, v in result.data.items() if isinstance(v, (str, int, float))}
            values.update(self.spoken())
            return [_fill(self.action.result, values) if self.action.result else "That's done."]
        return [_fill(self.action.failure, self.spoken()) if self.action.failure
                else f"Sorry, I couldn't {_lower(self.action.description)} right now."]


def _or(items: tuple[str, ...]) -> str:
    return ", ".join(items[:-1]) + (f" or {items[-1]}" if len(items) > 1 else "".join(items))


def _lower(text: str) -> str:
    text = text.rstrip(". ")
    return text[:1].lower() + text[1:]


OFFER_HUMAN = "Would you like me to connect you with a colleague?"
