"""Admission control from measured load: refuse a new call when this box cannot answer it in time.

A fixed `max_calls` is only a ceiling; what a caller notices is how long answers take, and that depends
on the voices, the models, the cores and what else runs. Three measurements decide instead:

- the answer latency of recent turns (end of the caller's speech to the agent's first audio);
- how long model work waits for a free model thread (a saturated box queues before it slows);
- the event loop's lateness (RTP for every call is paced on it).

A box with no call in progress always takes one.

When one of them is over its limit, new calls get "busy" (SIP 503 with Retry-After, a polite message in the
browser) until the measurement has come back under a lower mark (hysteresis), so the box does not flap.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

Clock = Callable[[], float]

RECOVER = 0.7  # a tripped signal clears when its measurement falls under this share of its limit


@dataclass
class AdmissionSettings:
    """Limits; 0 switches a signal off."""

    enabled: bool = True
    max_answer_ms: float = 2000.0  # p95 of recent answer latencies
    max_model_wait_ms: float = 500.0  # p95 of recent waits for a model thread
    max_loop_lag_ms: float = 150.0  # p95 of recent event-loop lateness (one hiccup is not a load)
    answer_window_s: float = 60.0
    wait_window_s: float = 10.0
    min_samples: int = 3  # fewer recent answers than this say nothing yet
    retry_after_s: int = 10

    def check(self) -> None:
        """Refuse negative limits and empty windows (ValueError naming the setting)."""
        for name in ("max_answer_ms", "max_model_wait_ms", "max_loop_lag_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"admission.{name} must be 0 (off) or a positive number of milliseconds")
        for name in ("answer_window_s", "wait_window_s", "retry_after_s", "min_samples"):
            if getattr(self, name) <= 0:
                raise ValueError(f"admission.{name} must be positive")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


class Window:
    """Timestamped samples of the last `span` seconds."""

    def __init__(self, span: float, clock: Clock) -> None:
        self.span = span
        self.clock = clock
        self._items: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        """Record one sample now (any thread)."""
        with self._lock:
            self._items.append((self.clock(), value))
            self._trim()

    def values(self) -> list[float]:
        """The samples still inside the window."""
        with self._lock:
            self._trim()
            return [v for _, v in self._items]

    def _trim(self) -> None:
        horizon = self.clock() - self.span
        while self._items and self._items[0][0] < horizon:
            self._items.popleft()


class MeasuredExecutor(ThreadPoolExecutor):
    """A thread pool that reports how long each job waited for a thread (the model queue)."""

    def __init__(self, max_workers: int, on_wait: Callable[[float], None] | None = None, *,
                 thread_name_prefix: str = "models", clock: Clock = time.monotonic) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.on_wait = on_wait
        self.clock = clock

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run fn(*args, **kwargs) on a thread, noting its wait in milliseconds."""
        queued = self.clock()

        def timed() -> Any:
            if self.on_wait is not None:
                self.on_wait((self.clock() - queued) * 1000.0)
            return fn(*args, **kwargs)

        return super().submit(timed)


@dataclass
class Refusal:
    """Why a new call is refused now."""

    reason: str
    retry_after_s: int


class LoadMonitor:
    """Collects the three measurements and says whether a new call may be answered."""

    TICK_S = 0.1

    def __init__(self, settings: AdmissionSettings | None = None, clock: Clock = time.monotonic) -> None:
        self.settings = settings or AdmissionSettings()
        s = self.settings
        self.clock = clock
        self.answers = Window(s.answer_window_s, clock)
        self.waits = Window(s.wait_window_s, clock)
        self.lags = Window(s.wait_window_s, clock)
        self._tripped: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.refused = 0

    # -- measurements ----------------------------------------------------------------------------

    def note_answer(self, ms: float | None) -> None:
        """One answered turn's latency (end of the caller's speech to the first agent audio)."""
        if ms is not None and ms >= 0:
            self.answers.add(float(ms))

    def note_model_wait(self, ms: float) -> None:
        """How long one model job waited for a thread."""
        self.waits.add(float(ms))

    def note_loop_lag(self, ms: float) -> None:
        """How late one event-loop tick ran."""
        self.lags.add(max(0.0, float(ms)))

    async def start(self) -> None:
        """Measure the running loop's lateness until stop()."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch_loop(), name="admission-loop-lag")

    async def stop(self) -> None:
        """Stop measuring."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.TICK_S
            await asyncio.sleep(self.TICK_S)
            self.note_loop_lag((loop.time() - due) * 1000.0)

    # -- decision -------------------------------------------------------------------------------

    def readings(self) -> dict[str, float]:
        """The current measurements (ms), for logs, /metrics and the refusal reason."""
        enough = self.settings.min_samples
        answers, waits = self.answers.values(), self.waits.values()
        return {
            "answer_p95_ms": percentile(answers, 95) if len(answers) >= enough else 0.0,
            "answers": float(len(answers)),
            "model_wait_p95_ms": percentile(waits, 95) if len(waits) >= enough else 0.0,
            "loop_lag_p95_ms": percentile(self.lags.values(), 95),
            "loop_lag_p99_ms": percentile(self.lags.values(), 99),
        }

    def refusal(self, active_calls: int | None = None) -> Refusal | None:
        """None when one more call can be answered in time; else why not.

        A box with no call in progress always takes one: whatever made it slow (start-up, another
        program) is not something turning callers away would relieve.
        """
        s = self.settings
        if not s.enabled or active_calls == 0:
            return None
        r = self.readings()
        checks = (
            ("answer", r["answer_p95_ms"], s.max_answer_ms, "answers took {v:.0f} ms (p95) in the last {w:.0f} s",
             s.answer_window_s),
            ("model_wait", r["model_wait_p95_ms"], s.max_model_wait_ms,
             "model work waited {v:.0f} ms (p95) for a free thread", s.wait_window_s),
            ("loop_lag", r["loop_lag_p95_ms"], s.max_loop_lag_ms, "the event loop ran {v:.0f} ms late (p95)",
             s.wait_window_s),
        )
        reasons = []
        for name, value, limit, text, window in checks:
            if limit <= 0:
                continue
            mark = limit * RECOVER if name in self._tripped else limit
            if value > mark:
                self._tripped.add(name)
                reasons.append(text.format(v=value, w=window) + f" (limit {limit:.0f} ms)")
            else:
                self._tripped.discard(name)
        if not reasons:
            return None
        self.refused += 1
        return Refusal("; ".join(reasons), s.retry_after_s)
