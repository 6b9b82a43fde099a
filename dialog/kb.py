"""The knowledge base: Markdown/YAML documents, chunked, embedded with MiniLM, cached on disk."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dialog.embeddings import E5Embedder, Embedder, shared_e5
from dialog.errors import KnowledgeBaseError
from dialog.retrieval import LexicalIndex, Ranking, Unit, build_units, rank

log = logging.getLogger(__name__)
INDEX_VERSION = 3  # bump when chunking or the embedded units change so old caches are rebuilt
DOC_SUFFIXES = (".md", ".markdown", ".yaml", ".yml")
SOUND_ALIKE_GAIN = 0.08  # relevance a sound-alike reading must add before it is believed
LOW_MARGIN_SLACK = 0.04  # relevance under min_score still asked about when the first candidate leads clearly
SETTINGS_FILES = ("assistant.yaml", "assistant.yml")  # the company's own settings, not documents
ACTION_FILES = ("actions.yaml", "actions.yml")  # what the assistant can do (dialog.actions), not documents
SETTING_KEYS = ("company", "agent_name", "persona", "greeting", "menu", "example")
MAX_CHUNK_WORDS = 90


@dataclass
class Passage:
    """One retrievable chunk: what callers ask and what the agent may say."""

    id: str
    topic: str
    question: str
    answer: str
    source: str
    also: list[str] = field(default_factory=list)
    short: str = ""  # optional `label:` of the entry, for clarifying questions

    def lexical_text(self) -> str:
        """The words BM25 indexes."""
        return " ".join([self.topic, self.question, *self.also, self.answer])

    @property
    def label(self) -> str:
        """How the agent names this entry when it asks which one the caller means."""
        return self.short or self.question.rstrip("?. ")


@dataclass
class Hit:
    """A retrieved passage: its absolute relevance (0..1) and its fused rank score (z units)."""

    passage: Passage
    score: float
    fused: float = 0.0


@dataclass
class Retrieval:
    """Candidates for one query, best first, and the fused margin between the first two."""

    hits: list[Hit]
    margin: float

    def tier(self, min_score: float, answer_score: float, clarify_margin: float) -> tuple[str, list[Hit]]:
        """"answer" (one hit), "clarify" (the one or two hits to name) or "not_found" (none)."""
        hits = self.hits
        if not hits:
            return "not_found", []
        if hits[0].score < min_score:
            # a clear winner with a low relevance is worth one "do you mean ...?" rather than "I don't know"
            if hits[0].score >= min_score - LOW_MARGIN_SLACK and self.margin >= 2 * clarify_margin:
                return "clarify", hits[:1]
            return "not_found", []
        if hits[0].score >= answer_score and self.margin >= clarify_margin:
            return "answer", hits[:1]
        close = [h for h in hits[1:2] if h.score >= min_score and hits[0].fused - h.fused < clarify_margin]
        return "clarify", [hits[0], *close]


def _markdown_passages(path: Path, root: Path) -> list[Passage]:
    text = path.read_text(encoding="utf-8")
    title_m = re.search(r"(?m)^#\s+(.+)$", text)
    topic = title_m.group(1).strip() if title_m else path.stem.replace("-", " ").title()
    sections = re.split(r"(?m)^##\s+", text)
    out: list[Passage] = []
    rel = str(path.relative_to(root))
    for i, section in enumerate(sections):
        if i == 0:
            body = re.sub(r"(?m)^#\s+.+$", "", section).strip()
            heading = topic
        else:
            heading, _, body = section.partition("\n")
            heading, body = heading.strip(), body.strip()
        if not body:
            continue
        words = body.split()
        for n, start in enumerate(range(0, len(words), MAX_CHUNK_WORDS)):
            chunk = " ".join(words[start : start + MAX_CHUNK_WORDS])
            slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
            out.append(Passage(f"{path.stem}-{slug}-{n}", topic, heading, chunk, rel))
    return out


def _yaml_passages(path: Path, root: Path) -> list[Passage]:
    rel = str(path.relative_to(root))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KnowledgeBaseError(f"{path}: not valid YAML ({exc}); fix the file or remove it from the KB") from None
    if data is None:
        return []
    if isinstance(data, list):
        data = {"entries": data}
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise KnowledgeBaseError(f"{path}: expected `topic:` and a list under `entries:` (see examples/kb/README.md)")
    topic = str(data.get("topic") or path.stem.replace("-", " ").title())
    out: list[Passage] = []
    for i, entry in enumerate(data["entries"]):
        if not isinstance(entry, dict) or not entry.get("answer") or not entry.get("question"):
            raise KnowledgeBaseError(f"{path}: entry {i + 1} needs `question` and `answer`")
        also = entry.get("also") or []
        if not isinstance(also, list):
            raise KnowledgeBaseError(f"{path}: entry {i + 1}: `also` must be a list of phrasings")
        out.append(Passage(str(entry.get("id") or f"{path.stem}-{i + 1}"), topic, str(entry["question"]).strip(),
                           " ".join(str(entry["answer"]).split()), rel, [str(a) for a in also],
                           str(entry.get("label") or "").strip()))
    return out


def kb_settings(kb_dir: Path) -> dict[str, Any]:
    """The company's settings kept beside its documents (assistant.yaml): name, agent, persona, menu, example."""
    for name in SETTINGS_FILES:
        path = kb_dir / name
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise KnowledgeBaseError(f"{path}: not valid YAML ({exc}); fix it or remove it") from None
        if not isinstance(data, dict):
            raise KnowledgeBaseError(f"{path}: expected keys like company:, agent_name:, menu:")
        unknown = sorted(set(data) - set(SETTING_KEYS))
        if unknown:
            raise KnowledgeBaseError(f"{path}: unknown keys {unknown} (known: {', '.join(SETTING_KEYS)})")
        example = data.get("example")
        if example is not None and not (isinstance(example, dict) and {"facts", "question", "answer"} <= set(example)):
            raise KnowledgeBaseError(f"{path}: `example` needs facts, question and answer")
        menu = data.get("menu")
        if menu is not None and not isinstance(menu, list):
            raise KnowledgeBaseError(f"{path}: `menu` must be a list like ['1=billing', '0=agent']")
        return data
    return {}


