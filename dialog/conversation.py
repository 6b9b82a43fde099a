"""Per-call dialog state and policy: intents, mood, escalation, history, the summary for the human agent.

Pure logic: it is handed the sentiment, the retrieval result and the (already redacted) text of each turn,
so it can be tested without models or audio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dialog import intents
from dialog.mood import MoodTracker
from dialog.options import DialogOptions
from dialog.speech import shorten

# What the brain does with a turn.
ANSWER = "answer"
NOT_FOUND = "not_found"
ESCALATE = "escalate"
GOODBYE = "goodbye"
REPEAT = "repeat"
MENU = "menu"
SMALLTALK = "smalltalk"
CLARIFY = "clarify"  # two candidates close, or a middling one: ask which one the caller means

REASON_ASKED = "the caller asked for a human"
REASON_MOOD = "the caller has been upset for {n} turns"
REASON_KB = "the knowledge base could not answer {n} questions in a row"


@dataclass
class Decision:
    """What the brain decided for one turn (the fields of voice_agent's TurnOutcome, plus action and topic)."""

    intent: str = intents.QUESTION
    action: str = ANSWER
    escalate: bool = False
    reason: str = ""
    summary: str = ""
    hangup: bool = False
    sentiment: str = "neutral"
    sentiment_score: float = 0.0
    mood: float = 0.0
    topic: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        return asdict(self)


@dataclass
class Turn:
    """One exchange as remembered (caller text is already redacted)."""

    caller: str
    agent: str = ""
    intent: str = intents.QUESTION
    sentiment: str = "neutral"
    topic: str = ""
    answered: bool = True
    source: str = ""  # id of the KB entry the answer came from


class Conversation:
    """The state of one call: history, mood, failure counters and whether it has been escalated."""

    def __init__(self, options: DialogOptions | None = None) -> None:
        self.options = options or DialogOptions()
        self.menu = self.options.menu_map()
        self.mood = MoodTracker()
        self.history: list[Turn] = []
        self.kb_failures = 0
        self.escalated = False
        self.escalation_reason = ""
        self.offered_human = False  # the last reply offered a transfer: "yes" now means escalate
        self.asked_more = False  # the last reply asked "anything else?": "no" now means goodbye
        self.ended = False
        self.clarifying: list[str] = []  # passage ids named in the last clarifying question
        self.clarified_question = ""  # the caller's question that the clarifying question was about
        self._undo: list[tuple[Any, ...]] = []

    # -- turn handling -------------------------------------------------------------------------------

    def decide(self, text: str, *, sentiment: str = "neutral", sentiment_score: float = 0.0, valence: float = 0.0,
               arousal: float | None = None, best_score: float | None = None, topic: str = "",
               dtmf: str | None = None, tier: str | None = None, force_question: bool = False) -> Decision:
        """Fold in one caller turn and decide what to do.

        best_score is the top KB relevance (None: not searched); tier is the retrieval's verdict (answer,
        clarify, not_found; None: from best_score alone). force_question skips intent rules (the caller
        picked an option of a clarifying question).
        """
        self._undo.append((self.mood.mood, self.mood.turns, self.mood.negative_streak, self.kb_failures,
                           self.escalated, self.escalation_reason, self.offered_human, self.asked_more, self.ended,
                           list(self.clarifying), self.clarified_question))
        self.clarifying = []
        self.clarified_question = ""
        intent = intents.Intent(intents.QUESTION) if force_question else intents.detect_intent(text, dtmf)
        mood = self.mood.update(valence, arousal)
        decision = Decision(intent=intent.name, sentiment=sentiment, sentiment_score=sentiment_score, mood=mood)
        decision.extra["upset"] = self.mood.upset
        offered, self.offered_human = self.offered_human, False
        asked_more, self.asked_more = self.asked_more, False
        answered = True

        if intent.name == intents.MENU:
            choice = self.menu.get(intent.digit or "", "")
            decision.topic = choice
            if choice.lower() in ("agent", "human", "operator"):
                self._escalate(REASON_ASKED)
            else:
                decision.action = MENU
                decision.extra["digit"] = intent.digit
        elif intent.name == intents.HUMAN or (intent.name == intents.YES and offered):
            self._escalate(REASON_ASKED)
        elif intent.name == intents.GOODBYE or (intent.name == intents.NO and asked_more and not offered):
            decision.action = GOODBYE
        elif intent.name == intents.REPEAT:
            decision.action = REPEAT
        elif intent.name in (intents.THANKS, intents.GREETING, intents.YES, intents.NO, intents.DETAILS):
            decision.action = SMALLTALK
        else:
            if tier is None:
                tier = ANSWER if best_score is not None and best_score >= self.options.min_score else NOT_FOUND
            answered = tier != NOT_FOUND
            decision.action = tier
            decision.topic = topic if tier == ANSWER else ""
            if tier == ANSWER:
                self.kb_failures = 0
            elif tier == NOT_FOUND:  # asking which one the caller means is not a failure
                self.kb_failures += 1
            if self.kb_failures >= self.options.escalate_kb_failures:
                self._escalate(REASON_KB.format(n=self.kb_failures))

        if self.mood.negative_streak >= self.options.escalate_negative_turns and not self.escalated:
            self._escalate(REASON_MOOD.format(n=self.mood.negative_streak))
        if self.escalated:
            decision.action = ESCALATE
            decision.escalate = True
            decision.reason = self.escalation_reason
        decision.hangup = decision.action == GOODBYE
        self.ended = self.ended or decision.hangup
        self.history.append(Turn(text, intent=intent.name, sentiment=sentiment, topic=decision.topic,
                                 answered=answered))
        if decision.escalate:
            decision.summary = self.summary()
        return decision

    def record_reply(self, text: str, offered_human: bool = False) -> None:
        """Remember what the agent said for this turn (for repeats, history and the summary)."""
        if self.history:
            self.history[-1].agent = text
        self.offered_human = offered_human
        self.asked_more = "anything else" in text.lower()

    def retract(self) -> None:
        """Forget the last caller turn: the caller kept talking, and the next turn will carry both parts."""
        if not self._undo or not self.history:
            return
        (self.mood.mood, self.mood.turns, self.mood.negative_streak, self.kb_failures, self.escalated,
         self.escalation_reason, self.offered_human, self.asked_more, self.ended, self.clarifying,
         self.clarified_question) = self._undo.pop()
        self.history.pop()

    def ask_which(self, passage_ids: list[str], question: str) -> None:
        """Remember that the agent asked which of these entries the caller meant, and about what question."""
        self.clarifying = list(passage_ids)
        self.clarified_question = question

    def note_source(self, passage_id: str) -> None:
        """The KB entry the current turn was answered from."""
        if self.history:
            self.history[-1].source = passage_id

    def last_answered(self) -> Turn | None:
        """The caller's last question that was answered from the KB (follow-ups lean on it)."""
        for turn in reversed(self.history):
            if turn.intent == intents.QUESTION and turn.source:
                return turn
        return None

    def _escalate(self, reason: str) -> None:
        if not self.escalated:
            self.escalated = True
            self.escalation_reason = reason

    # -- memory -------------------------------------------------------------------------------------

    def last_reply(self) -> str:
        """The last thing the agent said (for "repeat that")."""
        for turn in reversed(self.history[:-1]):
            if turn.agent:
                return turn.agent
        return ""

    def recent(self, turns: int) -> list[Turn]:
        """The last completed exchanges, oldest first (the current turn excluded)."""
        done = [t for t in self.history[:-1] if t.agent]
        return done[-turns:] if turns > 0 else []

    def summary(self) -> str:
        """Two sentences for the human agent: what the call was about, and the caller's state and why."""
        topics: list[str] = []
        for t in self.history:
            if t.topic and t.topic not in topics:
                topics.append(t.topic)
        unanswered = [t.caller for t in self.history if not t.answered and t.caller]
        questions = [t.caller for t in self.history if t.intent == intents.QUESTION and t.caller]
        if topics:
            first = "The caller asked about " + _join([x.lower() for x in topics[:3]])
        elif questions:
            first = f'The caller said "{shorten(questions[0], 14).rstrip(".")}"'
        else:
            first = "The caller asked to speak to a person without stating the issue"
        if unanswered:
            first += f' and the assistant could not answer "{shorten(unanswered[-1], 14).rstrip(".")}"'
        n = len(self.history)
        second = f"They sound {self.mood.describe()} after {n} turn{'s' if n != 1 else ''}"
        if self.escalated:
            second += f", and the call is transferred because {self.escalation_reason}"
        return f"{first}. {second}."


def _join(items: list[str]) -> str:
    # topics are names like "billing and payments": ", then" keeps them apart
    return ", then ".join(items)
