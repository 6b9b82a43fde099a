"""The OpenAI-compatible backend: a tiny local SSE server for exact protocol and fault cases (auth, HTTP errors,
bad JSON, non-SSE bodies, stalls, cut streams), and llama.cpp's real server with the shipped SmolLM2 GGUF."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dialog import BackendError, Brain, DialogOptions
from dialog.embeddings import Embedder
from dialog.kb import KnowledgeBase
from dialog.llm import OpenAIGenerator, make_generator
from dialog.sentiment import SentimentAnalyzer
from tests.dialog.llama_server import LlamaServer


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
    options = DialogOptions(backend="openai", base_url=url, model="big", acknowledge=False, answer_style="generate")
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


# ---- fault cases from a scripted local server ------------------------------------------------------------

FACT = "thirty-nine dollars and ninety-nine cents"
QUESTION = "How much is Fiber 500?"


def _chunk(text: str) -> bytes:
    return f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': text}}]})}\n\n".encode()


class FaultServer:
    """Answers /v1/chat/completions the way `mode` says; stalls end when the test tears the server down."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.release = asyncio.Event()
        self.requests = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        mode = self.mode
        if mode == "http500":
            return web.json_response({"error": {"message": "model is overloaded", "type": "server_error"}}, status=500)
        if mode == "json_body":  # a non-streaming completion although stream=true was asked
            return web.json_response({"choices": [{"message": {"role": "assistant", "content": "Hi"}}]})
        if mode == "html":
            return web.Response(text="<html>proxy login</html>", content_type="text/html")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if mode == "bad_json":
            await resp.write(b'data: {"choices": [{"delta": {"content": "Fib\n\n')
            await resp.write(b"data: [DONE]\n\n")
        elif mode == "stall_first":  # headers, then nothing
            await self.release.wait()
        elif mode == "stall_after":  # one sentence, then nothing
            await resp.write(_chunk("Fiber 500 costs $39.99 a month."))
            await self.release.wait()
        elif mode == "cut":  # the process dies: the connection closes mid-stream
            await resp.write(_chunk("Fiber 500 costs"))
            assert request.transport is not None
            request.transport.close()
        elif mode == "no_done":  # the body ends cleanly but the stream never finished
            await resp.write(_chunk("Fiber 500 costs"))
            await resp.write_eof()
        else:
            await resp.write(_chunk("Fiber 500 costs $39.99 a month."))
            finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await resp.write(f"data: {json.dumps(finish)}\n\n".encode())
            await resp.write(b"data: [DONE]\n\n")
        return resp


@pytest.fixture()
async def faults() -> AsyncIterator[tuple[FaultServer, str]]:
    fake = FaultServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}/v1"
    fake.release.set()
    await runner.cleanup()


async def _drain(gen: OpenAIGenerator) -> str:
    try:
        return "".join([c async for c in gen.stream([{"role": "user", "content": "hi"}], max_tokens=8)])
    finally:
        await gen.aclose()


@pytest.mark.parametrize(("mode", "message"), [
    ("http500", r"HTTP 500: model is overloaded"),
    ("json_body", r"answered application/json.*not a text/event-stream"),
    ("html", r"answered text/html.*not a text/event-stream.*proxy login"),
    ("bad_json", r"malformed event"),
    ("cut", r"failed mid-stream|closed the stream before it finished"),
    ("no_done", r"closed the stream before it finished"),
])
async def test_protocol_faults_are_clear_errors(faults: tuple[FaultServer, str], mode: str, message: str) -> None:
    fake, url = faults
    fake.mode = mode
    with pytest.raises(BackendError, match=message):
        await _drain(OpenAIGenerator(url, "m"))


async def test_wrong_path_hints_at_base_url(faults: tuple[FaultServer, str]) -> None:
    _, url = faults
    with pytest.raises(BackendError, match=r"HTTP 404 \(check dialog.base_url: it usually ends in /v1\)"):
        await _drain(OpenAIGenerator(url.removesuffix("/v1"), "m"))


async def test_silent_server_hits_the_read_timeout(faults: tuple[FaultServer, str]) -> None:
    fake, url = faults
    fake.mode = "stall_first"
    with pytest.raises(BackendError, match=r"sent nothing for 0.3 s"):
        await _drain(OpenAIGenerator(url, "m", timeout_s=0.3))


