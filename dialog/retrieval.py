"""Hybrid KB retrieval: two dense encoders, BM25 beside them, sound-alike tolerance, calibrated confidence.

Nothing here knows a company: every signal comes from the KB's own text.

- Dense: all-MiniLM-L6-v2 and multilingual-e5-small each score a passage by its best unit (its question,
  each answer sentence, the whole entry, and any optional `also` phrasing) mixed with the whole entry.
- Lexical: BM25 over the entries' words; numbers said as words count as digits ("five hundred" = 500),
  and a query word the KB does not use also searches the KB words that sound alike ("done" -> "down").
- Fusion: per-query z-scores of the three, plus answer-type agreement ("how much" wants a price) and
  exact numbers. The fused margin between the first two candidates and an absolute relevance of the
  first decide whether to answer, to ask which one the caller means, or to say the KB does not know.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dialog.numbers import find_word_numbers
from dialog.speech import split_sentences, strip_markdown

ANSWER = "answer"
CLARIFY = "clarify"
NOT_FOUND = "not_found"

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset("""
a an the and or but if of to in on at by for with from as is are was were be been being it its this that these those
there here you your we our us i me my he she they them their what which who when where why how can could will would
should do does did have has had not so than then too very just also about into over up out any all some more most
other only own same again once get got make want like need please thanks thank okay ok well really hi hello um uh
er yeah yes no oh know mean tell say said just bit little one
""".split())
_PRICE_Q = re.compile(r"\b(?:how\s+much|cost|costs|price|prices|pricing|charge|charges|fee|fees|pay|expensive|cheap)",
                      re.I)
_TIME_Q = re.compile(r"\b(?:when|what\s+time|hours|open|opening|close|closing)\b", re.I)
_DURATION_Q = re.compile(r"\b(?:how\s+long|how\s+many\s+(?:days|weeks|months|hours)|how\s+soon|how\s+quickly)\b",
                         re.I)
_HAS_PRICE = re.compile(r"[$€£]\s?\d|\b\d+(?:\.\d+)?\s*(?:dollars?|euros?|pounds?|cents?)\b|\bfree\b|\bno\s+charge\b",
                        re.I)
_HAS_TIME = re.compile(r"\b\d{1,2}(?::\d{2})?\s*[ap]\.?m\b|\b\d{1,2}:\d{2}\b|\b(?:monday|tuesday|wednesday|thursday|"
                       r"friday|saturday|sunday|weekend|weekday|24/7|hours|midnight|noon)\b", re.I)
_HAS_NUMBER = re.compile(r"\d")

# fusion weights (z-score units) and decision thresholds; see bench/RESULTS.md for how they were set
W_E5 = 1.0
W_MINILM = 1.0
W_BM25 = 0.25
NUMBER_BONUS = 0.8
TYPE_PENALTY = 0.6
NO_SHARED_WORDS = 0.15  # relevance lost by a passage that shares not one word (or sound-alike) with the query


def tokens(text: str) -> list[str]:
    """Lower-case word tokens with number words turned into digits."""
    low = text.lower()
    spans = find_word_numbers(low)
    if spans:
        out: list[str] = []
        last = 0
        for start, end, value in spans:
            out.append(low[last:start])
            out.append(f" {value} ")
            last = end
        out.append(low[last:])
        low = "".join(out)
    return _WORD.findall(low)


def stem(word: str) -> str:
    """A light suffix stemmer, enough for 'refunds'/'refunded'/'refunding'."""
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed tokens that carry meaning (numbers kept)."""
    return [stem(t) for t in tokens(text) if t not in _STOP and (len(t) > 2 or t.isdigit())]


def sound_key(word: str) -> str:
    """A coarse phonetic key: words that an ASR confuses ('down'/'done', 'bill'/'bell') share it."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return word
    for a, b in (("ph", "f"), ("ck", "k"), ("qu", "kw"), ("wh", "w"), ("gh", ""), ("kn", "n"), ("wr", "r"),
                 ("tch", "ch"), ("dg", "j"), ("sch", "sk"), ("ce", "se"), ("ci", "si"), ("cy", "si")):
        w = w.replace(a, b)
    head, rest = w[0], w[1:]
    rest = re.sub(r"[aeiouyhw]", "", rest)
    table = str.maketrans("bpfvcgjkqsxzdtlmnr", "11112222222233455" + "6")
    key = head + rest.translate(table)
    return re.sub(r"(.)\1+", r"\1", key)[:4]


@dataclass
class Unit:
    """One embedded text of a passage (its question, a sentence, the whole entry, an optional phrasing)."""

    owner: int
    kind: str  # "question" | "entry" | "sentence" | "also"
    text: str


@dataclass
class Scored:
    """A passage's scores for one query."""

    index: int
    fused: float
    relevance: float  # absolute: about 0.25 for unrelated text, 0.5+ for a close paraphrase
    dense: dict[str, float] = field(default_factory=dict)
    lexical: float = 0.0


