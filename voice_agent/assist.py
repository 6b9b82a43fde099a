"""Helping the human agent: KB answers suggested for the caller's latest question, and the drafted wrap-up.

During a takeover (or a transferred call an agent picks up) ``AgentAssist`` runs the assistant's own
retrieval (``Engine.suggest``, off the event loop) on what the caller says and sends the top entries to
the agent's console only, never to the caller's page. After the call ``draft_wrapup`` drafts the
agent's wrap-up from what the call record already holds; the agent edits it and saves it with the call.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

MAX_SUGGESTIONS = 3
MIN_SCORE = 0.2  # relevance (0..1) below which an entry is noise, not a suggestion
ANSWER_CHARS = 600
MIN_PARTIAL_WORDS = 3  # a partial shorter than this is not worth a search


@dataclass(frozen=True)
class Suggestion:
    """One KB entry suggested to the agent: what it answers and what to say."""

    id: str
    question: str
    answer: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON the console gets."""
        return asdict(self)


def suggestions_from_hits(hits: Sequence[Any], k: int = MAX_SUGGESTIONS, min_score: float = MIN_SCORE
                          ) -> list[Suggestion]:
    """The best ``k`` distinct entries of a retrieval (``dialog.kb.Hit``-like: ``.passage``, ``.score``)."""
    out: list[Suggestion] = []
    seen: set[str] = set()
    for hit in sorted(hits, key=lambda h: float(h.score), reverse=True):
        p = hit.passage
        if float(hit.score) < min_score or p.id in seen or not str(p.answer).strip():
            continue
        seen.add(p.id)
        answer = " ".join(str(p.answer).split())
        if len(answer) > ANSWER_CHARS:
            answer = answer[:ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
        out.append(Suggestion(str(p.id), str(p.question).strip(), answer, round(float(hit.score), 3)))
        if len(out) >= k:
            break
    return out


def live_summary(dialog_summary: str, events: Sequence[dict[str, Any]], escalation: dict[str, Any] | None) -> str:
    """The call so far in a sentence or two: the dialog's own summary, else the caller's questions."""
    asked = [str(e.get("text", "")).strip() for e in events if e.get("type") == "caller_turn" and e.get("text")]
    if dialog_summary.strip():
        # the dialog stops listening once a person has the call: their latest words say where it is now
        return dialog_summary.strip() + (f' Latest: "{asked[-1]}".' if asked else "")
    if escalation and str(escalation.get("summary", "")).strip() not in ("", "transfer requested from the console"):
        return str(escalation["summary"]).strip() + (f' Latest: "{asked[-1]}".' if asked else "")
    if not asked:
        return "The caller has not asked anything yet."
    quoted = "; ".join(f'"{q}"' for q in asked[-3:])
    return f"The caller said {quoted}." + (f" Transfer: {escalation['reason']}." if escalation else "")


def _sentence(text: str) -> str:
    text = " ".join(text.split()).rstrip(" .")
    return text[:1].upper() + text[1:] + "." if text else ""


def draft_wrapup(outcome: str | None, meta: dict[str, Any], turns: Sequence[dict[str, Any]],
                 events: Sequence[dict[str, Any]], notes: str = "") -> dict[str, Any]:
    """The agent's wrap-up drafted from the call record: summary, outcome and follow-ups (all editable).

    ``meta``: the call's stored details (``transfer`` holds the dialog's summary and the reason);
    ``turns``: stored turns (``action`` 'not_found' marks a question the KB could not answer);
    ``events``: stored events (``action`` events are the actions carried out or dropped).
    """
    transfer = meta.get("transfer") if isinstance(meta.get("transfer"), dict) else None
    unanswered = list(dict.fromkeys(str(t["caller_text"]).strip() for t in turns
                                    if t.get("action") == "not_found" and t.get("caller_text")))
    actions = [e for e in events if e.get("type") == "action"]
    humans = meta.get("human_agents") or []
    parts: list[str] = []
    if transfer and str(transfer.get("summary", "")).strip() not in ("", "transfer requested from the console"):
        parts.append(_sentence(str(transfer["summary"])))
    else:
        # what the caller said, from the turns the assistant answered and the words a person heard after a takeover
        said_texts = [str(t.get("caller_text") or "") for t in turns]
        said_texts += [str(e.get("text") or "") for e in events if e.get("type") == "caller_turn"]
        asked = list(dict.fromkeys(" ".join(q.split()) for q in said_texts if q.strip()))[:4]
        if asked:
            parts.append(_sentence("The caller said " + "; ".join(f'"{q}"' for q in asked)))
    if humans:
        parts.append(_sentence(f"Taken over by {', '.join(str(h) for h in humans)}"))
    if notes.strip():
        parts.append(_sentence(notes))
    said = ", ".join(f"{a.get('name', 'action')} {a.get('outcome', '')}".strip() for a in actions)
    if said:
        parts.append(_sentence(f"Actions: {said}"))
    result = str(outcome or "ended")
    if transfer and transfer.get("reason"):
        result += f" ({transfer['reason']})"
    follow_ups = [f'Answer the caller\'s question: "{q}"' for q in unanswered]
    follow_ups += [f"Check action {a.get('name', 'action')}: {a.get('outcome', '')}"
                   + (f" ({a['error']})" if a.get("error") else "")
                   for a in actions if a.get("outcome") not in ("done", "ok", "success")]
    if unanswered:
        follow_ups.append("Add a KB entry for the unanswered question" + ("s" if len(unanswered) > 1 else ""))
    return {"summary": " ".join(p for p in parts if p) or "No summary: the caller said nothing the assistant kept.",
            "outcome": result, "follow_ups": "\n".join(follow_ups)}


def clean_wrapup(data: dict[str, Any], max_len: int = 4000) -> dict[str, str]:
    """The three wrap-up fields from a request body, as trimmed text."""
    out: dict[str, str] = {}
    for name in ("summary", "outcome", "follow_ups"):
        value = data.get(name, "")
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text")
        out[name] = re.sub(r"\r\n?", "\n", value).strip()[:max_len]
    return out


class AgentAssist:
    """Suggestions for one taken-over call: a search per caller turn (and per grown partial), latest wins."""

    def __init__(self, search: Callable[[str, int], list[Suggestion]], send: Callable[[dict[str, Any]], None],
                 executor: Any = None) -> None:
        self.search = search  # blocking: runs in the executor
        self.send = send
        self.executor = executor
        self.latest: dict[str, Any] = {"type": "suggestions", "text": "", "suggestions": []}
        self._seq = 0
        self._last_query = ""
        self._tasks: set[asyncio.Future[Any]] = set()

    def heard(self, text: str, final: bool) -> None:
        """The caller said (or is saying) ``text``: look it up unless it is a short or repeated partial."""
        query = " ".join(text.split())
        if final and query and query == self._last_query:
            self.send(self.latest)  # the partial was already looked up: the summary takes in the finished turn
            return
        if not query or query == self._last_query or (not final and len(query.split()) < MIN_PARTIAL_WORDS):
            return
        self._last_query = query
        self._seq += 1
        task = asyncio.ensure_future(self._lookup(self._seq, query))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup(self, seq: int, query: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self.executor, self.search, query, MAX_SUGGESTIONS)
        except Exception as exc:  # a failed lookup must not touch the call
            self.send({"type": "suggestions_failed", "error": type(exc).__name__})
            return
        if seq != self._seq:
            return  # the caller has said more since: an older answer would replace a newer one
        self.latest = {"type": "suggestions", "text": query, "suggestions": [s.as_dict() for s in found]}
        self.send(self.latest)

    async def drain(self) -> None:
        """Wait for lookups still running."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
