"""The knowledge base: Markdown/YAML documents, chunked, embedded with MiniLM, cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dialog.embeddings import Embedder
from dialog.errors import KnowledgeBaseError

log = logging.getLogger(__name__)
INDEX_VERSION = 2  # bump when chunking changes so old caches are rebuilt
DOC_SUFFIXES = (".md", ".markdown", ".yaml", ".yml")
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

    def embed_texts(self) -> list[str]:
        """Texts embedded for retrieval: each way of asking, and the answer in its topic."""
        return [self.question, *self.also, f"{self.topic}: {self.question} {self.answer}"]


@dataclass
class Hit:
    """A retrieved passage and its cosine similarity to the query."""

    passage: Passage
    score: float


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
        out.append(Passage(str(entry.get("id") or f"{path.stem}-{i + 1}"), topic, str(entry["question"]).strip(),
                           " ".join(str(entry["answer"]).split()), rel, [str(a) for a in also]))
    return out


def document_files(kb_dir: Path) -> list[Path]:
    """The documents of a KB folder, in a stable order."""
    if not kb_dir.is_dir():
        raise KnowledgeBaseError(
            f"knowledge base folder {kb_dir} does not exist: set dialog.kb_dir to a folder of .md/.yaml documents"
        )
    files = sorted(p for p in kb_dir.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES
                   and not p.name.upper().startswith("README"))
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
    """Top-k retrieval over a KB folder; the embedding index is cached under cache_dir/kb."""

    def __init__(self, kb_dir: Path, embedder: Embedder, cache_dir: Path | None = None) -> None:
        self.kb_dir = Path(kb_dir)
        self.embedder = embedder
        self.cache_dir = cache_dir
        self.passages: list[Passage] = []
        self.matrix = np.zeros((0, 384), dtype=np.float32)
        self.owner = np.zeros(0, dtype=np.int64)  # row of matrix -> index into passages
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

    def load(self) -> None:
        """Read the cached index, or embed the documents when they changed since it was written."""
        with self._lock:
            fp = fingerprint(self.kb_dir, self.embedder.name)
            path = self.index_path
            if path is not None and path.is_file():
                try:
                    with np.load(path, allow_pickle=False) as data:
                        if str(data["fingerprint"]) == fp:
                            meta = json.loads(str(data["passages"]))
                            self.passages = [Passage(**p) for p in meta]
                            self.matrix = np.asarray(data["matrix"], dtype=np.float32)
                            self.owner = np.asarray(data["owner"], dtype=np.int64)
                            self.rebuilt = False
                            self._loaded = True
                            return
                except (OSError, KeyError, ValueError) as exc:
                    log.warning("KB index cache %s unreadable (%s): rebuilding", path, exc)
            self.passages = load_passages(self.kb_dir)
            texts: list[str] = []
            owners: list[int] = []
            for i, p in enumerate(self.passages):
                for text in p.embed_texts():
                    texts.append(text)
                    owners.append(i)
            self.matrix = self.embedder.encode(texts)
            self.owner = np.asarray(owners, dtype=np.int64)
            self.rebuilt = True
            self._loaded = True
            if path is not None:
                self._save(path, fp)

    def _save(self, path: Path, fp: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, fingerprint=np.array(fp), matrix=self.matrix, owner=self.owner,
                     passages=np.array(json.dumps([asdict(p) for p in self.passages])))
            tmp.replace(path)
        except OSError as exc:  # a read-only cache only costs time on the next start
            log.warning("cannot write KB index cache %s: %s", path, exc)

    def ensure_loaded(self) -> None:
        """Load on first use."""
        if not self._loaded:
            self.load()

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The k passages most similar to the query, best first."""
        self.ensure_loaded()
        if not query.strip():
            return []
        q = self.embedder.encode_one(query)
        return self.search_vector(q, k, query)

    def search_vector(self, vector: np.ndarray, k: int = 3, query: str = "") -> list[Hit]:
        """Top-k passages by their best-matching phrasing; a number the query names must match exactly."""
        self.ensure_loaded()
        rows = self.matrix @ vector
        scores = np.full(len(self.passages), -1.0, dtype=np.float32)
        np.maximum.at(scores, self.owner, rows)
        # "Fiber 500" and "Fiber 1000" embed almost alike: an exact number decides
        numbers = set(re.findall(r"\d+", query))
        if numbers:
            for i, p in enumerate(self.passages):
                if numbers & set(re.findall(r"\d+", p.question + " " + " ".join(p.also))):
                    scores[i] += 0.05
        order = np.argsort(-scores)[:k]
        return [Hit(self.passages[i], float(min(scores[i], 1.0))) for i in order]

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
