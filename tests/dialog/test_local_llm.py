"""SmolLM2 on this CPU: converted once and cached, streamed without blocking the event loop, cancellable."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from dialog import ModelMissingError
from dialog.llm import LocalGenerator
from dialog.llm.local import GGUF_FILE, WEIGHTS, converted_dir, gguf_folder

MESSAGES = [
    {"role": "system", "content": "You are a phone support agent. Answer in one short sentence."},
    {"role": "user", "content": "Facts: Our shops are open Monday to Saturday from 10 AM to 6 PM.\n\n"
                                "Caller: When are the shops open?"},
]


async def collect(gen: LocalGenerator, messages: list[dict[str, str]], max_tokens: int = 20) -> list[str]:
    return [c async for c in gen.stream(messages, max_tokens=max_tokens)]


def test_conversion_is_cached(local_llm: LocalGenerator, dialog_cache: Path) -> None:
    target = converted_dir(dialog_cache)
    for name in (WEIGHTS, "config.json", "tokenizer.json"):
        assert (target / name).is_file()
    start = time.perf_counter()
    LocalGenerator(cache_dir=dialog_cache).load()
    assert time.perf_counter() - start < 10  # no GGUF conversion on later starts (it takes tens of seconds)


async def test_streams_tokens_without_blocking_the_loop(local_llm: LocalGenerator) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    chunks = await collect(local_llm, MESSAGES)
    elapsed = time.perf_counter() - start
    task.cancel()
    assert len(chunks) >= 3 and "".join(chunks).strip()
    stats = local_llm.last_stats
    assert stats.new_tokens >= 3 and 0 < stats.first_token_s < elapsed
    # the loop kept ticking while torch decoded in its worker thread
    assert ticks >= 0.4 * elapsed / 0.01


async def test_greedy_output_is_deterministic_and_prefix_reuse_is_exact(local_llm: LocalGenerator) -> None:
    first = "".join(await collect(local_llm, MESSAGES))
    second = "".join(await collect(local_llm, MESSAGES))  # second run reuses the cached prompt prefix
    assert first == second
    assert local_llm.last_stats.extra["reused_prompt_tokens"] > 0
    local_llm._prefix_cache = None
    local_llm._prefix_ids = []
    assert "".join(await collect(local_llm, MESSAGES)) == first


async def test_stopping_early_cancels_generation(local_llm: LocalGenerator) -> None:
    async for _ in local_llm.stream(MESSAGES, max_tokens=200):
        break
    await asyncio.sleep(0.3)
    # the worker stopped at the next token instead of decoding 200
    assert local_llm.last_stats.new_tokens < 20
    assert "".join(await collect(local_llm, MESSAGES, 5))


def test_a_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="transformers model directory"):
        LocalGenerator(str(tmp_path / "nowhere"), cache_dir=tmp_path).load()


@pytest.mark.slow
def test_cached_weights_give_the_same_tokens_as_the_gguf(local_llm: LocalGenerator) -> None:
    """The dequantized cache is the GGUF model: identical greedy tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf_folder()), gguf_file=GGUF_FILE, dtype=torch.float32)
    local_llm.load()
    tok = local_llm._tokenizer
    ids = torch.tensor([local_llm._encode(MESSAGES)])
    with torch.inference_mode():
        a = model.generate(ids, max_new_tokens=12, do_sample=False)
        b = local_llm._model.generate(ids, max_new_tokens=12, do_sample=False)
    assert a.tolist() == b.tolist(), (tok.decode(a[0]), tok.decode(b[0]))