@dataclass
class Ranking:
    """The candidates for one query, best first, and how sure the first one is."""

    scored: list[Scored]
    margin: float  # fused score of the first minus the second

    @property
    def best(self) -> Scored | None:
        """The first candidate."""
        return self.scored[0] if self.scored else None


def build_units(questions: Sequence[str], answers: Sequence[str], topics: Sequence[str],
                also: Sequence[Sequence[str]]) -> list[Unit]:
    """The texts embedded for each passage."""
    units: list[Unit] = []
    for i, (q, a, t) in enumerate(zip(questions, answers, topics, strict=True)):
        units.append(Unit(i, "question", q))
        units.append(Unit(i, "entry", f"{t}: {q} {a}"))
        sentences = split_sentences(strip_markdown(a))
        if len(sentences) > 1:
            units.extend(Unit(i, "sentence", f"{t}: {s}") for s in sentences)
        units.extend(Unit(i, "also", x) for x in also[i])
    return units


def pool(unit_scores: np.ndarray, owners: np.ndarray, kinds: np.ndarray, n: int) -> np.ndarray:
    """Per passage: half its best unit, half the best of its question/entry/also units."""
    best = np.full(n, -1.0, dtype=np.float32)
    np.maximum.at(best, owners, unit_scores)
    whole = np.full(n, -1.0, dtype=np.float32)
    mask = kinds != "sentence"
    np.maximum.at(whole, owners[mask], unit_scores[mask])
    return 0.5 * best + 0.5 * whole


def zscore(x: np.ndarray) -> np.ndarray:
    """Standardised scores across the passages of one query (0 for a flat row)."""
    sd = float(x.std())
    return (x - float(x.mean())) / sd if sd > 1e-9 else np.zeros_like(x)


