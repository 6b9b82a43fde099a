"""Judging the brain's replies against an evaluation set, and the per-KB numbers of the report.

Pure functions over what the brain said and decided (no models), so the rules are unit-tested on their own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.eval.sets import CATEGORIES, Expect, entry_of, has_fact

# verdicts of one caller turn
RIGHT = "right"  # right at the first reply
CLARIFIED = "clarified"  # a clarifying question, then right (or, off the KB, a question instead of an invention)
WRONG_FACT = "wrong_fact"  # an answer with another entry's fact, a forbidden fact, or without the required facts
DONT_KNOW = "dont_know"  # "I don't know" to a question the KB answers
INVENTED = "invented"  # an answer to a question the KB does not answer
FALSE_TRANSFER = "false_transfer"  # transferred although the caller did not ask for a person
MISSED_HANDOFF = "missed_handoff"  # asked for a person and was not transferred
ANSWERED_NON_QUESTION = "answered_non_question"  # small talk or a remark answered from the KB
MISSED = "missed"  # a question met with small talk, a goodbye, a menu...
OFF_TARGET = "clarify_off_target"  # asked which one, offering none of the right entries
LOST = "lost"  # the call had already been transferred or ended
VERDICTS = (RIGHT, CLARIFIED, WRONG_FACT, DONT_KNOW, INVENTED, FALSE_TRANSFER, MISSED_HANDOFF,
            ANSWERED_NON_QUESTION, MISSED, OFF_TARGET, LOST)

ANSWER_ACTION = "answer"
CLARIFY_ACTION = "clarify"
NOT_FOUND_ACTION = "not_found"
KB_POLICY_PREFIX = "the knowledge base"  # reason of a transfer after repeated KB failures


@dataclass
class Outcome:
    """What the brain did with one caller turn."""

    action: str
    escalate: bool
    text: str
    reason: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)  # {"id", "score"}, best first
    candidates: list[Any] = field(default_factory=list)  # of a clarifying question
    hangup: bool = False

    def top_source(self) -> str:
        """The id of the best retrieved passage, or ""."""
        if not self.sources:
            return ""
        first = self.sources[0]
        return str(first.get("id", "")) if isinstance(first, dict) else str(first)

    def brief(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"action": self.action, "escalate": self.escalate, "reason": self.reason, "text": self.text,
                "sources": self.sources[:3], "candidates": self.candidates, "hangup": self.hangup}


@dataclass
class Judgement:
    """A verdict and why."""

    verdict: str
    detail: str = ""
    policy_transfer: bool = False  # a transfer after repeated KB failures on an off-KB question


@dataclass
class KbFacts:
    """What a KB's entries say: answer texts, and the distinctive facts of each entry (from the set)."""

    answers: dict[str, str]
    entry_facts: dict[str, list[str]]
    questions: dict[str, str] = field(default_factory=dict)


def wrong_facts(expect: Expect, say: str, text: str, kb: KbFacts) -> list[str]:
    """Facts in the reply that make it wrong: forbidden ones, and other entries' facts the right entries lack."""
    found = [f"forbidden {f!r}" for f in expect.forbid if has_fact(f, text)]
    right_texts = [kb.answers.get(e, "") for e in expect.entries]
    for entry, facts in kb.entry_facts.items():
        if entry in expect.entries:
            continue
        for f in facts:
            if (has_fact(f, text) and not has_fact(f, say)
                    and not any(has_fact(f, t) for t in right_texts)):
                found.append(f"{f!r} of {entry}")
    return found


def judge(expect: Expect, say: str, out: Outcome, kb: KbFacts) -> Judgement:
    """The verdict of one reply (a clarifying question is judged by the caller, see `judge_turn`)."""
    kind = expect.kind
    if kind == "handoff":
        return Judgement(RIGHT) if out.escalate else Judgement(MISSED_HANDOFF, f"action {out.action}")
    if out.escalate:
        if kind == "not_found" and out.reason.startswith(KB_POLICY_PREFIX):
            return Judgement(RIGHT, "transferred after repeated KB failures", policy_transfer=True)
        return Judgement(FALSE_TRANSFER, out.reason or out.action)
    if kind == "answer":
        if out.action == ANSWER_ACTION:
            wrong = wrong_facts(expect, say, out.text, kb)
            missing = [f for f in expect.facts if not has_fact(f, out.text)]
            if wrong or missing:
                why = "; ".join(wrong + [f"missing {f!r}" for f in missing])
                return Judgement(WRONG_FACT, f"{why} (source {out.top_source() or '-'})")
            src = out.top_source()
            known = entry_of(src, set(expect.entries)) if src else None
            return Judgement(RIGHT, "" if known or not src else f"facts right, source {src}")
        if out.action == NOT_FOUND_ACTION:
            return Judgement(DONT_KNOW, f"best {out.top_source() or '-'}")
        return Judgement(MISSED, f"action {out.action}")
    if kind == "not_found":
        if out.action == ANSWER_ACTION:
            return Judgement(INVENTED, f"answered from {out.top_source() or '-'}")
        if out.action == CLARIFY_ACTION:
            return Judgement(CLARIFIED, "asked instead of answering")
        return Judgement(RIGHT)
    if out.action == ANSWER_ACTION:  # kind "other"
        return Judgement(ANSWERED_NON_QUESTION, f"answered from {out.top_source() or '-'}")
    return Judgement(RIGHT)


