"""The evaluation sets in bench/eval: loading, validation, and matching facts in spoken replies.

A KB set (telecom.yaml, shop.yaml) holds conversations of caller turns; spoken.yaml holds single turns for
the spoken bench. Both say what a right reply is: its kind (answer | not_found | handoff | other), for answers
the acceptable KB entry ids and the facts a right reply states, and facts that would make it wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialog.speech import for_speech

EVAL_DIR = Path(__file__).resolve().parent
ROOT = EVAL_DIR.parents[1]
KINDS = ("answer", "not_found", "handoff", "other")
CATEGORIES = ("paraphrase", "followup", "off_kb", "asr", "handoff", "near_miss", "smalltalk")
SPOKEN = EVAL_DIR / "spoken.yaml"


class EvalSetError(ValueError):
    """An evaluation set that does not follow the format, with the file and the turn at fault."""


@dataclass
class Expect:
    """What a right reply is."""

    kind: str
    entries: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)  # each must be in the reply; "a|b" is a or b
    forbid: list[str] = field(default_factory=list)


@dataclass
class Turn:
    """One caller turn."""

    say: str
    category: str
    expect: Expect
    clarify_answer: str = ""


@dataclass
class Conversation:
    """Turns played in order through one call."""

    name: str
    turns: list[Turn]


@dataclass
class EvalSet:
    """A KB's evaluation set."""

    path: Path
    name: str
    kb: str  # the KB folder, relative to the repository root
    conversations: list[Conversation]
    entry_facts: dict[str, list[str]]

    @property
    def kb_dir(self) -> Path:
        """The KB folder."""
        return ROOT / self.kb

    def turns(self) -> list[Turn]:
        """Every turn, in order."""
        return [t for c in self.conversations for t in c.turns]


@dataclass
class SpokenItem:
    """One single-turn question of the spoken set."""

    kb: str
    text: str
    expect: Expect


def kb_set_paths() -> list[Path]:
    """The KB evaluation sets."""
    return sorted(p for p in EVAL_DIR.glob("*.yaml") if p.name != SPOKEN.name)


def _strings(value: Any, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise EvalSetError(f"{where}: `{key}` must be a list of strings")
    return [str(v) for v in value]


def parse_expect(raw: Any, where: str) -> Expect:
    """The `expect:` mapping of a turn."""
    if not isinstance(raw, dict):
        raise EvalSetError(f"{where}: `expect` must be a mapping with `kind`")
    unknown = set(raw) - {"kind", "entries", "facts", "forbid"}
    if unknown:
        raise EvalSetError(f"{where}: unknown keys in `expect`: {sorted(unknown)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise EvalSetError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    exp = Expect(kind, _strings(raw.get("entries"), where, "entries"), _strings(raw.get("facts"), where, "facts"),
                 _strings(raw.get("forbid"), where, "forbid"))
    if kind == "answer" and not exp.entries:
        raise EvalSetError(f"{where}: an answer turn needs `entries`")
    if kind != "answer" and (exp.entries or exp.facts):
        raise EvalSetError(f"{where}: only answer turns have `entries` and `facts`")
    return exp


def load_set(path: Path) -> EvalSet:
    """Read and check the format of one KB set (ids are checked against the KB by `check_against_kb`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalSetError(f"{path}: cannot read the set ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("conversations"), list) or not data.get("kb"):
        raise EvalSetError(f"{path}: expected `kb:`, `entry_facts:` and a list under `conversations:`")
    facts_raw = data.get("entry_facts") or {}
    if not isinstance(facts_raw, dict):
        raise EvalSetError(f"{path}: `entry_facts` must map entry ids to lists of facts")
    entry_facts = {str(k): _strings(v, f"{path}: entry_facts[{k}]", "facts") for k, v in facts_raw.items()}
    conversations: list[Conversation] = []
    for ci, conv in enumerate(data["conversations"]):
        if not isinstance(conv, dict) or not isinstance(conv.get("turns"), list) or not conv["turns"]:
            raise EvalSetError(f"{path}: conversation {ci + 1} needs a non-empty list under `turns`")
        name = str(conv.get("name") or f"conversation {ci + 1}")
        turns: list[Turn] = []
        for ti, raw in enumerate(conv["turns"]):
            where = f"{path.name}: {name!r} turn {ti + 1}"
            if not isinstance(raw, dict) or not str(raw.get("say") or "").strip():
                raise EvalSetError(f"{where}: a turn needs `say`")
            unknown = set(raw) - {"say", "category", "expect", "clarify_answer"}
            if unknown:
                raise EvalSetError(f"{where}: unknown keys {sorted(unknown)}")
            if raw.get("category") not in CATEGORIES:
                raise EvalSetError(f"{where}: category {raw.get('category')!r} is not one of {', '.join(CATEGORIES)}")
            turns.append(Turn(str(raw["say"]).strip(), str(raw["category"]), parse_expect(raw.get("expect"), where),
                              str(raw.get("clarify_answer") or "").strip()))
        conversations.append(Conversation(name, turns))
    return EvalSet(path, str(data.get("name") or path.stem), str(data["kb"]), conversations, entry_facts)


def load_spoken(path: Path = SPOKEN) -> list[SpokenItem]:
    """The spoken set: a list of {kb, text, expect}."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalSetError(f"{path}: cannot read the set ({exc})") from None
    if not isinstance(data, list):
        raise EvalSetError(f"{path}: expected a list of {{kb, text, expect}}")
    out: list[SpokenItem] = []
    for i, raw in enumerate(data):
        where = f"{path.name}: item {i + 1}"
        if not isinstance(raw, dict) or not raw.get("kb") or not str(raw.get("text") or "").strip():
            raise EvalSetError(f"{where}: needs `kb` and `text`")
        out.append(SpokenItem(str(raw["kb"]), str(raw["text"]).strip(), parse_expect(raw.get("expect"), where)))
    return out


# --- matching ------------------------------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Lower-case spoken form without punctuation: "$39.99" and "thirty-nine dollars and ninety-nine cents" meet."""
    spoken = for_speech(text).lower().replace("-", " ")
    spoken = re.sub(r"[^a-z0-9@%$ ]+", " ", spoken)
    return re.sub(r"\s+", " ", spoken).strip()


def _one_fact(fact: str, spoken_text: str) -> bool:
    needle = normalise(fact)
    if not needle:
        return False
    # "forty nine dollars" must not match inside "forty nine dollars and ninety nine cents"
    tail = r"(?! and [a-z ]*? cents?)" if needle.endswith(("dollar", "dollars")) else ""
    return re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9]){tail}", spoken_text) is not None