class LexicalIndex:
    """BM25 over the passages' stemmed terms, with sound-alike expansion of words the KB does not use."""

    def __init__(self, docs: Sequence[str]) -> None:
        import bm25s

        self.docs_terms = [content_terms(d) for d in docs]
        self.vocabulary = {t for terms in self.docs_terms for t in terms}
        self.by_sound: dict[str, set[str]] = {}
        for term in self.vocabulary:
            if not term.isdigit():
                self.by_sound.setdefault(sound_key(term), set()).add(term)
        # the KB's own spelling of each term, for readings the dense encoders see ("clos" -> "close")
        spellings: dict[str, Counter[str]] = {}
        for d in docs:
            for t in tokens(d):
                if t not in _STOP and not t.isdigit():
                    spellings.setdefault(stem(t), Counter())[t] += 1
        self.surface = {term: counts.most_common(1)[0][0] for term, counts in spellings.items()}
        self._bm25 = bm25s.BM25()
        corpus = [terms or ["_"] for terms in self.docs_terms]
        self._bm25.index(corpus, show_progress=False)

    def expand(self, terms: list[str]) -> list[str]:
        """The query's terms plus, for each one the KB never uses, the KB terms that sound like it."""
        out = list(terms)
        for t in terms:
            if t in self.vocabulary or t.isdigit() or len(t) < 3:
                continue
            out.extend(sorted(self.by_sound.get(sound_key(t), set()))[:3])
        return out

    def repair(self, query: str) -> str:
        """Words the ASR split in two joined again when the KB uses the whole word ("out age" -> "outage",
        "reef und" -> "refund"): the join must be a KB word (or sound like one) that neither half is."""
        words = query.split()
        out: list[str] = []
        i = 0
        while i < len(words):
            if i + 1 < len(words):
                joined = self._joined(words[i], words[i + 1])
                if joined:
                    out.append(joined)
                    i += 2
                    continue
            out.append(words[i])
            i += 1
        return " ".join(out)

    def _joined(self, left: str, right: str) -> str:
        a, b = (re.sub(r"[^a-z]", "", w.lower()) for w in (left, right))
        if not a or not b or len(a + b) < 6 or not left[-1:].isalpha() or not right[:1].isalpha():
            return ""
        halves_known = stem(a) in self.vocabulary or stem(b) in self.vocabulary
        whole = stem(a + b)
        if whole in self.vocabulary and not (stem(a) in self.vocabulary and stem(b) in self.vocabulary):
            return a + b + right[len(right.rstrip(".,?!;:")):]
        if halves_known or a in _STOP or b in _STOP or (len(a) > 4 and len(b) > 4):
            return ""
        alike = sorted(t for t in self.by_sound.get(sound_key(a + b), set()) if abs(len(t) - len(a + b)) <= 2)
        return alike[0] + right[len(right.rstrip(".,?!;:")):] if alike else ""

    def sound_alike_reading(self, query: str) -> str:
        """The query with each word the KB never uses, and that sounds like exactly one KB word it could have
        been misheard for (one or two letters apart), replaced by that word ("has been done" -> "has been
        down"); the query itself when there is none."""
        out: list[str] = []
        changed = False
        for word in query.split():
            core = re.sub(r"[^a-z]", "", word.lower())
            if len(core) < 3 or core in _STOP or self._knows(core):
                out.append(word)
                continue
            # same consonants in the same order, only the vowels heard differently ("done"/"down", "bell"/"bill";
            # not "cut"/"chat", "swap"/"ship"); a short word can be two letters off, a longer one only one
            limit = 2 if len(core) <= 5 else 1
            near = {w for t in self.by_sound.get(sound_key(core), set()) for w in [self.surface.get(t, t)]
                    if w[:1] == core[:1] and _consonants(w) == _consonants(core) and _edits(core, w) <= limit}
            if len(near) == 1:
                out.append(near.pop() + word[len(word.rstrip(".,?!;:")):])
                changed = True
            else:
                out.append(word)
        return " ".join(out) if changed else query

    def _knows(self, word: str) -> bool:
        """Whether the KB uses the word in some form ("close" for "closed", "closes")."""
        return stem(word) in self.vocabulary or word in self.surface.values() or any(
            word.startswith(t) and len(word) - len(t) <= 2 for t in (word[:-1], word[:-2]) if t in self.vocabulary)

    def shares_words(self, query: str, index: int) -> bool:
        """Whether the passage uses any of the query's words, or words that sound like them."""
        return bool(set(self.expand(content_terms(query))) & set(self.docs_terms[index]))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage."""
        terms = [t for t in self.expand(content_terms(query)) if t in self.vocabulary]
        if not terms:
            return np.zeros(len(self.docs_terms), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)


def _consonants(word: str) -> str:
    """The consonant skeleton of a word: vowels and w/y dropped, doubled letters once ("down" -> "dn")."""
    return re.sub(r"(.)\1+", r"\1", re.sub(r"[aeiouwy]", "", word))


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (short words only)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def answer_type_penalty(query: str, answers: Sequence[str]) -> np.ndarray:
    """Penalty for passages that cannot hold the kind of fact asked for (a price, a time, a duration)."""
    out = np.zeros(len(answers), dtype=np.float32)
    wants = []
    if _PRICE_Q.search(query):
        wants.append(_HAS_PRICE)
    if _TIME_Q.search(query):
        wants.append(_HAS_TIME)
    if _DURATION_Q.search(query):
        wants.append(_HAS_NUMBER)
    for pattern in wants:
        out += np.array([0.0 if pattern.search(a) else TYPE_PENALTY for a in answers], dtype=np.float32)
    return out


def number_bonus(query: str, texts: Sequence[str]) -> np.ndarray:
    """Bonus for passages that name a number the query names ("the five hundred plan" -> Fiber 500)."""
    wanted = {t for t in tokens(query) if t.isdigit()}
    out = np.zeros(len(texts), dtype=np.float32)
    if not wanted:
        return out
    for i, text in enumerate(texts):
        if wanted & {t for t in tokens(text) if t.isdigit()}:
            out[i] = NUMBER_BONUS
    return out


def relevance(minilm: float, e5: float) -> float:
    """One absolute relevance from the two cosines (e5's live in a narrow band near 0.8)."""
    return 0.5 * minilm + 0.5 * (e5 - 0.8) * 5.0


Encoder = Callable[[list[str]], np.ndarray]


def rank(query: str, *, unit_vectors: dict[str, np.ndarray], query_vectors: dict[str, np.ndarray],
         owners: np.ndarray, kinds: np.ndarray, lexical: LexicalIndex, answers: Sequence[str],
         titles: Sequence[str], boost: np.ndarray | None = None, k: int = 3) -> Ranking:
    """Fuse the signals for one query; `boost` adds per-passage z-units (conversation context)."""
    n = len(answers)
    pooled = {name: pool(unit_vectors[name] @ query_vectors[name], owners, kinds, n) for name in unit_vectors}
    lex = lexical.scores(query)
    fused = W_MINILM * zscore(pooled["minilm"]) + W_E5 * zscore(pooled["e5"]) + W_BM25 * zscore(lex)
    fused = fused - answer_type_penalty(query, answers) + number_bonus(query, titles)
    if boost is not None:
        fused = fused + boost
    order = np.argsort(-fused)[: max(k, 2)]
    scored = [Scored(int(i), float(fused[i]),
                     relevance(float(pooled["minilm"][i]), float(pooled["e5"][i]))
                     - (0.0 if lexical.shares_words(query, int(i)) else NO_SHARED_WORDS),
                     {name: round(float(v[i]), 4) for name, v in pooled.items()}, float(lex[i])) for i in order]
    margin = scored[0].fused - scored[1].fused if len(scored) > 1 else math.inf
    return Ranking(scored[:k], margin)
