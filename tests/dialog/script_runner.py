"""Runs the scripted conversations in tests/dialog/scripts against a Brain and checks each turn."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialog import Brain
from dialog.grounding import CHEERFUL, quantities
from dialog.speech import for_speech
from tests.dialog.support import SCRIPTS


@dataclass
class TurnResult:
    """One scripted turn: what was said, what came back, and which expectations failed."""

    script: str
    index: int
    say: str
    reply: str
    decision: dict[str, Any]
    failures: list[str] = field(default_factory=list)
    kb_fact: bool | None = None  # None: not a KB question; else whether the fact was in the answer


def script_paths() -> list[Path]:
    """Every scripted conversation."""
    return sorted(SCRIPTS.glob("*.yaml"))


def _spoken_quantities(text: str) -> set[str]:
    return set(quantities(for_speech(text)))


async def run_script(brain: Brain, path: Path) -> list[TurnResult]:
    """Play one script through a fresh call; returns a result per turn."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    call = brain.open_call()
    passages = {p.id: p for p in brain.kb.passages}
    results: list[TurnResult] = []
    previous_reply = ""
    for i, turn in enumerate(data["turns"]):
        say = str(turn.get("say", ""))
        reply = await call.respond(say, dtmf=turn.get("dtmf"))
        text = await reply.text()
        d = reply.decision
        r = TurnResult(path.stem, i + 1, say or f"<dtmf {turn.get('dtmf')}>", text, d.as_dict())
        exp: dict[str, Any] = turn.get("expect", {})
        fail = r.failures.append
        low = text.lower()
        for key in ("action", "escalate", "hangup", "sentiment"):
            if key in exp and getattr(d, key) != exp[key]:
                fail(f"{key}={getattr(d, key)!r}, expected {exp[key]!r}")
        if "reason_contains" in exp and exp["reason_contains"] not in d.reason:
            fail(f"reason {d.reason!r} lacks {exp['reason_contains']!r}")
        if "summary_sentences" in exp:
            sentences = [s for s in re.split(r"(?<=\.)\s+", d.summary) if s]
            if len(sentences) != exp["summary_sentences"]:
                fail(f"summary has {len(sentences)} sentences: {d.summary!r}")
        if "contains_any" in exp:
            r.kb_fact = any(s.lower() in low for s in exp["contains_any"])
            if not r.kb_fact:
                fail(f"none of {exp['contains_any']} in {text!r}")
        if "starts_with_any" in exp and not any(text.startswith(s) for s in exp["starts_with_any"]):
            fail(f"{text!r} does not start with any of {exp['starts_with_any']}")
        if exp.get("no_cheer") and CHEERFUL.search(text):
            fail(f"cheerful words at an upset caller: {text!r}")
        if exp.get("same_as_previous") and text != previous_reply:
            fail(f"repeat gave {text!r}, previous was {previous_reply!r}")
        if "redacted" in exp:
            caller = str(d.extra.get("caller", ""))
            for placeholder in exp["redacted"]:
                if placeholder not in caller:
                    fail(f"{placeholder} missing from the caller text {caller!r}")
            history = " ".join(t.caller + " " + t.agent for t in call.conversation.history)
            if re.search(r"\d{4}|@|(?:\b(?:one|two|three|four|five|six|seven|eight|nine|oh)\b\W+){4}",
                         history + " " + text + " " + caller, re.IGNORECASE):
                fail("raw PII left in the history, reply or caller text")
        if exp.get("grounded"):
            allowed = _spoken_quantities(say)
            for src in d.extra.get("sources", []):
                if src["id"] in passages:
                    allowed |= _spoken_quantities(passages[src["id"]].answer)
            invented = _spoken_quantities(text) - allowed
            if invented:
                fail(f"numbers not in the knowledge base: {sorted(invented)} in {text!r}")
        previous_reply = text
        results.append(r)
    return results
