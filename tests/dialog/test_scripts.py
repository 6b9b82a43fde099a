"""Scripted conversations through the real brain (MiniLM + sentiment head + SmolLM2), and without an LLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialog import Brain
from tests.dialog.script_runner import run_script, script_paths


@pytest.mark.parametrize("path", script_paths(), ids=lambda p: p.stem)
async def test_script_with_the_local_llm(brain: Brain, path: Path) -> None:
    results = await run_script(brain, path)
    problems = [f"turn {r.index} ({r.say!r} -> {r.reply!r}): {f}" for r in results for f in r.failures]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", script_paths(), ids=lambda p: p.stem)
async def test_script_from_the_kb_alone(kb_brain: Brain, path: Path) -> None:
    results = await run_script(kb_brain, path)
    problems = [f"turn {r.index} ({r.say!r} -> {r.reply!r}): {f}" for r in results for f in r.failures]
    assert not problems, "\n".join(problems)


def test_there_are_enough_scripts() -> None:
    assert len(script_paths()) >= 6
