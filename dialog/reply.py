"""A reply being generated: text chunks for the voice as they come, and the decision once done."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from dialog.conversation import Decision
from dialog.errors import DialogError
from dialog.grounding import Grounding
from dialog.llm.base import Generator, Message
from dialog.speech import complete_sentence_end, for_speech, strip_markdown

log = logging.getLogger(__name__)


class Reply:
    """`async for chunk in reply.stream()` speaks; `await reply.outcome()` gives the Decision (drains the stream).

    On barge-in call `await reply.aclose()`: leaving the `async for` alone only stops generation once the
    stream object is garbage-collected.
    """

    def __init__(self, decision: Decision, chunks: AsyncIterator[str],
                 on_done: Callable[[str], None] | None = None) -> None:
        self.decision = decision  # policy fields are final already; extra gains timings when the stream ends
        self._chunks = chunks
        self._on_done = on_done
        self._parts: list[str] = []
        self._started = False
        self._finished = asyncio.Event()
        self._t0 = time.perf_counter()
        self._active: AsyncIterator[str] | None = None

    def stream(self) -> AsyncIterator[str]:
        """Reply text, sentence by sentence (each chunk ends with a space); single use."""
        if self._started:
            raise RuntimeError("Reply.stream() can only be consumed once")
        self._started = True
        self._active = self._stream()
        return self._active

    async def aclose(self) -> None:
        """Stop now (barge-in): generation is cancelled and what was streamed so far is recorded."""
        if self._active is None:
            self._started = True
            self._active = self._stream()
        await _close(self._active)
        if not self._finished.is_set():  # closed before its first chunk: the generator body never ran
            await _close(self._chunks)
            self._finish()

    def _finish(self) -> None:
        self.decision.extra["reply_ms"] = round((time.perf_counter() - self._t0) * 1000, 1)
        text = self.text_so_far()
        self.decision.extra["text"] = text
        if self._on_done is not None:
            self._on_done(text)
        self._finished.set()

    async def _stream(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._chunks:
                if not self._parts:
                    self.decision.extra["first_chunk_ms"] = round((time.perf_counter() - self._t0) * 1000, 1)
                self._parts.append(chunk)
                yield chunk
        finally:
            await _close(self._chunks)
            self._finish()

    def text_so_far(self) -> str:
        """What has been streamed until now."""
        return "".join(self._parts).strip()

    async def outcome(self) -> Decision:
        """The decision for this turn; consumes the rest of the stream if nobody did."""
        if not self._started:
            async for _ in self.stream():
                pass
        await self._finished.wait()
        return self.decision

    async def text(self) -> str:
        """The whole reply text."""
        await self.outcome()
        return self.text_so_far()


async def _close(agen: AsyncIterator[str]) -> None:
    aclose = getattr(agen, "aclose", None)
    if aclose is not None:
        await aclose()


async def fixed(*sentences: str) -> AsyncIterator[str]:
    """Canned sentences, already written for the ear."""
    for s in sentences:
        if s:
            yield s.strip() + " "


async def grounded_answer(
    *,
    generator: Generator | None,
    messages: list[Message],
    grounding: Grounding,
    fact: list[str],  # the passage sentences to fall back on, best first
    slots: int,
    upset: bool,
    opener: str = "",
    max_tokens: int = 40,
    temperature: float = 0.0,
    first_token_timeout_s: float = 2.5,
    reply_timeout_s: float = 6.0,
    report: dict[str, Any] | None = None,
) -> AsyncIterator[str]:
    """LLM sentences that pass the grounding guard, else the passage's own sentences; at most `slots` sentences.

    The last free slot is kept for the passage's key fact if the model has not stated it yet, so the answer
    always carries the fact and never a number the passage does not hold.
    """
    report = report if report is not None else {}
    report.update(llm_sentences=0, fallback="", rejected=[])
    if opener:
        yield opener.strip() + " "
    said: list[str] = []
    fact_text = " ".join(fact)
    left = slots

    def needs_fact(candidate: list[str]) -> bool:
        return bool(fact_text) and not grounding.covers(" ".join(candidate), fact_text)

    if generator is None:
        report["fallback"] = "no generator"
    else:
        stream = generator.stream(messages, max_tokens=max_tokens, temperature=temperature)
        buffer = ""
        got_text = False
        finished = False
        start = time.perf_counter()
        try:
            while left > 0 and not report["fallback"]:
                remaining = reply_timeout_s - (time.perf_counter() - start)
                wait = min(first_token_timeout_s, remaining) if not got_text else remaining
                if wait <= 0:
                    report["fallback"] = "slow"
                    break
                try:
                    chunk = await asyncio.wait_for(_next(stream), wait)
                except StopAsyncIteration:
                    finished = True
                    chunk = None
                except TimeoutError:
                    report["fallback"] = "slow first token" if not got_text else "slow"
                    break
                except DialogError as exc:
                    log.warning("generation failed, answering from the passage: %s", exc)
                    report["fallback"] = f"backend error: {exc}"
                    break
                if chunk:
                    got_text = True
                    buffer += chunk
                pieces: list[str] = []
                while (end := complete_sentence_end(buffer)) > 0:
                    pieces.append(buffer[:end])
                    buffer = buffer[end:]
                if finished:
                    tail = strip_markdown(buffer)
                    if len(tail.split()) >= 4:  # the model stopped, perhaps without a full stop
                        pieces.append(tail if tail[-1] in ".!?" else tail + ".")
                    buffer = ""
                for piece in pieces:
                    sentence = strip_markdown(piece)
                    if not sentence or left <= 0:
                        continue
                    verdict = grounding.check(sentence, upset=upset)
                    if verdict.ok and left == 1 and needs_fact([*said, sentence]):
                        verdict = verdict.__class__(False, "last sentence must carry the fact")
                    if not verdict.ok:
                        report["rejected"].append({"sentence": sentence, "reason": verdict.reason})
                        report["fallback"] = verdict.reason
                        break
                    said.append(sentence)
                    left -= 1
                    report["llm_sentences"] += 1
                    yield for_speech(sentence) + " "
                if finished:
                    if not got_text:
                        report["fallback"] = "empty"
                    break
        finally:
            await _close(stream)
            stats = getattr(generator, "last_stats", None)
            if stats is not None:
                report["llm_first_token_ms"] = round(stats.first_token_s * 1000, 1)
                report["llm_tokens"] = stats.new_tokens
    # the passage itself, shortened for speech, fills what the model could not say safely
    if fact and (not said or needs_fact(said)) and left > 0:
        missing = [s for s in fact if not said or not grounding.covers(" ".join(said), s)][:left]
        for sentence in sorted(missing, key=grounding.passage.find):
            yield for_speech(sentence) + " "
        report.setdefault("fallback", "")
        if not report["fallback"]:
            report["fallback"] = "fact missing from the generated reply"


async def _next(stream: AsyncIterator[str]) -> str:
    return await stream.__anext__()
