"""The OpenAI-compatible backend against a tiny local SSE server: streaming, auth, errors, guard on top."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from dialog import BackendError, Brain, DialogOptions
from dialog.embeddings import Embedder
from dialog.kb import KnowledgeBase
from dialog.llm import OpenAIGenerator, make_generator
from dialog.sentiment import SentimentAnalyzer


class FakeServer:
    """Streams `reply` word by word as chat-completion chunks; records requests."""

    def __init__(self, reply: str = "Hello there. How are you?", status: int = 200) -> None:
        self.reply = reply
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.status != 200:
            return web.json_response({"error": {"message": "nope"}}, status=self.status)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": keep-alive comment\n\n")
        first = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        await resp.write(f"data: {json.dumps(first)}\n\n".encode())
        for i, word in enumerate(self.reply.split(" ")):
            chunk = {"choices": [{"index": 0, "delta": {"content": (" " if i else "") + word}}]}
            payload = f"data: {json.dumps(chunk)}\n\n".encode()
            # split one event across two writes: the client must reassemble lines
            await resp.write(payload[:7])
            await resp.write(payload[7:])
        await resp.write(b"data: [DONE]\n\n")
        return resp


@pytest.fixture()
async def server() -> AsyncIterator[tuple[FakeServer, str]]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_streams_deltas(server: tuple[FakeServer, str]) -> None:
    fake, url = server
    gen = OpenAIGenerator(url, "llama-3-8b", api_key="secret")
    try:
        chunks = [c async for c in gen.stream([{"role": "user", "content": "hi"}], max_tokens=16)]
    finally:
        await gen.aclose()
    assert "".join(chunks) == "Hello there. How are you?"
    assert len(chunks) == 5
    body = fake.requests[0]
    assert body["model"] == "llama-3-8b" and body["stream"] is True and body["max_tokens"] == 16
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert fake.headers[0]["Authorization"] == "Bearer secret"
    assert gen.last_stats.new_tokens == 5 and gen.last_stats.first_token_s > 0


async def test_http_errors_are_clear(server: tuple[FakeServer, str]) -> None:
    fake, url = server
    fake.status = 401
    gen = OpenAIGenerator(url, "m")
    with pytest.raises(BackendError, match=r"HTTP 401 \(check dialog.api_key\)"):
        async for _ in gen.stream([{"role": "user", "content": "hi"}], max_tokens=4):
            pass
    await gen.aclose()


async def test_unreachable_server_is_clear() -> None:
    gen = OpenAIGenerator("http://127.0.0.1:9/v1", "m")
    with pytest.raises(BackendError, match="cannot reach the LLM server"):
        async for _ in gen.stream([{"role": "user", "content": "hi"}], max_tokens=4):
            pass
    await gen.aclose()
    with pytest.raises(BackendError, match="must start with http"):
        OpenAIGenerator("localhost:8000", "m")


def test_config_chooses_the_backend(tmp_path: Any) -> None:
    gen = make_generator(DialogOptions(backend="openai", base_url="http://h:1/v1", model="qwen", api_key="k"), tmp_path)
    assert isinstance(gen, OpenAIGenerator) and gen.model == "qwen" and gen.api_key == "k"


async def test_brain_over_a_server_keeps_the_grounding_guard(
        server: tuple[FakeServer, str], embedder: Embedder, kb: KnowledgeBase, analyzer: SentimentAnalyzer) -> None:
    fake, url = server
    options = DialogOptions(backend="openai", base_url=url, model="big", acknowledge=False)
    brain = Brain(options, None, embedder=embedder, knowledge=kb, sentiment=analyzer)
    try:
        fake.reply = "Fiber 500 costs $39.99 a month. It is our most popular plan."
        reply = await (brain.open_call()).respond("How much is Fiber 500?")
        text = await reply.text()
        assert text == "Fiber five hundred costs thirty-nine dollars and ninety-nine cents a month. " \
                       "It is our most popular plan."
        assert reply.decision.extra["grounding"]["llm_sentences"] == 2
        fake.reply = "Fiber 500 costs only $19.99 a month."  # invented price
        reply = await (brain.open_call()).respond("How much is Fiber 500?")
        text = await reply.text()
        assert "nineteen" not in text and "thirty-nine dollars and ninety-nine cents" in text
        assert "19.99" in reply.decision.extra["grounding"]["fallback"]
        sent = fake.requests[-1]["messages"]
        assert "$39.99" in sent[-1]["content"]  # the passage reached the prompt
    finally:
        await brain.aclose()
