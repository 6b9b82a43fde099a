"""Generation backends: local transformers (default, offline) or an OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path

from dialog.errors import BackendError
from dialog.llm.base import GenerationStats, Generator, Message
from dialog.llm.local import LocalGenerator
from dialog.llm.openai import OpenAIGenerator
from dialog.options import LOCAL_DEFAULT_MODEL, DialogOptions

__all__ = ["GenerationStats", "Generator", "LocalGenerator", "Message", "OpenAIGenerator", "make_generator"]


def make_generator(options: DialogOptions, cache_dir: Path) -> Generator:
    """The backend the options choose."""
    if options.backend == "local":
        return LocalGenerator(options.model, cache_dir, threads=options.llm_threads)
    if options.backend == "openai":
        model = options.model if options.model != LOCAL_DEFAULT_MODEL else "default"
        return OpenAIGenerator(options.base_url, model, options.api_key, timeout_s=max(options.reply_timeout_s, 5.0))
    raise BackendError(f"unknown dialog.backend {options.backend!r}: use local or openai")
