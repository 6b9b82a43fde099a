"""Fault isolation for one call: a model that raises ends its own call, never the others.

The session's ports (brain, recognizer) are wrapped per call. When one raises, the fault is
recorded with a clear reason, the session gets an empty result instead of the exception (no
orphaned task tracebacks, no half-built turn), and the front end hangs the call up and stores
it as ``error``. A failing greeting still raises: the call has not begun.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from asr.streaming import Recognition
from voice_agent.ports import TurnInput, TurnOutcome

NOTHING_HEARD = Recognition("", 0.0, 1.0)


class CallFault:
    """The first model failure of one call (settable from model threads)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reason: str | None = None
        self.event = asyncio.Event()
        self._lock = threading.Lock()

    def set(self, where: str, exc: BaseException) -> None:
        """Record a failure (only the first one counts); wakes whoever waits on the call's faults."""
        with self._lock:
            if self.reason is not None:
                return
            text = str(exc).replace("\n", " ")[:200]
            self.reason = f"{where} failed: {type(exc).__name__}" + (f": {text}" if text else "")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.event.set()
        else:
            self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self) -> str:
        """Until a model fails; its reason."""
        await self.event.wait()
        return self.reason or "model failed"


class GuardedReply:
    """A brain reply whose stream and outcome report failures to the call's fault."""

    def __init__(self, reply: Any, fault: CallFault) -> None:
        self.reply = reply
        self.fault = fault

    async def stream(self) -> AsyncIterator[str]:
        """The reply text, as the brain streams it (it stops where the brain failed)."""
        if self.reply is None:
            return
        try:
            async for chunk in self.reply.stream():
                yield chunk
        except Exception as exc:
            self.fault.set("brain", exc)

    async def outcome(self) -> TurnOutcome:
        """The brain's decision for the turn (a neutral one after a failure: the call is being ended)."""
        if self.reply is None or self.fault.reason is not None:
            return TurnOutcome(action="error")
        try:
            result: TurnOutcome = await self.reply.outcome()
        except Exception as exc:
            self.fault.set("brain", exc)
            return TurnOutcome(action="error")
        return result

    async def aclose(self) -> None:
        """Stop the brain's generation now (the caller interrupted), when its reply can."""
        closer = getattr(self.reply, "aclose", None)
        if closer is not None:
            await closer()


class GuardedBrain:
    """A per-call brain whose failures end its call."""

    def __init__(self, brain: Any, fault: CallFault) -> None:
        self.brain = brain
        self.fault = fault

    def greeting(self) -> str:
        """The opening line."""
        try:
            return str(self.brain.greeting())
        except Exception as exc:
            self.fault.set("brain", exc)
            raise

    async def respond(self, turn: TurnInput) -> GuardedReply:
        """Start the reply to one caller turn (an empty one when the brain failed)."""
        try:
            reply = await self.brain.respond(turn)
        except Exception as exc:
            self.fault.set("brain", exc)
            reply = None
        return GuardedReply(reply, self.fault)

    def retract(self) -> None:
        """Forget the last turn."""
        self.brain.retract()


class GuardedRecognizer:
    """The shared recognizer as one call sees it: a failed recognition ends that call only."""

    def __init__(self, recognizer: Any, fault: CallFault) -> None:
        self.recognizer = recognizer
        self.fault = fault

    def recognize(self, *args: Any, **kwargs: Any) -> Any:
        """Recognize an utterance (runs in a model thread); nothing heard when the model failed."""
        try:
            return self.recognizer.recognize(*args, **kwargs)
        except Exception as exc:
            self.fault.set("speech recognition", exc)
            return NOTHING_HEARD

    def __getattr__(self, name: str) -> Any:
        return getattr(self.recognizer, name)