def candidate_ids(out: Outcome) -> list[str]:
    """The entry ids a clarifying question offers (ids, or objects with an id)."""
    return [str(c.get("id", "")) if isinstance(c, dict) else str(c) for c in out.candidates]


def candidate_reply(out: Outcome, entries: list[str], questions: dict[str, str] | None = None) -> str:
    """A short caller answer naming the intended option of a clarifying question; "" when none is right.

    One option offered: "yes". Several: the caller names the right one with the words the agent used for it
    (the entry's question, or the candidate's label).
    """
    ids = candidate_ids(out)
    for i, cid in enumerate(ids):
        entry = entry_of(cid, set(entries))
        if not entry:
            continue
        if len(ids) == 1:
            return "yes, that's it"
        c = out.candidates[i]
        label = ""
        if isinstance(c, dict):
            label = str(c.get("label") or c.get("name") or c.get("question") or c.get("title") or "")
        label = label or (questions or {}).get(entry, "")
        if label:
            return "I mean " + label.strip().rstrip("?.!")
        return ("the first one", "the second one", "the third one")[min(i, 2)]
    return ""


@dataclass
class TurnScore:
    """One caller turn of the set, what the brain did and the verdict."""

    set: str
    config: str
    conversation: str
    index: int
    category: str
    kind: str
    say: str
    verdict: str
    detail: str
    first: Outcome | None
    second: Outcome | None = None  # the reply after the caller answered a clarifying question
    clarify_answer: str = ""
    policy_transfer: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-able row."""
        return {"set": self.set, "config": self.config, "conversation": self.conversation, "turn": self.index,
                "category": self.category, "kind": self.kind, "say": self.say, "verdict": self.verdict,
                "detail": self.detail, "first": self.first.brief() if self.first else None,
                "clarify_answer": self.clarify_answer, "second": self.second.brief() if self.second else None,
                "policy_transfer": self.policy_transfer}


def judge_turn(expect: Expect, say: str, first: Outcome, second: Outcome | None, kb: KbFacts) -> Judgement:
    """The verdict of a turn, following a clarifying question to the reply after the caller's answer."""
    if first.action != CLARIFY_ACTION or expect.kind != "answer":
        return judge(expect, say, first, kb)
    if second is None:
        return Judgement(OFF_TARGET, f"offered {candidate_ids(first)}")
    after = judge(expect, say, second, kb)
    if after.verdict == RIGHT:
        return Judgement(CLARIFIED, after.detail)
    return Judgement(after.verdict, f"after clarifying: {after.detail}")


def pct(part: int, whole: int) -> float:
    """A percentage, 0 for an empty whole."""
    return 100.0 * part / whole if whole else 0.0


def summarise(rows: list[TurnScore]) -> dict[str, Any]:
    """The report's numbers for one KB and configuration."""
    n = len(rows)
    verdicts = Counter(r.verdict for r in rows)
    handoffs = [r for r in rows if r.kind == "handoff"]
    transfers_right = sum(1 for r in handoffs if r.verdict == RIGHT)
    false_transfers = verdicts[FALSE_TRANSFER]
    answerable = [r for r in rows if r.kind == "answer"]
    categories: dict[str, dict[str, Any]] = {}
    for cat in CATEGORIES:
        group = [r for r in rows if r.category == cat]
        if group:
            ok = sum(1 for r in group if r.verdict == RIGHT)
            ok2 = ok + sum(1 for r in group if r.verdict == CLARIFIED)
            categories[cat] = {"turns": len(group), "right_first": ok, "right_or_clarified": ok2,
                               "right_first_pct": round(pct(ok, len(group)), 1),
                               "right_or_clarified_pct": round(pct(ok2, len(group)), 1)}
    return {
        "turns": n,
        "answerable": len(answerable),
        "right_first": verdicts[RIGHT],
        "right_first_pct": round(pct(verdicts[RIGHT], n), 1),
        "right_or_clarified": verdicts[RIGHT] + verdicts[CLARIFIED],
        "right_or_clarified_pct": round(pct(verdicts[RIGHT] + verdicts[CLARIFIED], n), 1),
        "clarified": verdicts[CLARIFIED],
        "wrong_fact": verdicts[WRONG_FACT],
        "dont_know": verdicts[DONT_KNOW],
        "invented": verdicts[INVENTED],
        "handoff_turns": len(handoffs),
        "handoff_recall_pct": round(pct(transfers_right, len(handoffs)), 1),
        "handoff_precision_pct": round(pct(transfers_right, transfers_right + false_transfers), 1),
        "false_transfers": false_transfers,
        "policy_transfers": sum(1 for r in rows if r.policy_transfer),
        "verdicts": {v: verdicts[v] for v in VERDICTS if verdicts[v]},
        "categories": categories,
    }