def document_files(kb_dir: Path) -> list[Path]:
    """The documents of a KB folder, in a stable order."""
    if not kb_dir.is_dir():
        raise KnowledgeBaseError(
            f"knowledge base folder {kb_dir} does not exist: set dialog.kb_dir to a folder of .md/.yaml documents"
        )
    files = sorted(p for p in kb_dir.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES
                   and not p.name.upper().startswith("README") and p.name not in SETTINGS_FILES + ACTION_FILES)
    if not files:
        raise KnowledgeBaseError(
            f"knowledge base folder {kb_dir} has no .md or .yaml documents: add some (see examples/kb for the format)"
        )
    return files


def load_passages(kb_dir: Path) -> list[Passage]:
    """Every passage of a KB folder."""
    out: list[Passage] = []
    for path in document_files(kb_dir):
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                out.extend(_yaml_passages(path, kb_dir))
            else:
                out.extend(_markdown_passages(path, kb_dir))
        except UnicodeDecodeError:
            raise KnowledgeBaseError(f"{path}: not UTF-8 text") from None
    if not out:
        raise KnowledgeBaseError(f"knowledge base folder {kb_dir} has documents but no entries")
    return out


def fingerprint(kb_dir: Path, model_name: str) -> str:
    """Changes whenever a document, the chunker or the embedding model changes."""
    h = hashlib.sha256(f"v{INDEX_VERSION}:{model_name}".encode())
    for path in document_files(kb_dir):
        h.update(str(path.relative_to(kb_dir)).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


class KnowledgeBase:
    """Hybrid retrieval over a KB folder (see dialog.retrieval); the embeddings are cached under cache_dir/kb."""

    def __init__(self, kb_dir: Path, embedder: Embedder, cache_dir: Path | None = None,
                 e5: E5Embedder | None = None) -> None:
        self.kb_dir = Path(kb_dir)
        self.embedder = embedder
        self.e5 = e5 or shared_e5()
        self.cache_dir = cache_dir
        self.passages: list[Passage] = []
        self.units: list[Unit] = []
        self.vectors: dict[str, np.ndarray] = {}
        self.owner = np.zeros(0, dtype=np.int64)  # unit -> index into passages
        self.kinds = np.zeros(0, dtype="<U8")
        self.lexical: LexicalIndex | None = None
        self.rebuilt = False  # whether the last load embedded the documents (False: read from cache)
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def index_path(self) -> Path | None:
        """Where this folder's index is cached."""
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(str(self.kb_dir.resolve()).encode()).hexdigest()[:16]
        return self.cache_dir / "kb" / f"{key}.npz"

    @property
    def matrix(self) -> np.ndarray:
        """MiniLM vectors of every unit (rows owned by `owner`)."""
        return self.vectors.get("minilm", np.zeros((0, 384), dtype=np.float32))

    def load(self) -> None:
        """Read the cached index, or embed the documents when they changed since it was written."""
        with self._lock:
            fp = fingerprint(self.kb_dir, f"{self.embedder.name}+{self.e5.name}")
            path = self.index_path
            self.passages = load_passages(self.kb_dir)
            self.units = build_units([p.question for p in self.passages], [p.answer for p in self.passages],
                                     [p.topic for p in self.passages], [p.also for p in self.passages])
            self.owner = np.asarray([u.owner for u in self.units], dtype=np.int64)
            self.kinds = np.asarray([u.kind for u in self.units])
            self.lexical = LexicalIndex([p.lexical_text() for p in self.passages])
            self.e5.load()
            if path is not None and path.is_file():
                try:
                    with np.load(path, allow_pickle=False) as data:
                        if str(data["fingerprint"]) == fp:
                            self.vectors = {"minilm": np.asarray(data["minilm"], dtype=np.float32),
                                            "e5": np.asarray(data["e5"], dtype=np.float32)}
                            self.rebuilt = False
                            self._loaded = True
                            return
                except (OSError, KeyError, ValueError) as exc:
                    log.warning("KB index cache %s unreadable (%s): rebuilding", path, exc)
            texts = [u.text for u in self.units]
            self.vectors = {"minilm": self.embedder.encode(texts), "e5": self.e5.passage(texts)}
            self.rebuilt = True
            self._loaded = True
            if path is not None:
                self._save(path, fp)

    def _save(self, path: Path, fp: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, fingerprint=np.array(fp), minilm=self.vectors["minilm"], e5=self.vectors["e5"])
            tmp.replace(path)
        except OSError as exc:  # a read-only cache only costs time on the next start
            log.warning("cannot write KB index cache %s: %s", path, exc)

    def ensure_loaded(self) -> None:
        """Load on first use."""
        if not self._loaded:
            self.load()

    def index_of(self, passage_id: str) -> int | None:
        """Position of a passage by id."""
        return next((i for i, p in enumerate(self.passages) if p.id == passage_id), None)

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The k passages that best answer the query, best first."""
        return self.retrieve(query, k).hits

    def search_vector(self, vector: np.ndarray, k: int = 3, query: str = "") -> list[Hit]:
        """search() with the query's MiniLM vector already computed (shared with the sentiment head)."""
        return self.retrieve(query, k, minilm_vector=vector).hits

    def retrieve(self, query: str, k: int = 3, *, minilm_vector: np.ndarray | None = None,
                 boost: dict[str, float] | None = None) -> Retrieval:
        """Ranked candidates and the margin between the first two; boost adds fused score by passage id."""
        self.ensure_loaded()
        if not query.strip() or not self.passages:
            return Retrieval([], 0.0)
        assert self.lexical is not None
        repaired = self.lexical.repair(query)
        if repaired != query:  # a word the ASR split in two: the caller's vector is of the words they meant
            query, minilm_vector = repaired, None
        extra: np.ndarray | None = None
        if boost:
            extra = np.zeros(len(self.passages), dtype=np.float32)
            for pid, value in boost.items():
                idx = self.index_of(pid)
                if idx is not None:
                    extra[idx] += value
        ranking = self._rank(query, minilm_vector, extra, k)
        alike = self.lexical.sound_alike_reading(query)
        if alike != query:
            # A word the KB never uses may be one it does, misheard ("done" for "down"). The sound-alike
            # reading is believed when it fits the KB clearly better than the words as heard.
            other = self._rank(alike, None, extra, k)
            if ranking.scored and other.scored and (
                    other.scored[0].relevance >= ranking.scored[0].relevance + SOUND_ALIKE_GAIN):
                ranking = other
        hits = [Hit(self.passages[s.index], min(s.relevance, 1.0), s.fused) for s in ranking.scored]
        return Retrieval(hits, ranking.margin)

    def _rank(self, query: str, minilm_vector: np.ndarray | None, extra: np.ndarray | None, k: int) -> Ranking:
        assert self.lexical is not None
        q_minilm = minilm_vector if minilm_vector is not None else self.embedder.encode_one(query)
        q_e5 = self.e5.query([query])[0]
        return rank(query, unit_vectors=self.vectors, query_vectors={"minilm": q_minilm, "e5": q_e5},
                    owners=self.owner, kinds=self.kinds, lexical=self.lexical,
                    answers=[p.answer for p in self.passages],
                    titles=[f"{p.question} {' '.join(p.also)}" for p in self.passages], boost=extra, k=k)

    def retrieve_in_context(self, query: str, context: str, k: int = 3, *,
                            boost: dict[str, float] | None = None, leans: bool = True) -> Retrieval:
        """Rank for a turn that leans on an earlier one ("and how much is that?").

        Each passage's fused score is the mean of its score for the turn alone and for the turn read after
        `context` (the earlier question), so that the entry that fits both leads. Its relevance is the better
        of the two readings when the turn `leans` on the earlier one (it says "that", "and ...?"), else the
        turn's own: a new question is not made relevant by what was asked before.
        """
        n = len(self.passages)
        alone = {h.passage.id: h for h in self.retrieve(query, n).hits}
        joined = {h.passage.id: h for h in self.retrieve(f"{context} {query}", n).hits}
        extra = boost or {}
        hits = [Hit(p, max(alone[p.id].score, joined[p.id].score) if leans else alone[p.id].score,
                    0.5 * (alone[p.id].fused + joined[p.id].fused) + extra.get(p.id, 0.0))
                for p in self.passages if p.id in alone and p.id in joined]
        hits.sort(key=lambda h: -h.fused)
        margin = hits[0].fused - hits[1].fused if len(hits) > 1 else float("inf")
        return Retrieval(hits[:k], margin)

    def vocabulary(self, limit: int = 60) -> list[str]:
        """Distinctive words of the KB (product names, places): a hint for speech recognition."""
        self.ensure_loaded()
        counts: dict[str, int] = {}
        for p in self.passages:
            for word in re.findall(r"\b[A-Z][A-Za-z0-9-]+\b", p.answer + " " + p.question):
                counts[word] = counts.get(word, 0) + 1
        return [w for w, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]]

    def describe(self) -> dict[str, Any]:
        """Size and location, for logs and `chat --json`."""
        return {"kb_dir": str(self.kb_dir), "passages": len(self.passages), "rebuilt": self.rebuilt}
