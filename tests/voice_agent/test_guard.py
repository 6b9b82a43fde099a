"""Per-call fault guards: the first model failure of a call is recorded with a clear reason and wakes the front end."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from voice_agent.guard import CallFault, GuardedBrain, GuardedRecognizer
from voice_agent.ports import TurnInput


class BrokenRecognizer:
    prompt = "a prompt"

    def recognize(self, audio: Any, beam: int) -> Any:
        raise MemoryError("CUDA out of memory")


class BrokenStream:
    async def stream(self) -> Any:
        yield "Our shops"
        raise ConnectionError("the model server went away")

    async def outcome(self) -> Any:
        raise AssertionError("not reached")


class Brain:
    def __init__(self, reply: Any) -> None:
        self.reply = reply

    def greeting(self) -> str:
        return "Hello."

    async def respond(self, turn: TurnInput) -> Any:
        return self.reply

    def retract(self) -> None:
        pass


async def test_a_recognizer_failure_in_a_model_thread_wakes_the_call() -> None:
    fault = CallFault(asyncio.get_running_loop())
    recognizer = GuardedRecognizer(BrokenRecognizer(), fault)
    assert recognizer.prompt == "a prompt"  # everything else passes through
    with ThreadPoolExecutor(1) as pool:  # the session hears nothing instead of an exception
        rec = await asyncio.get_running_loop().run_in_executor(pool, recognizer.recognize, b"", 1)
    assert rec.text == ""
    assert await asyncio.wait_for(fault.wait(), 1) == "speech recognition failed: MemoryError: CUDA out of memory"


async def test_a_reply_that_breaks_mid_stream_is_recorded_once() -> None:
    fault = CallFault(asyncio.get_running_loop())
    brain = GuardedBrain(Brain(BrokenStream()), fault)
    assert brain.greeting() == "Hello."
    reply = await brain.respond(TurnInput(text="hours?"))
    got = [chunk async for chunk in reply.stream()]  # the stream stops where the brain failed
    assert got == ["Our shops"] and (await reply.outcome()).action == "error"
    fault.set("speech recognition", RuntimeError("later"))  # only the first failure counts
    assert fault.reason == "brain failed: ConnectionError: the model server went away"
    assert fault.event.is_set()


async def test_a_brain_that_raises_gives_an_empty_reply() -> None:
    class Raising(Brain):
        async def respond(self, turn: TurnInput) -> Any:
            raise RuntimeError("language model crashed")

    fault = CallFault(asyncio.get_running_loop())
    reply = await GuardedBrain(Raising(None), fault).respond(TurnInput(text="hours?"))
    assert [c async for c in reply.stream()] == [] and (await reply.outcome()).action == "error"
    assert fault.reason == "brain failed: RuntimeError: language model crashed"


class Closable(BrokenStream):
    closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_closing_a_guarded_reply_closes_the_brains_reply() -> None:
    inner = Closable()
    reply = await GuardedBrain(Brain(inner), CallFault(asyncio.get_running_loop())).respond(TurnInput(text="hi"))
    await reply.aclose()  # a barge-in or a takeover stops the generation, not only the stream
    assert inner.closed
