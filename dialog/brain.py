"""The dialog brain: shared models (KB, sentiment, LLM) and one `Call` per phone call."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dialog import conversation as conv
from dialog.acoustic import AcousticFeatures, ArousalTracker
from dialog.action_turns import ActionMatcher, ActionTurns
from dialog.actions import ActionPort, ActionSet, ActionSpec, load_actions
from dialog.caller import CallerContext, CallerDesk, Verifier
from dialog.conversation import Conversation, Decision, Turn
from dialog.embeddings import Embedder, shared_embedder
from dialog.grounding import Grounding, extractive_answer
from dialog.kb import Hit, KnowledgeBase, Passage, Retrieval, kb_settings
from dialog.llm import Generator, make_generator
from dialog.options import DialogOptions, default_cache_dir
from dialog.pii import Redactor
from dialog.prompt import build_messages
from dialog.reply import Reply, fixed, grounded_answer
from dialog.retrieval import content_terms
from dialog.sentiment import Sentiment, SentimentAnalyzer

log = logging.getLogger(__name__)

EMPATHY = ("I'm sorry about the trouble.", "I understand, that's frustrating.", "I'm sorry, I know this is annoying.")
ACKS = ("Okay.", "Sure.", "Right.")


_FOLLOW_UP = re.compile(r"^\W*(?:and|what about|how about|also|or|but|same for|is that|what if|then|so)\b",
                        re.IGNORECASE)
_ANAPHOR = re.compile(r"\b(?:that|it|this|those|them|the same|that one|this one|one)\b", re.IGNORECASE)
FOLLOW_UP_BOOST = 0.5  # z units for the entries of the previous answer's topic
SAME_ENTRY_BOOST = 0.3  # and a little more for the entry itself ("how much is that?")
_FIRST = re.compile(r"\b(?:first|former|1st|number one|option one|the one)\b|^\W*(?:one|1)\W*$", re.I)
_SECOND = re.compile(r"\b(?:second|latter|2nd|number two|option two|other one|the other)\b|^\W*(?:two|2)\W*$",
                     re.I)
_AGREE = re.compile(r"^\W*(?:yes|yeah|yep|yup|correct|right|exactly|that'?s (?:it|right|the one)|sure|please)\b",
                    re.I)
_NEITHER = re.compile(r"^\W*(?:no|nope|neither|none|not (?:really|quite|that|exactly))\b|\bsomething else\b", re.I)


def _follow_up(text: str) -> bool:
    """ "And on Saturdays?", "how much is that?" lean on the previous question; a new statement does not."""
    words = len(text.split())
    return (bool(_FOLLOW_UP.match(text)) or (text.strip().endswith("?") and words <= 5)
            or (words <= 14 and bool(_ANAPHOR.search(text))))


def _which(text: str, dtmf: str | None, candidates: list[Passage]) -> int | None:
    """Which candidate the caller picked after a clarifying question: index, -1 for none, None: not an answer."""
    if dtmf:
        digit = dtmf.strip()[:1]
        if digit.isdigit() and 1 <= int(digit) <= len(candidates):
            return int(digit) - 1
        return None
    t = " ".join(text.split())
    if len(candidates) > 1 and _SECOND.search(t):
        return 1
    if _FIRST.search(t):
        return 0
    if _NEITHER.match(t):
        return -1
    if len(candidates) == 1 and _AGREE.match(t):
        return 0
    said = set(content_terms(t))
    overlap = [len(said & set(content_terms(f"{p.label} {p.question} {p.answer}"))) for p in candidates]
    best = max(overlap) if overlap else 0
    if best > 0 and overlap.count(best) == 1 and len(t.split()) <= 8:
        return overlap.index(best)
    return None


_LEADING_YES_NO = re.compile(r"^\s*(?:yes|no)\s*[,.;:!-]+\s*(?=\w)", re.IGNORECASE)


def without_yes_no(sentence: str) -> str:
    """ "Yes, verified students get 10% off." -> "Verified students get 10% off." """
    rest = _LEADING_YES_NO.sub("", sentence, count=1)
    return rest[:1].upper() + rest[1:] if rest != sentence else sentence


def clarifying_question(candidates: list[Passage]) -> str:
    """ "Just to check, do you mean X, or Y?" built from the entries' labels."""
    labels = [_lower_first(p.label) for p in candidates]
    if len(labels) == 1:
        return f"Just to check, do you mean {labels[0]}?"
    return f"Just to check, do you mean {labels[0]}, or {labels[1]}?"


