"""Reply composition with fake generators: the guard's fallbacks, slots, timeouts and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialog import DialogError
from dialog.grounding import Grounding
from dialog.llm.base import GenerationStats, Message
from dialog.reply import Reply, fixed, grounded_answer

PASSAGE = "Refunds are paid back to the original payment method within 5 to 7 business days after we approve them."
QUESTION = "How long does a refund take?"


class FakeGenerator:
    """Streams text word by word, optionally slowly, optionally failing."""

    def __init__(self, text: str, delay: float = 0.0, first_delay: float = 0.0, fail: bool = False) -> None:
        self.text = text
        self.delay = delay
        self.first_delay = first_delay
        self.fail = fail
        self.name = "fake"
        self.last_stats = GenerationStats()
        self.closed = False
        self.yielded = 0

    def load(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def stream(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0
                     ) -> AsyncIterator[str]:
        try:
            await asyncio.sleep(self.first_delay)
            if self.fail:
                raise DialogError("server went away")
            for i, word in enumerate(self.text.split(" ")):
                if i:
                    await asyncio.sleep(self.delay)
                self.yielded += 1
                yield (" " if i else "") + word
        finally:
            self.closed = True


async def answer(gen: FakeGenerator | None, upset: bool = False, slots: int = 2, **kw: Any) -> tuple[str, dict]:
    report: dict[str, Any] = {}
    chunks = grounded_answer(generator=gen, messages=[], grounding=Grounding(PASSAGE, QUESTION),
                             fact=[PASSAGE], slots=slots, upset=upset, report=report, **kw)
    return "".join([c async for c in chunks]).strip(), report


async def test_grounded_sentences_are_spoken() -> None:
    gen = FakeGenerator("Refunds take 5 to 7 business days. They go back to the original payment method.")
    text, report = await answer(gen)
    assert text.startswith("Refunds take five to seven business days.")
    assert report["llm_sentences"] >= 1 and not report["fallback"]


async def test_invented_numbers_fall_back_to_the_passage() -> None:
    text, report = await answer(FakeGenerator("Refunds take 3 business days."))
    assert text == "Refunds are paid back to the original payment method within five to seven business days " \
                   "after we approve them."
    assert "3" in report["fallback"] and report["rejected"][0]["sentence"] == "Refunds take 3 business days."


async def test_fact_is_added_when_the_model_dodges() -> None:
    text, report = await answer(FakeGenerator("We pay refunds back to the original payment method."))
    assert text.startswith("We pay refunds back") and "five to seven" in text
    assert report["fallback"] == "fact missing from the generated reply"


@pytest.mark.parametrize(
    ("gen", "reason"),
    [
        (FakeGenerator("", first_delay=0.0), "empty"),
        (FakeGenerator("Refunds take 5 to 7 days.", first_delay=1.0), "slow first token"),
        (FakeGenerator("x", fail=True), "backend error"),
        (None, "no generator"),
    ],
)
async def test_fallbacks(gen: FakeGenerator | None, reason: str) -> None:
    text, report = await answer(gen, first_token_timeout_s=0.2)
    assert "five to seven business days" in text
    assert report["fallback"].startswith(reason)


async def test_upset_caller_gets_one_fact_bearing_sentence_and_no_cheer() -> None:
    gen = FakeGenerator("Great news! Refunds take 5 to 7 business days.")
    text, _report = await answer(gen, upset=True, slots=1, opener="I'm sorry about the trouble.")
    assert text.startswith("I'm sorry about the trouble.") and "Great" not in text
    assert "five to seven" in text


async def test_stops_generation_when_slots_are_full() -> None:
    gen = FakeGenerator("Refunds take 5 to 7 days. Refunds go to the original payment method. " + "Words here. " * 50)
    text, _ = await answer(gen)
    assert text.count(".") == 2 and gen.closed and gen.yielded < 20


async def test_reply_stream_and_outcome() -> None:
    from dialog.conversation import Decision

    done: list[str] = []
    reply = Reply(Decision(), fixed("One.", "Two."), done.append)
    assert [c async for c in reply.stream()] == ["One. ", "Two. "]
    decision = await reply.outcome()
    assert decision.extra["text"] == "One. Two." and done == ["One. Two."]
    assert "first_chunk_ms" in decision.extra
    with pytest.raises(RuntimeError):
        async for _ in reply.stream():
            pass
    lazy = Reply(Decision(), fixed("Only."))
    assert await lazy.text() == "Only."


async def test_barge_in_closes_the_generation() -> None:
    from dialog.conversation import Decision

    gen = FakeGenerator("Refunds take 5 to 7 business days. " * 5, delay=0.01)
    chunks = grounded_answer(generator=gen, messages=[], grounding=Grounding(PASSAGE, QUESTION), fact=[PASSAGE],
                             slots=2, upset=False, opener="Okay.")
    spoken: list[str] = []
    reply = Reply(Decision(), chunks, spoken.append)
    async for chunk in reply.stream():
        if chunk != "Okay. ":
            break  # the caller spoke over the agent during the first generated sentence
    await reply.aclose()
    assert gen.closed and gen.yielded < 12
    assert spoken == ["Okay. Refunds take five to seven business days."]


async def test_aclose_before_streaming_records_nothing() -> None:
    from dialog.conversation import Decision

    gen = FakeGenerator("Refunds take 5 to 7 business days.")
    spoken: list[str] = []
    chunks = grounded_answer(generator=gen, messages=[], grounding=Grounding(PASSAGE, QUESTION), fact=[PASSAGE],
                             slots=2, upset=False)
    reply = Reply(Decision(), chunks, spoken.append)
    await reply.aclose()
    assert spoken == [""] and (await reply.outcome()).extra["text"] == ""
