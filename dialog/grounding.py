"""The grounding guard: a small model invents facts, so every generated sentence is checked against the passage."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dialog.numbers import WORD_VALUES, find_word_numbers
from dialog.speech import split_sentences, strip_markdown

STOPWORDS = frozenset("""
a an the and or but if of to in on at by for with from as is are was were be been being it its this that these
those there here you your yours we our ours us i me my mine he she they them their what which who when where why
how can could will would should shall may might must do does did done have has had not no yes so than then too
very just also about into over under up down out any all each every some more most other such only own same
again further once can't cannot don't won't i'm you're we're it's that's there's let's i'll you'll we'll i've
you've we've get got make made want like need please thanks thank sure okay ok well really per
""".split())
# words an agent may add without a source: politeness and call-handling, not facts
GENERIC = frozenset("""
help happy sorry understand apologise apologize afraid inconvenience trouble problem issue question call calling
caller customer agent colleague moment check look today now right certainly course absolutely thing things way
know let tell able glad assist good great fine info information answer service
""".split())
_SCALE = frozenset(("hundred", "thousand", "million", "half", "quarter", "dollar", "cent"))
COLOURS = frozenset("""
red green blue amber orange yellow white black purple pink grey gray silver gold flashing blinking steady solid
""".split())
_YES_NO = re.compile(r"^\W*(?:yes|yeah|yep|no|nope|sure|of course|certainly|absolutely|correct)\b", re.I)
_NAME = re.compile(r"\b[A-Z][A-Za-z]*(?:[- ]?\d+)?\b")
NEGATIONS = re.compile(
    r"\b(?:not|no|never|can't|cannot|don't|doesn't|won't|isn't|aren't|unable|nobody|nothing)\b", re.IGNORECASE)
META = re.compile(
    r"as (?:a|an) (?:ai|phone|support|language)|the (?:caller|customer|user) (?:is|asks|wants)|sorry for your loss|"
    r"i'm not (?:able|available|equipped)|i am not (?:able|available|equipped)|facebook|twitter|website of|"
    r"\bfacts?\b|you're sam|you are sam",
    re.I,
)
CHEERFUL = re.compile(r"!|\b(?:great|glad|happy|awesome|fantastic|wonderful|excited|delighted|love|amazing|"
                      r"perfect|brilliant|excellent)\b", re.I)
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s?m\b\.?", re.I)
_CLOCK = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """Lower-case stems of the words that carry meaning."""
    words = re.findall(r"[a-z][a-z'-]+", text.lower())
    return [_stem(w) for w in words if w not in STOPWORDS and len(w) > 2]


def quantities(text: str) -> list[str]:
    """Numbers, prices and times in reading order, normalised: '8 PM' -> 't20:00', '$39.99' -> '39.99'."""
    found: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []

    def taken(start: int, end: int) -> bool:
        return any(start < e and s < end for s, e in spans)

    for m in _TIME.finditer(text):
        hour = int(m.group(1)) % 12 + (12 if m.group(3).lower() == "p" else 0)
        found.append((m.start(), f"t{hour:02d}:{int(m.group(2) or 0):02d}"))
        spans.append((m.start(), m.end()))
    for m in _CLOCK.finditer(text):
        if not taken(m.start(), m.end()):
            found.append((m.start(), f"t{int(m.group(1)):02d}:{int(m.group(2)):02d}"))
            spans.append((m.start(), m.end()))
    for m in _NUMBER.finditer(text):
        if not taken(m.start(), m.end()):
            raw = m.group(0).replace(",", "").rstrip(".")
            if raw.endswith(".00"):
                raw = raw[:-3]
            found.append((m.start(), raw))
            spans.append((m.start(), m.end()))
    for start, end, value in find_word_numbers(text):
        if not taken(start, end):
            found.append((start, str(value)))
    return [q for _, q in sorted(found)]


def _with_bare_hours(seq: Sequence[str]) -> set[str]:
    out = set(seq)
    for q in seq:
        if q.startswith("t"):
            hour = int(q[1:3])
            out.update({str(hour), str(hour % 12 or 12)})
    return out


@dataclass(frozen=True)
class Verdict:
    """Whether a sentence may be spoken, and why not."""

    ok: bool
    reason: str = ""


class Grounding:
    """Checks generated sentences against the retrieved passage and the caller's question."""

    def __init__(self, passage: str, question: str = "", min_support: float = 0.6,
                 names: Sequence[str] = (), claim_support: float = 0.85) -> None:
        self.passage = passage
        self.question = question
        self.min_support = min_support
        self.claim_support = claim_support
        self.generic = GENERIC | {w for n in names for w in content_words(n)}
        self.passage_quantities = quantities(passage)
        self.allowed_quantities = _with_bare_hours(self.passage_quantities) | set(quantities(question))
        self.vocabulary = set(content_words(passage)) | set(content_words(question)) | self.generic
        self.passage_negates = bool(NEGATIONS.search(passage))
        self.own_names = {w.lower() for n in names for w in n.split()}
        # a claim must be carried by one sentence of the passage
        windows = split_sentences(strip_markdown(passage)) or [passage]
        self.windows = [(set(content_words(w)), {c for c in COLOURS if re.search(rf"\b{c}\b", w, re.I)},
                         _names(w), bool(NEGATIONS.search(w))) for w in windows]

    def _adjacent(self, a: str, b: str) -> bool:
        seq = self.passage_quantities
        for x, y in itertools.pairwise(seq):
            if (x, y) == (a, b) or ((y, x) == (a, b) and not (a.startswith("t") and b.startswith("t"))):
                return True
        return a == b

    def check(self, sentence: str, upset: bool = False) -> Verdict:
        """Numbers, times and prices must come from the passage; most words too; no meta talk or cheer at anger."""
        text = strip_markdown(sentence)
        if not text:
            return Verdict(False, "empty")
        if META.search(text):
            return Verdict(False, "meta talk")
        if upset and CHEERFUL.search(text):
            return Verdict(False, "cheerful at an upset caller")
        qs = quantities(text)
        missing = [q for q in qs if q not in self.allowed_quantities]
        if missing:
            return Verdict(False, f"quantities not in the passage: {', '.join(missing)}")
        for a, b in itertools.pairwise(qs):
            if not self._adjacent(a, b):
                return Verdict(False, f"{a} and {b} are not paired in the passage")
        if NEGATIONS.search(text) and not self.passage_negates:
            return Verdict(False, "negation the passage does not make")
        words = content_words(text)
        if words:
            support = sum(w in self.vocabulary for w in words) / len(words)
            if support < self.min_support:
                return Verdict(False, f"only {support:.0%} of its words come from the passage")
        return self._claim(text, words)

    def _claim(self, text: str, words: list[str]) -> Verdict:
        """The sentence's claim (its specific words, colours, names, yes/no) must sit in one passage sentence."""
        specific = [w for w in words if w not in self.generic and w not in WORD_VALUES and w not in _SCALE]
        colours = {c for c in COLOURS if re.search(rf"\b{c}\b", text, re.I)}
        names = {n for n in _names(text) if n not in self.own_names}
        yes_no = bool(_YES_NO.match(text))
        if yes_no and len(specific) < 2:
            return Verdict(False, "a yes or no the passage does not state")
        if not specific and not colours and not names:
            return Verdict(True)
        best = 0.0
        for vocab, w_colours, w_names, negates in self.windows:
            if not colours <= w_colours or not names <= w_names:
                continue
            if NEGATIONS.search(text) and not negates:
                continue
            support = sum(w in vocab for w in specific) / len(specific) if specific else 1.0
            best = max(best, support)
        # a colour or a name ties its state to it: stricter than a plain sentence
        needed = self.claim_support if (colours or names) else self.min_support
        if best < needed:
            what = "colour" if colours else "name" if names else "claim"
            return Verdict(False, f"its {what} is not stated together in one sentence of the passage")
        return Verdict(True)

    def covers(self, spoken: str, fact: str) -> bool:
        """Whether what was said already carries the fact's numbers (or most of its words when it has none)."""
        fact_q = set(quantities(fact))
        said_q = set(quantities(spoken))
        if fact_q:
            return len(fact_q & said_q) >= max(1, len(fact_q) / 2)
        fact_w = set(content_words(fact))
        if not fact_w:
            return True
        return len(fact_w & set(content_words(spoken))) / len(fact_w) >= 0.5