def _brain(url: str, embedder: Embedder, kb: KnowledgeBase, analyzer: SentimentAnalyzer, **extra: float) -> Brain:
    options = DialogOptions(backend="openai", base_url=url, model="m", acknowledge=False, answer_style="generate",
                            **extra)  # type: ignore[arg-type]
    return Brain(options, None, embedder=embedder, knowledge=kb, sentiment=analyzer)


@pytest.mark.parametrize(("mode", "fallback"), [
    ("stall_first", "slow first token"),  # first_token_timeout_s
    ("stall_after", "slow"),  # reply_timeout_s: one sentence came, then nothing
    ("cut", "backend error"),
    ("bad_json", "backend error"),
    ("http500", "backend error"),
])
async def test_brain_answers_from_the_passage_when_the_server_fails(
        faults: tuple[FaultServer, str], embedder: Embedder, kb: KnowledgeBase, analyzer: SentimentAnalyzer,
        mode: str, fallback: str) -> None:
    fake, url = faults
    fake.mode = mode
    brain = _brain(url, embedder, kb, analyzer, first_token_timeout_s=0.5, reply_timeout_s=1.5)
    try:
        call = brain.open_call()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        reply = await call.respond(QUESTION)
        text = await reply.text()
        assert loop.time() - t0 < 10
        assert FACT in text, text
        report = reply.decision.extra["grounding"]
        assert report["fallback"].startswith(fallback), report
        assert not reply.decision.escalate
        fake.mode = "ok"  # the call goes on: the next turn uses the server again
        reply = await call.respond(QUESTION)
        assert FACT in await reply.text()
        assert reply.decision.extra["grounding"]["llm_sentences"] >= 1
    finally:
        await brain.aclose()


# ---- llama.cpp's server with the shipped SmolLM2 GGUF ----------------------------------------------------

@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with LlamaServer(tmp_path_factory.mktemp("llama")) as server:
        yield server


async def test_llama_server_streams_a_chat_completion(llama: LlamaServer) -> None:
    gen = OpenAIGenerator(llama.base_url, "smollm2")
    try:
        chunks = [c async for c in gen.stream(
            [{"role": "system", "content": "You are a helpful assistant."},
             {"role": "user", "content": "Name three colours."}], max_tokens=24)]
    finally:
        await gen.aclose()
    assert len(chunks) >= 3, chunks  # streamed token by token, not one block
    assert "".join(chunks).strip()
    assert gen.last_stats.new_tokens == len(chunks) and 0 < gen.last_stats.first_token_s <= gen.last_stats.total_s


async def test_brain_over_llama_server_answers_a_kb_question(
        llama: LlamaServer, embedder: Embedder, kb: KnowledgeBase, analyzer: SentimentAnalyzer) -> None:
    brain = _brain(llama.base_url, embedder, kb, analyzer, first_token_timeout_s=30.0, reply_timeout_s=60.0)
    try:
        reply = await brain.open_call().respond(QUESTION)
        text = await reply.text()
        report = reply.decision.extra["grounding"]
        assert report["llm_tokens"] > 0, report  # the server generated (the guard decides what is spoken)
        assert FACT in text, (text, report)
        assert "19.99" not in text
    finally:
        await brain.aclose()


async def test_llama_server_killed_mid_stream(tmp_path: Path, embedder: Embedder, kb: KnowledgeBase,
                                             analyzer: SentimentAnalyzer) -> None:
    server = LlamaServer(tmp_path).start()
    try:
        gen = OpenAIGenerator(server.base_url, "smollm2")
        got: list[str] = []
        with pytest.raises(BackendError, match=r"failed mid-stream|closed the stream before it finished"):
            async for chunk in gen.stream([{"role": "user", "content": "Count from one to five hundred."}],
                                          max_tokens=1500):
                got.append(chunk)
                if len(got) == 2:
                    server.kill()
        await gen.aclose()
        assert len(got) >= 2
        # the brain on the dead server: the passage answers, the call goes on, nothing escalates
        brain = _brain(server.base_url, embedder, kb, analyzer)
        try:
            call = brain.open_call()
            for _ in range(2):
                reply = await call.respond(QUESTION)
                assert FACT in await reply.text()
                assert reply.decision.extra["grounding"]["fallback"].startswith("backend error: cannot reach")
                assert not reply.decision.escalate
        finally:
            await brain.aclose()
    finally:
        server.stop()