def _lower_first(text: str) -> str:
    words = text.split()
    if words and not (len(words[0]) > 1 and words[0][1:2].isupper()) and words[0] not in ("I",):
        words[0] = words[0][:1].lower() + words[0][1:]
    return " ".join(words)


class TurnLike(Protocol):
    """Anything with the caller's turn (voice_agent's TurnInput fits)."""

    text: str


class Brain:
    """Models shared by every call; `open_call()` starts the per-call state."""

    def __init__(self, options: DialogOptions | None = None, cache_dir: Path | str | None = None, *,
                 generator: Generator | None = None, embedder: Embedder | None = None,
                 knowledge: KnowledgeBase | None = None, sentiment: SentimentAnalyzer | None = None,
                 use_llm: bool = True, actions: ActionPort | None = None,
                 today: Callable[[], dt.date] = dt.date.today) -> None:
        options = options or DialogOptions()
        self.options = options.with_kb_settings(kb_settings(options.kb_path) if options.kb_path.is_dir() else {})
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.embedder = embedder or shared_embedder()
        self.kb = knowledge or KnowledgeBase(self.options.kb_path, self.embedder, self.cache_dir)
        self.sentiment = sentiment or SentimentAnalyzer(self.options.sentiment_head or None, self.embedder)
        self.generator: Generator | None = None
        if use_llm:
            self.generator = generator or make_generator(self.options, self.cache_dir)
        # the LLM never sees card numbers, whatever the redaction settings for transcripts are
        self.redactor = Redactor.for_llm(self.options.redact)
        # actions.yaml beside the documents; carried out only through a port (the product's is HTTP)
        self.actions = load_actions(self.options.kb_path) if self.options.kb_path.is_dir() else ActionSet()
        self.action_port = actions
        self.today = today
        self.action_matcher: ActionMatcher | None = None

    def load(self) -> None:
        """Load every model now (KB index, sentiment head, LLM): a clear DialogError if one is missing."""
        self.kb.load()
        if not self.options.example and self.kb.passages:
            # the KB's first entry is the prompt's worked example when the company gave none
            first = self.kb.passages[0]
            sentences = extractive_answer(first.question, first.answer, max_sentences=1)
            self.options.example = {"facts": first.answer, "question": first.question,
                                    "answer": sentences[0] if sentences else first.answer}
        self.sentiment.load()
        self.action_matcher = ActionMatcher(self.actions, self.embedder.encode)
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
        self.caller = CallerDesk()  # who is calling (set by the front end), and the account verification dialogue
        self.action_turns = ActionTurns(brain.action_port, brain.today)
        self._asked_for: ActionSpec | None = None  # the action this turn's words ask for (set by _analyse)

    def set_caller(self, context: CallerContext | None, verifier: Verifier | None = None,
                   policy: str = "account") -> None:
        """Tell the call who the caller is (greeting by name, plan, last calls) and how to verify one who is not."""
        self.caller = CallerDesk(verifier, policy=policy)
        self.caller.context = context

    def greeting(self) -> str:
        """What the agent says when it answers."""
        o = self.options
        if o.greeting:
            return self.caller.greet(o.greeting)
        where = f" {o.company}" if o.company else ""
        who = f", this is {o.agent_name}" if o.agent_name else ""
        return self.caller.greet(f"Thank you for calling{where}{who}. How can I help you today?")

    def retract(self) -> None:
        """Forget the last turn: the caller kept talking and the next turn will carry both fragments."""
        self.conversation.retract()
        self.action_turns.rollback()

    def _analyse(self, text: str, audio: np.ndarray | None, rate: int
                 ) -> tuple[Sentiment, Retrieval, AcousticFeatures | None, float | None]:
        """Blocking part of a turn (embedding, retrieval, acoustics): run in a worker thread."""
        brain = self.brain
        vec = brain.embedder.encode_one(text) if text.strip() else None
        sentiment = brain.sentiment.analyze(text)
        k = max(brain.options.top_k, 2)
        found = brain.kb.retrieve(text, k, minilm_vector=vec) if vec is not None else Retrieval([], 0.0)
        last = self.conversation.last_answered()
        if last is not None and vec is not None:
            found = self._follow_up(text, last, found, k)
        matcher = brain.action_matcher
        self._asked_for = matcher.match(vec, text) if matcher is not None and self.action_turns.port else None
        features: AcousticFeatures | None = None
        arousal: float | None = None
        if audio is not None and len(audio):
            arousal, features = self.arousal.arousal(audio, rate)
        return sentiment, found, features, arousal

    def _follow_up(self, text: str, last: Turn, plain: Retrieval, k: int) -> Retrieval:
        """A follow-up ("and the quickest one?", "how much is that?") is ranked on its own words with the previous
        answer's topic leading, and its relevance is read together with the previous question."""
        kb = self.brain.kb
        boost = {p.id: FOLLOW_UP_BOOST for p in kb.passages if p.topic == last.topic}
        if last.source:
            boost[last.source] = FOLLOW_UP_BOOST + SAME_ENTRY_BOOST
        leans = _follow_up(text)
        candidate = kb.retrieve_in_context(text, last.caller, k, boost=boost, leans=leans)
        if leans and self.tier(candidate)[0] != conv.NOT_FOUND:
            # "does that cost anything?": its own words cannot say what "that" is, however sure they look
            return candidate
        return candidate if self._rank_key(candidate) >= self._rank_key(plain) else plain

    def tier(self, found: Retrieval) -> tuple[str, list[Hit]]:
        """Answer, ask which one (with the candidates to name), or say the KB does not know."""
        o = self.options
        return found.tier(o.min_score, o.answer_score, o.clarify_margin)

    def _rank_key(self, found: Retrieval) -> tuple[int, float]:
        action, _ = self.tier(found)
        order = {conv.ANSWER: 2, conv.CLARIFY: 1, conv.NOT_FOUND: 0}[action]
        return order, (found.hits[0].score if found.hits else 0.0)

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
        self.action_turns.checkpoint()
        if dtmf and self.action_turns.flow is not None:  # a key for the action in progress: nothing to analyse,
            acted = await self.action_turns.respond(self, "", "", dtmf, None)  # and taken before the next key
            if acted is not None:
                return acted
        if self.action_turns.flow is None and self.caller.concerns(text):
            return await self._caller_reply(text, dtmf)
        redacted, counts = self.brain.redactor.redact_counted(text)
        self.redactions += sum(counts.values())
        c = self.conversation
        sentiment, found, features, measured = await asyncio.to_thread(self._analyse, redacted, audio, sample_rate)
        if arousal is None:
            arousal = measured
        kb = self.brain.kb
        pending = [p for pid in c.clarifying if (i := kb.index_of(pid)) is not None for p in [kb.passages[i]]]
        choice = _which(redacted, dtmf, pending) if pending else None
        if choice is None:
            acted = await self.action_turns.respond(
                self, text, redacted, dtmf, self._asked_for, sentiment=sentiment.label,
                sentiment_score=sentiment.score, valence=sentiment.valence, arousal=arousal)
            if acted is not None:
                return acted
        question = redacted
        force = False
        if choice is not None:
            # the caller answered the clarifying question: answer their original question from their pick
            question, force = c.clarified_question or redacted, True
            if choice >= 0:
                chosen = pending[choice]
                found = Retrieval([Hit(chosen, 1.0, 0.0)], float("inf"))
                action, used = conv.ANSWER, found.hits
            else:
                action, used = conv.NOT_FOUND, []
        else:
            action, used = self.tier(found)
        best = found.hits[0] if found.hits else None
        decision = c.decide(
            question if force else redacted, sentiment=sentiment.label, sentiment_score=sentiment.score,
            valence=sentiment.valence, arousal=arousal, best_score=best.score if best else None,
            topic=used[0].passage.topic if used else "", dtmf=None if force else dtmf, tier=action,
            force_question=force)
        if decision.action == conv.CLARIFY:
            c.ask_which([h.passage.id for h in used], redacted)
            decision.extra["candidates"] = [h.passage.id for h in used]
        elif decision.action == conv.ANSWER and used:
            c.note_source(used[0].passage.id)
        decision.extra.update(
            caller=redacted, redactions=dict(counts), arousal=arousal,
            sources=[{"id": h.passage.id, "score": round(h.score, 3), "fused": round(h.fused, 3)}
                     for h in (used if decision.action == conv.ANSWER else found.hits)],
            margin=round(found.margin, 3) if found.hits and found.margin != float("inf") else None,
        )
        if self.action_turns.unreported:
            decision.extra["actions"] = self.action_turns.drain()
        if choice is not None:
            decision.extra["clarified"] = choice
        if features is not None:
            decision.extra["acoustic"] = {k: round(float(v), 3) for k, v in features.__dict__.items()}
        chunks, offers_human = self._reply_chunks(decision, question, used)

        def done(spoken: str) -> None:
            self.conversation.record_reply(spoken, offered_human=offers_human)

        return Reply(decision, chunks, done)

    async def _caller_reply(self, text: str, dtmf: str | None) -> Reply:
        """A turn about the caller's own account (or an answer to the verification questions)."""
        sentences = await self.caller.handle(text, dtmf)
        ctx = self.caller.context
        decision = Decision(intent="account", action="account", mood=self.conversation.mood.mood,
                            extra={"caller": self.brain.redactor.redact(text), "verifying": self.caller.state,
                                   "identified": ctx is not None})
        return Reply(decision, fixed(*sentences))

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
        if d.action == conv.CLARIFY:
            return fixed(empathy, clarifying_question([h.passage for h in hits])), False
        assert hits, "an answer needs a passage"
        passage = hits[0].passage
        generate = o.answer_style == "generate" and self.brain.generator is not None
        slots = 1 if upset and generate else 2  # the passage's own sentences stay whole even for an upset caller
        fact = extractive_answer(text, passage.answer, max_sentences=slots, scorer=self.brain.score_sentences,
                                 by_relevance=True)
        # the entry's "Yes, ..." answered its own question, not necessarily the caller's: keep only the fact
        fact = [without_yes_no(s) for s in fact]
        history = self.conversation.recent(o.history_turns)
        messages = build_messages(o, passage.answer, text, history, upset=upset, pleased=d.mood >= 0.4)
        if self.caller.context is not None:
            messages[0]["content"] += " " + self.caller.context.facts()
        report: dict[str, Any] = {}
        d.extra["grounding"] = report
        opener = empathy or (ACKS[self.conversation.mood.turns % len(ACKS)] if o.acknowledge and generate else "")
        chunks = grounded_answer(
            generator=self.brain.generator if generate else None, messages=messages,
            grounding=Grounding(passage.answer, text, names=self._names()),
            fact=fact, slots=slots, upset=upset, opener=opener, max_tokens=o.max_new_tokens,
            temperature=o.temperature, first_token_timeout_s=o.first_token_timeout_s,
            reply_timeout_s=o.reply_timeout_s, report=report)
        return chunks, False

    def _names(self) -> list[str]:
        """Words the agent may say without a source: its own and the company's name."""
        ctx = self.caller.context
        return [self.options.company, self.options.agent_name, *([ctx.first_name] if ctx is not None else [])]

    def _menu_prompt(self) -> str:
        items = [f"press {d} for {t}" for d, t in self.conversation.menu.items()]
        return ("You can " + ", ".join(items) + ".") if items else "How can I help you today?"

    def topics(self) -> list[str]:
        """The KB topics answered on this call, first first (what the caller's next call is told about)."""
        return list(dict.fromkeys(t.topic for t in self.conversation.history if t.topic and t.answered))

    def summary(self) -> str:
        """Two sentences about the call so far, for a human agent."""
        return self.conversation.summary()

    def state(self) -> dict[str, Any]:
        """Mood, counters and escalation, for logs and `chat --json`."""
        c = self.conversation
        return {"mood": round(c.mood.mood, 3), "upset": c.mood.upset, "turns": len(c.history),
                "kb_failures": c.kb_failures, "escalated": c.escalated, "redactions": self.redactions}
