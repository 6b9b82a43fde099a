"""Dialog brain evaluation: sentiment on the held-out split, KB answers on the scripted calls, LLM speed.

    .venv/bin/python bench/dialog_eval.py [--repeats 5]

Targets (issue 3): sentiment accuracy and macro-F1 >= 0.85, KB answer accuracy >= 90%, first token of
the warm local model <= 300 ms. Prints a table; paste it into bench/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.machine import describe  # noqa: E402
from dialog import Brain, DialogOptions, example_kb_dir  # noqa: E402
from dialog.embeddings import shared_embedder  # noqa: E402
from dialog.kb import KnowledgeBase  # noqa: E402
from dialog.llm import LocalGenerator  # noqa: E402
from dialog.prompt import build_messages  # noqa: E402
from dialog.sentiment import LABELS, SentimentAnalyzer  # noqa: E402
from dialog.sentiment_train import load_dataset, scores  # noqa: E402
from tests.dialog.script_runner import TurnResult, run_script, script_paths  # noqa: E402
from tests.dialog.support import test_cache  # noqa: E402


def sentiment_eval(analyzer: SentimentAnalyzer) -> dict[str, float]:
    """Accuracy and macro-F1 of the analyzer (clause pooling included) on the held-out split."""
    _, test = load_dataset()
    pred = np.array([LABELS.index(s.label) for s in analyzer.analyze_many([t for t, _ in test])])
    y = np.array([LABELS.index(label) for _, label in test])
    return {**scores(pred, y), "n": float(len(test))}


async def scripts_eval(brain: Brain) -> tuple[list[TurnResult], float]:
    """Every scripted conversation; returns the turn results and the wall time."""
    t0 = time.perf_counter()
    results: list[TurnResult] = []
    for path in script_paths():
        results += await run_script(brain, path)
    return results, time.perf_counter() - t0


async def llm_speed(gen: LocalGenerator, brain: Brain, repeats: int) -> tuple[list[float], list[float], list[int]]:
    """First-token latency (ms) and decode speed (tokens/s) of the warm model on realistic prompts."""
    questions = ["What are your opening hours on Saturday?", "How long does a refund take?",
                 "How much does it cost to move my service?", "Is there an outage in my area?"]
    first: list[float] = []
    speed: list[float] = []
    tokens: list[int] = []
    options = brain.options
    for i in range(repeats * len(questions)):
        q = questions[i % len(questions)]
        hit = brain.kb.search(q, 1)[0]
        messages = build_messages(options, hit.passage.answer, q, [], upset=False, pleased=False)
        if i == 0:
            gen.warm_up(messages)
        async for _ in gen.stream(messages, max_tokens=48):
            pass
        stats = gen.last_stats
        first.append(stats.first_token_s * 1000)
        speed.append(stats.tokens_per_s)
        tokens.append(stats.prompt_tokens)
    return first, speed, tokens


def main(argv: list[str] | None = None) -> int:
    """Run every evaluation and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="generations per question for the speed numbers")
    args = parser.parse_args(argv)
    cache = test_cache()
    cache.mkdir(parents=True, exist_ok=True)
    embedder = shared_embedder()
    embedder.load()
    kb = KnowledgeBase(example_kb_dir(), embedder, cache / "dialog-bench-kb")
    kb.load()
    analyzer = SentimentAnalyzer(embedder=embedder)
    analyzer.load()
    gen = LocalGenerator(cache_dir=cache)
    gen.load()
    brain = Brain(DialogOptions(), cache, generator=gen, embedder=embedder, knowledge=kb, sentiment=analyzer)
    brain.load()
    kb_only = Brain(DialogOptions(), cache, embedder=embedder, knowledge=kb, sentiment=analyzer, use_llm=False)
    kb_only.load()

    sent = sentiment_eval(analyzer)
    rows: list[tuple[str, str, str, str]] = [
        ("sentiment accuracy (held-out)", f"{sent['accuracy']:.3f}", ">= 0.85", f"n={int(sent['n'])}"),
        ("sentiment macro-F1 (held-out)", f"{sent['macro_f1']:.3f}", ">= 0.85", ""),
    ]
    for label, b in (("local SmolLM2", brain), ("KB passages only", kb_only)):
        results, wall = asyncio.run(scripts_eval(b))
        kb_turns = [r for r in results if r.kb_fact is not None]
        ok = sum(1 for r in kb_turns if r.kb_fact)
        passed = sum(1 for r in results if not r.failures)
        rows.append((f"KB answer accuracy, {label}", f"{100 * ok / len(kb_turns):.1f}%", ">= 90%",
                     f"{ok}/{len(kb_turns)} KB turns"))
        rows.append((f"scripted turns passing, {label}", f"{passed}/{len(results)}", "all",
                     f"{len(script_paths())} scripts, {wall:.1f} s"))
        for r in results:
            for f in r.failures:
                print(f"  [{label}] {r.script} turn {r.index}: {f}", file=sys.stderr)
    first, speed, prompt = asyncio.run(llm_speed(gen, brain, args.repeats))
    rows.append(("LLM first token, warm (median)", f"{statistics.median(first):.0f} ms", "<= 300 ms",
                 f"p90 {np.percentile(first, 90):.0f} ms, {len(first)} runs, prompt ~{int(np.median(prompt))} tokens"))
    rows.append(("LLM decode speed (median)", f"{statistics.median(speed):.1f} tok/s", "",
                 f"{1000 / max(statistics.median(speed), 1e-9):.0f} ms/token"))

    print(f"\nDialog evaluation on {describe()}\n")
    print("| measure | value | target | notes |\n| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
