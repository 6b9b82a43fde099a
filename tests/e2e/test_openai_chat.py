"""`voice-agent chat --json` with dialog.backend=openai against llama.cpp's real server (the shipped SmolLM2 GGUF)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dialog.llama_server import LlamaServer
from tests.e2e.test_dialog_cli import cli

pytestmark = pytest.mark.e2e


def test_chat_over_llama_server_answers_a_kb_question(tmp_path: Path) -> None:
    (tmp_path / "llama").mkdir()
    with LlamaServer(tmp_path / "llama") as server:
        proc = cli("--set", f"dialog.base_url={server.base_url}", "--set", "dialog.model=smollm2",
                   "--set", "dialog.answer_style=generate", "--set", "dialog.first_token_timeout_s=30",
                   "--set", "dialog.reply_timeout_s=60",
                   "chat", "--json", "--backend", "openai",
                   stdin="How much does the Fiber 500 plan cost per month?\n", home=tmp_path / "home")
        log = server.log_tail(200)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["type"] for e in events] == ["greeting", "turn", "end"], proc.stdout
    assert events[0]["backend"].startswith(f"openai:smollm2@{server.base_url}")
    turn = events[1]
    assert turn["action"] == "answer"
    assert "thirty-nine dollars and ninety-nine cents" in turn["reply"], turn
    assert turn["grounding"]["llm_tokens"] > 0, turn["grounding"]  # the server generated tokens
    assert "processing task" in log, log  # and the llama.cpp server did the generating