def has_fact(fact: str, text: str) -> bool:
    """Whether the reply states the fact; "a|b" is either."""
    spoken = normalise(text)
    return any(_one_fact(alt, spoken) for alt in fact.split("|") if alt.strip())


def entry_of(passage_id: str, entries: list[str] | set[str]) -> str | None:
    """The entry id a retrieved passage belongs to (Markdown chunks carry a -N suffix), if among `entries`."""
    if passage_id in entries:
        return passage_id
    base = re.sub(r"-\d+$", "", passage_id)
    return base if base in entries else None


@dataclass
class KbEntry:
    """One KB entry as its author wrote it (a YAML entry, or a `##` section of a Markdown file)."""

    id: str
    question: str
    answer: str
    also: list[str]


def read_kb(kb_dir: Path) -> dict[str, KbEntry]:
    """The entries of a KB folder by id, read from the documented format (examples/kb/README.md).

    YAML files without `entries` (a company's settings file) are not documents; a Markdown section's id is
    `<file stem>-<heading slug>`, which the loader's chunk ids (`...-0`, `...-1`) extend.
    """
    out: dict[str, KbEntry] = {}
    files = sorted(p for p in kb_dir.rglob("*") if p.is_file() and not p.name.upper().startswith("README"))
    for path in files:
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(data, list):
                data = {"entries": data}
            if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
                continue
            for i, e in enumerate(data["entries"]):
                eid = str(e.get("id") or f"{path.stem}-{i + 1}")
                out[eid] = KbEntry(eid, str(e.get("question", "")), " ".join(str(e.get("answer", "")).split()),
                                   [str(a) for a in e.get("also") or []])
        elif suffix in (".md", ".markdown"):
            for section in re.split(r"(?m)^##\s+", path.read_text(encoding="utf-8"))[1:]:
                heading, _, body = section.partition("\n")
                slug = re.sub(r"[^a-z0-9]+", "-", heading.strip().lower()).strip("-")
                eid = f"{path.stem}-{slug}"
                out[eid] = KbEntry(eid, heading.strip(), " ".join(body.split()), [])
    return out


def kb_entries(kb_dir: Path) -> dict[str, str]:
    """Entry id -> its answer text."""
    return {eid: e.answer for eid, e in read_kb(kb_dir).items()}


def kb_wording(kb_dir: Path) -> list[str]:
    """Every text a KB author wrote that callers must not be quoted from: questions, answers, `also` lists."""
    return [t for e in read_kb(kb_dir).values() for t in (e.question, e.answer, *e.also)]


def check_against_kb(s: EvalSet) -> list[str]:
    """Problems of a set against its KB: unknown ids, facts the acceptable entries do not hold, unfair forbids."""
    entries = kb_entries(s.kb_dir)
    problems: list[str] = []
    for eid, facts in s.entry_facts.items():
        if eid not in entries:
            problems.append(f"entry_facts: {eid!r} is not an entry of {s.kb}")
            continue
        for f in facts:
            if not has_fact(f, entries[eid]):
                problems.append(f"entry_facts: {f!r} is not in the answer of {eid!r}")
    for conv in s.conversations:
        for i, t in enumerate(conv.turns):
            problems += check_expect(t.expect, entries, f"{conv.name!r} turn {i + 1}")
    return problems


def check_expect(exp: Expect, entries: dict[str, str], where: str) -> list[str]:
    """Problems of one expectation against a KB's entries."""
    problems: list[str] = []
    unknown = [e for e in exp.entries if e not in entries]
    if unknown:
        problems.append(f"{where}: unknown entry ids {unknown}")
    known = [entries[e] for e in exp.entries if e in entries]
    for f in exp.facts:
        if known and not any(has_fact(f, text) for text in known):
            problems.append(f"{where}: fact {f!r} is in none of the entries {exp.entries}")
    for f in exp.forbid:
        if any(has_fact(f, text) for text in known):
            problems.append(f"{where}: forbidden fact {f!r} is in an acceptable entry")
    return problems


def ngrams(text: str, n: int = 6) -> set[tuple[str, ...]]:
    """Word n-grams of a text, lower-case, punctuation dropped."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