def _names(text: str) -> set[str]:
    """Product-like names: capitalised words inside a sentence and words with numbers ('Fiber 500')."""
    out: set[str] = set()
    for sentence in split_sentences(text) or [text]:
        for m in _NAME.finditer(sentence.strip()):
            if m.start() == 0 and not re.search(r"\d", m.group(0)):
                continue  # a capital that only starts the sentence
            word = m.group(0).lower().replace("-", " ")
            if word not in STOPWORDS and word not in ("i", "i'm"):
                out.add(word)
    return out


def extractive_answer(question: str, answer: str, max_sentences: int = 2, max_words: int = 40,
                      scorer: Callable[[str, list[str]], list[float]] | None = None,
                      by_relevance: bool = False) -> list[str]:
    """The passage sentences that best answer the question, short enough for speech.

    In passage order, or best first with by_relevance (so a caller with fewer slots takes the best ones).
    """
    sentences = split_sentences(strip_markdown(answer))
    if len(sentences) <= 1:
        return sentences
    if scorer is not None:
        scores = scorer(question, sentences)
    else:
        q = set(content_words(question))
        scores = [len(q & set(content_words(s))) / (1 + len(q)) for s in sentences]
    # the first sentence of an entry usually states its main fact
    scores = [s + (0.05 if i == 0 else 0.0) for i, s in enumerate(scores)]
    order = sorted(range(len(sentences)), key=lambda i: -scores[i])
    chosen: list[int] = []
    words = 0
    for i in order:
        n = len(sentences[i].split())
        if len(chosen) >= max_sentences or (chosen and words + n > max_words):
            break
        chosen.append(i)
        words += n
    return [sentences[i] for i in (chosen if by_relevance else sorted(chosen))]
