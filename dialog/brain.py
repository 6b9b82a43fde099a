"""The dialog brain: shared models (KB, sentiment, LLM) and one `Call` per phone call."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dialog import conversation as conv
from dialog.acoustic import AcousticFeatures, ArousalTracker
from dialog.conversation import Conversation, Decision
from dialog.embeddings import Embedder, shared_embedder
from dialog.grounding import Grounding, extractive_answer
from dialog.kb import Hit, KnowledgeBase
from dialog.llm import Generator, make_generator
from dialog.options import DialogOptions, default_cache_dir
from dialog.pii import Redactor
from dialog.prompt import build_messages
from dialog.reply import Reply, fixed, grounded_answer
from dialog.sentiment import Sentiment, SentimentAnalyzer

log = logging.getLogger(__name__)

EMPATHY = ("I'm sorry about the trouble.", "I understand, that's frustrating.", "I'm sorry, I know this is annoying.")
ACKS = ("Okay.", "Sure.", "Right.")


_FOLLOW_UP = re.compile(r"^\W*(?:and|what about|how about|also|or|but|same for|is that)\b", re.IGNORECASE)


def _follow_up(text: str) -> bool:
    """ "And on Saturdays?" leans on the previous question; a new statement does not."""
    return bool(_FOLLOW_UP.match(text)) or (text.strip().endswith("?") and len(text.split()) <= 5)


class TurnLike(Protocol):
    """Anything with the caller's turn (voice_agent's TurnInput fits)."""

    text: str


class Brain:
    """Models shared by every call; `open_call()` starts the per-call state."""

    def __init__(self, options: DialogOptions | None = None, cache_dir: Path | str | None = None, *,
                 generator: Generator | None = None, embedder: Embedder | None = None,
                 knowledge: KnowledgeBase | None = None, sentiment: SentimentAnalyzer | None = None,
                 use_llm: bool = True) -> None:
        self.options = options or DialogOptions()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.embedder = embedder or shared_embedder()
        self.kb = knowledge or KnowledgeBase(self.options.kb_path, self.embedder, self.cache_dir)
        self.sentiment = sentiment or SentimentAnalyzer(self.options.sentiment_head or None, self.embedder)
        self.generator: Generator | None = None
        if use_llm:
            self.generator = generator or make_generator(self.options, self.cache_dir)
        # the LLM never sees card numbers, whatever the redaction settings for transcripts are
        self.redactor = Redactor.for_llm(self.options.redact)

    def load(self) -> None:
        """Load every model now (KB index, sentiment head, LLM): a clear DialogError if one is missing."""
        self.kb.load()
        self.sentiment.load()
        if self.generator is not None:
            self.generator.load()
            warm_up = getattr(self.generator, "warm_up", None)
            if warm_up is not None:
                warm_up(build_messages(self.options, "", "", []))

    async def aload(self) -> None:
        """load() off the event loop."""
        await asyncio.to_thread(self.load)

    def open_call(self) -> Call:
        """Per-call state for a new call."""
        return Call(self)

    async def aclose(self) -> None:
        """Release the generator's threads and connections."""
        if self.generator is not None:
            await self.generator.aclose()

    def score_sentences(self, question: str, sentences: list[str]) -> list[float]:
        """Cosine similarity of each sentence to the question (picks the passage sentence to speak)."""
        vecs = self.embedder.encode([question, *sentences])
        return [float(v @ vecs[0]) for v in vecs[1:]]


