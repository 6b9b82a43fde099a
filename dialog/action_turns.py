"""The turns of a call that carry out an action: recognise the request, run the ActionFlow, call the port.

``Call.respond`` hands each turn here first; ``None`` means "not an action turn" and the KB answers as usual.
Every end of an action (called, failed, cancelled, given up) becomes an audit entry in the turn's
``extra["actions"]`` (slots with personal values masked), which the session stores as the call's events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from dialog import conversation as conv
from dialog import intents
from dialog.actions import (
    CALL,
    CANCELLED,
    GAVE_UP,
    KEY,
    OFFER_HUMAN,
    ActionFlow,
    ActionPort,
    ActionResult,
    ActionSet,
    ActionSpec,
    Step,
    asks_to_do,
    redacted_slots,
)
from dialog.reply import Reply, fixed

if TYPE_CHECKING:
    from dialog.brain import Call

log = logging.getLogger(__name__)
ACTION = "action"  # the Decision.action of a turn spent on an action
ANYTHING_ELSE = "Is there anything else I can help with?"
REPEAT = "repeat"


class ActionMatcher:
    """Which declared action the caller's words ask for: MiniLM cosine to each action's example phrasings."""

    def __init__(self, actions: ActionSet, encode: Callable[[list[str]], np.ndarray]) -> None:
        self.actions = actions
        texts: list[str] = []
        owner: list[int] = []
        for i, a in enumerate(actions.actions):
            for text in (a.description, *a.examples):
                texts.append(text)
                owner.append(i)
        self.matrix = encode(texts) if texts else np.zeros((0, 384), np.float32)
        self.owner = np.asarray(owner, dtype=np.int64)

    def best(self, vector: np.ndarray | None) -> tuple[ActionSpec, float] | None:
        """The closest action and its score (None without actions or a vector)."""
        if vector is None or not len(self.owner):
            return None
        scores = self.matrix @ vector
        i = int(np.argmax(scores))
        return self.actions.actions[int(self.owner[i])], float(scores[i])

    def match(self, vector: np.ndarray | None, text: str) -> ActionSpec | None:
        """The action asked for: a request ("can you ...") close enough to one of its phrasings."""
        if not asks_to_do(text):
            return None
        best = self.best(vector)
        return best[0] if best is not None and best[1] >= self.actions.match_score else None


class ActionTurns:
    """Per-call action state: the flow in progress, and the audits not yet reported."""

    def __init__(self, port: ActionPort | None, today: Callable[[], dt.date]) -> None:
        self.port = port
        self.today = today
        self.flow: ActionFlow | None = None
        self.unreported: list[dict[str, Any]] = []  # audits of calls that finished after their turn was cut off
        self._undo: list[ActionFlow | None] = []

    def drain(self) -> list[dict[str, Any]]:
        """Audits not reported yet (an action dropped or cut off), for the turn being answered."""
        out, self.unreported = self.unreported, []
        return out

    def checkpoint(self) -> None:
        """Before each caller turn: remember the flow so a retracted turn can restore it."""
        self._undo.append(self.flow.copy() if self.flow is not None else None)

    def rollback(self) -> None:
        """The last turn was retracted."""
        if self._undo:
            self.flow = self._undo.pop()

    async def respond(self, call: Call, text: str, redacted: str, dtmf: str | None, matched: ActionSpec | None,
                      **mood: Any) -> Reply | None:
        """A Reply when this turn belongs to an action (starts one or continues it); None otherwise."""
        if self.port is None:
            return None
        flow = self.flow
        said = intents.detect_intent(redacted, None)
        if flow is None:
            if matched is None or dtmf or said.name != intents.QUESTION:
                return None
            flow = ActionFlow(matched, self.today())
            step = flow.start(text)
            log.info("action %s requested", matched.name)
        else:
            if not dtmf and said.name in (intents.HUMAN, intents.GOODBYE, intents.REPEAT):
                if said.name == intents.REPEAT:
                    return None if flow.asking is None and not flow.confirming else self._repeat(call, flow,
                                                                                                 redacted, mood)
                self._audit(flow, "abandoned")
                self.flow = None
                return None  # the caller wants a person, or to hang up: the usual policy answers
            step = flow.turn(text, dtmf)
        self.flow = None if step.finished else flow
        return self._reply(call, flow, step, redacted, mood)

    def _repeat(self, call: Call, flow: ActionFlow, redacted: str, mood: dict[str, Any]) -> Reply:
        return self._reply(call, flow, Step(REPEAT), redacted, mood)

    def _reply(self, call: Call, flow: ActionFlow, step: Step, redacted: str, mood: dict[str, Any]) -> Reply:
        c = call.conversation
        decision = c.decide(redacted or "[key]", tier=conv.ANSWER, topic=flow.action.description,
                            force_question=True, **mood)
        audits = self.drain()
        decision.extra["actions"] = audits
        if decision.escalate:  # upset for too long: the usual hand-off, the action is dropped
            self._audit(flow, "abandoned", into=audits)
            self.flow = None
            handoff, offers = call._reply_chunks(decision, redacted, [])
            return Reply(decision, handoff, lambda spoken: c.record_reply(spoken, offered_human=offers))
        decision.action = ACTION
        if step.kind == REPEAT:
            step.say = [c.last_reply() or "Sorry, could you say that again?"]
        decision.extra["action"] = {"name": flow.action.name, "step": step.kind}
        offered = {"human": step.offer_human}
        if step.kind == CALL:
            chunks: AsyncIterator[str] = self._call(flow, decision.extra, audits, offered)
        else:
            if step.kind in (CANCELLED, GAVE_UP):
                self._audit(flow, "cancelled" if step.kind == CANCELLED else "gave_up", into=audits)
            tail = [OFFER_HUMAN] if step.offer_human else [ANYTHING_ELSE] if step.kind == CANCELLED else []
            chunks = fixed(*step.say, *tail) if step.kind != KEY else fixed()

        def done(spoken: str) -> None:
            c.record_reply(spoken, offered_human=offered["human"])

        return Reply(decision, chunks, done)

    async def _call(self, flow: ActionFlow, extra: dict[str, Any], audits: list[dict[str, Any]],
                    offered: dict[str, bool]) -> AsyncIterator[str]:
        """Say that it is being done, call the endpoint, say the result (or the fallback and a human)."""
        yield "Okay, one moment please. "
        assert self.port is not None
        action = flow.action
        started = time.perf_counter()
        if self._undo:  # the request is going out: taking this turn back must not bring the "yes" back with it
            self._undo[-1] = None
        task = asyncio.ensure_future(self._invoke(action, flow.slot_values()))

        def late(done: asyncio.Future[ActionResult]) -> None:  # the caller cut the reply off: audit it anyway
            if not done.cancelled() and done.exception() is None:
                self.unreported.append(self._entry(flow, done.result(), started))

        try:
            # shielded: an interruption stops the talking, not a request the service may already be acting on
            result = await asyncio.shield(task)
        except BaseException:
            task.add_done_callback(late)
            raise
        entry = self._entry(flow, result, started)
        audits.append(entry)
        extra["action"]["outcome"] = entry["outcome"]
        for sentence in flow.result_text(result):
            yield sentence.strip() + " "
        if result.ok:
            yield ANYTHING_ELSE + " "
        else:
            offered["human"] = True
            yield OFFER_HUMAN + " "

    async def _invoke(self, action: ActionSpec, slots: dict[str, str]) -> ActionResult:
        """The port's call, bounded by the endpoint's timeout (and a port that raises is a failure too)."""
        assert self.port is not None
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self.port.invoke(action, slots), action.endpoint.timeout_s + 1.0)
        except TimeoutError:
            return ActionResult(False, error="timeout", latency_ms=_ms(started))
        except Exception as exc:  # a broken port is a failed action, never a failed call
            return ActionResult(False, error=f"port error: {type(exc).__name__}", latency_ms=_ms(started))

    def _entry(self, flow: ActionFlow, result: ActionResult, started: float) -> dict[str, Any]:
        outcome = "ok" if result.ok else "failed"
        entry: dict[str, Any] = {"name": flow.action.name, "outcome": outcome,
                                 "slots": redacted_slots(flow.action, flow.values),
                                 "latency_ms": result.latency_ms or _ms(started)}
        if result.status is not None:
            entry["status"] = result.status
        if result.error:
            entry["error"] = result.error
        log.info("action %s %s in %.0f ms%s", flow.action.name, outcome, entry["latency_ms"],
                 f" ({result.error})" if result.error else "")
        return entry

    def _audit(self, flow: ActionFlow, outcome: str, into: list[dict[str, Any]] | None = None) -> None:
        entry = {"name": flow.action.name, "outcome": outcome, "slots": redacted_slots(flow.action, flow.values)}
        log.info("action %s %s", flow.action.name, outcome)
        (into if into is not None else self.unreported).append(entry)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
