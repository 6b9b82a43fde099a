"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama) with streaming over SSE."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from dialog.errors import BackendError
from dialog.llm.base import GenerationStats, Message


class OpenAIGenerator:
    """POST {base_url}/chat/completions with stream=true; yields each delta's content."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise BackendError(f"dialog.base_url={base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.name = f"openai:{model}@{self.base_url}"
        self.last_stats = GenerationStats()
        self._session: aiohttp.ClientSession | None = None

    def load(self) -> None:
        """Nothing to load: the server holds the model."""

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5,
                                                                                 sock_read=self.timeout_s))
        return self._session

    async def stream(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0) -> AsyncIterator[str]:
        """Content deltas of the streamed completion."""
        url = f"{self.base_url}/chat/completions"
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "stream": True}
        stats = GenerationStats()
        self.last_stats = stats
        start = time.perf_counter()
        session = await self._client()
        try:
            async with session.post(url, json=body, headers=self._headers()) as resp:
                if resp.status != 200:
                    raise BackendError(f"{url} answered HTTP {resp.status}{_hint(resp.status)}: {await _detail(resp)}")
                ctype = resp.headers.get("Content-Type", "")
                if not ctype.startswith("text/event-stream"):
                    raise BackendError(f"{url} answered {ctype or 'no Content-Type'}, not a text/event-stream "
                                       f"(does the server stream chat completions?): {await _detail(resp)}")
                async for chunk in self._events(resp):
                    if not stats.new_tokens:
                        stats.first_token_s = time.perf_counter() - start
                    stats.new_tokens += 1
                    yield chunk
        except aiohttp.ClientConnectorError as exc:
            raise BackendError(f"cannot reach the LLM server at {self.base_url}: {exc.os_error}; "
                               "start it or fix dialog.base_url") from None
        except aiohttp.ServerTimeoutError:
            raise BackendError(f"LLM server {self.base_url} sent nothing for {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendError(f"LLM server {self.base_url} failed mid-stream: {type(exc).__name__}: {exc}") from None
        finally:
            stats.total_s = time.perf_counter() - start

    @staticmethod
    async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
        """Parse SSE `data:` lines; `[DONE]` ends the stream, and so does the end of the body after a finish_reason."""
        buffer = b""
        finished = False
        async for raw in resp.content.iter_any():
            buffer += raw
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode("utf-8", errors="replace").strip()
                if not text.startswith("data:"):
                    continue  # comments, event names, blank separators
                data = text[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except json.JSONDecodeError:
                    raise BackendError(f"LLM server sent a malformed event: {data[:120]!r}") from None
                if not isinstance(event, dict):
                    raise BackendError(f"LLM server sent an event that is not an object: {data[:120]!r}")
                if "error" in event:
                    raise BackendError(f"LLM server error: {event['error']}")
                for choice in event.get("choices") or []:
                    if not isinstance(choice, dict):
                        raise BackendError(f"LLM server sent a malformed choice: {data[:120]!r}")
                    finished = finished or bool(choice.get("finish_reason"))
                    content = (choice.get("delta") or {}).get("content") or (choice.get("text") or "")
                    if content:
                        yield content
        if not finished:
            raise BackendError("LLM server closed the stream before it finished (no [DONE] or finish_reason)")

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()


def _hint(status: int) -> str:
    if status in (401, 403):
        return " (check dialog.api_key)"
    if status == 404:
        return " (check dialog.base_url: it usually ends in /v1)"
    return ""


async def _detail(resp: aiohttp.ClientResponse) -> str:
    """The start of an error body: the server's own message when it is OpenAI-style JSON."""
    try:
        text = (await resp.text(errors="replace")).strip()
    except (aiohttp.ClientError, TimeoutError):
        return "(no body)"
    try:
        body = json.loads(text)
        if isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("message"):
            return str(body["error"]["message"])[:200]
    except json.JSONDecodeError:
        pass
    return text[:200] or "(empty body)"