class Call:
    """One call: greeting(), respond(turn) -> Reply, retract(); matches voice_agent.ports.Brain."""

    def __init__(self, brain: Brain) -> None:
        self.brain = brain
        self.options = brain.options
        self.conversation = Conversation(self.options)
        self.arousal = ArousalTracker()
        self.redactions = 0

    def greeting(self) -> str:
        """What the agent says when it answers."""
        o = self.options
        return o.greeting or f"Thank you for calling {o.company}, this is {o.agent_name}. How can I help you today?"

    def retract(self) -> None:
        """Forget the last turn: the caller kept talking and the next turn will carry both fragments."""
        self.conversation.retract()

    def _analyse(self, text: str, previous: str, audio: np.ndarray | None, rate: int
                 ) -> tuple[Sentiment, list[Hit], AcousticFeatures | None, float | None]:
        """Blocking part of a turn (embedding, retrieval, acoustics): run in a worker thread."""
        brain = self.brain
        vec = brain.embedder.encode_one(text) if text.strip() else None
        sentiment = brain.sentiment.analyze(text)
        hits = brain.kb.search_vector(vec, brain.options.top_k, text) if vec is not None else []
        if previous and _follow_up(text) and (not hits or hits[0].score < brain.options.min_score):
            # a follow-up ("and on Saturdays?") is read together with the previous question
            joined = brain.kb.search(f"{previous} {text}", brain.options.top_k)
            if joined and (not hits or joined[0].score > hits[0].score):
                hits = joined
        features: AcousticFeatures | None = None
        arousal: float | None = None
        if audio is not None and len(audio):
            arousal, features = self.arousal.arousal(audio, rate)
        return sentiment, hits, features, arousal

    async def respond(self, turn: str | TurnLike, *, arousal: float | None = None, dtmf: str | None = None,
                      audio: np.ndarray | None = None, sample_rate: int = 16000) -> Reply:
        """Start a reply to the caller's turn: policy is decided now, the text streams from the Reply."""
        if isinstance(turn, str):
            text = turn
        else:
            text = turn.text
            arousal = arousal if arousal is not None else getattr(turn, "arousal", None)
            dtmf = dtmf or getattr(turn, "dtmf", None)
            audio = audio if audio is not None else getattr(turn, "audio", None)
            sample_rate = int(getattr(turn, "sample_rate", sample_rate) or sample_rate)
        redacted, counts = self.brain.redactor.redact_counted(text)
        self.redactions += sum(counts.values())
        previous = next((t.caller for t in reversed(self.conversation.history) if t.intent == "question"), "")
        sentiment, hits, features, measured = await asyncio.to_thread(
            self._analyse, redacted, previous, audio, sample_rate)
        if arousal is None:
            arousal = measured
        best = hits[0] if hits else None
        decision = self.conversation.decide(
            redacted, sentiment=sentiment.label, sentiment_score=sentiment.score, valence=sentiment.valence,
            arousal=arousal, best_score=best.score if best else None, topic=best.passage.topic if best else "",
            dtmf=dtmf)
        decision.extra.update(
            caller=redacted, redactions=dict(counts), arousal=arousal,
            sources=[{"id": h.passage.id, "score": round(h.score, 3)} for h in hits],
        )
        if features is not None:
            decision.extra["acoustic"] = {k: round(float(v), 3) for k, v in features.__dict__.items()}
        chunks, offers_human = self._reply_chunks(decision, redacted, hits)

        def done(spoken: str) -> None:
            self.conversation.record_reply(spoken, offered_human=offers_human)

        return Reply(decision, chunks, done)

    def _reply_chunks(self, d: Decision, text: str, hits: list[Hit]) -> tuple[AsyncIterator[str], bool]:
        """The text stream for the decided action, and whether it offers a transfer."""
        o = self.options
        upset = bool(d.extra.get("upset"))
        empathy = EMPATHY[self.conversation.mood.turns % len(EMPATHY)] if upset else ""
        if d.action == conv.ESCALATE:
            first = empathy or "Of course."
            if d.reason.startswith("the knowledge base"):
                first = "I'm sorry, I can't answer that myself."
            return fixed(first, "I'm connecting you with a colleague now, please stay on the line."), False
        if d.action == conv.GOODBYE:
            closing = "Thank you for your patience today." if upset else f"Thank you for calling {o.company}."
            return fixed(closing, "Goodbye."), False
        if d.action == conv.REPEAT:
            last = self.conversation.last_reply()
            return fixed(last or "I haven't said anything yet. How can I help you today?"), False
        if d.action == conv.MENU:
            if d.topic:
                return fixed(f"You chose {d.topic}.", f"What would you like to know about {d.topic}?"), False
            return fixed("Sorry, that's not an option.", self._menu_prompt()), False
        if d.action == conv.SMALLTALK:
            if d.intent == "thanks":
                return fixed("You're welcome.", "Is there anything else I can help with?"), False
            if d.intent == "greeting":
                return fixed("Hello.", "How can I help you today?"), False
            if d.intent == "details":
                if "[CARD]" in text:
                    return fixed("For your security, please don't read out card numbers on this line.",
                                 "How can I help you today?"), False
                return fixed("Thank you.", "What can I help you with?"), False
            return fixed("Okay.", "What would you like to know?"), False
        if d.action == conv.NOT_FOUND:
            return fixed(empathy or "I'm sorry, I don't have information about that.",
                         "Would you like me to connect you with a colleague?"), True
        assert hits, "an answer needs a passage"
        passage = hits[0].passage
        slots = 1 if upset else 2
        fact = extractive_answer(text, passage.answer, max_sentences=slots, scorer=self.brain.score_sentences,
                                 by_relevance=True)
        history = self.conversation.recent(o.history_turns)
        messages = build_messages(o, passage.answer, text, history, upset=upset, pleased=d.mood >= 0.4)
        report: dict[str, Any] = {}
        d.extra["grounding"] = report
        opener = empathy or (ACKS[self.conversation.mood.turns % len(ACKS)] if o.acknowledge else "")
        chunks = grounded_answer(
            generator=self.brain.generator, messages=messages, grounding=Grounding(passage.answer, text),
            fact=fact, slots=slots, upset=upset, opener=opener, max_tokens=o.max_new_tokens,
            temperature=o.temperature, first_token_timeout_s=o.first_token_timeout_s,
            reply_timeout_s=o.reply_timeout_s, report=report)
        return chunks, False

    def _menu_prompt(self) -> str:
        items = [f"press {d} for {t}" for d, t in self.conversation.menu.items()]
        return ("You can " + ", ".join(items) + ".") if items else "How can I help you today?"

    def summary(self) -> str:
        """Two sentences about the call so far, for a human agent."""
        return self.conversation.summary()

    def state(self) -> dict[str, Any]:
        """Mood, counters and escalation, for logs and `chat --json`."""
        c = self.conversation
        return {"mood": round(c.mood.mood, 3), "upset": c.mood.upset, "turns": len(c.history),
                "kb_failures": c.kb_failures, "escalated": c.escalated, "redactions": self.redactions}
