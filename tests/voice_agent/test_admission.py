"""Admission control: measured answer latency, model-thread waits and loop lag decide whether to take a call."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from voice_agent.admission import AdmissionSettings, LoadMonitor, MeasuredExecutor, percentile
from voice_agent.config import ConfigError, load_config


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_percentile_by_nearest_rank() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


def test_slow_answers_refuse_new_calls_until_they_recover() -> None:
    clock = Clock()
    m = LoadMonitor(AdmissionSettings(max_answer_ms=2000, min_samples=3, answer_window_s=60), clock)
    for ms in (900, 1100, 1000):
        m.note_answer(ms)
    assert m.refusal() is None
    for ms in (2600, 2900, 3100):
        m.note_answer(ms)
    refusal = m.refusal()
    assert refusal is not None and "answers took" in refusal.reason and refusal.retry_after_s == 10
    # hysteresis: under the limit but above 70% of it is still busy
    clock.t += 61
    for ms in (1500, 1600, 1700):
        m.note_answer(ms)
    assert m.refusal() is not None
    clock.t += 61
    for ms in (900, 1000, 1100):
        m.note_answer(ms)
    assert m.refusal() is None
    # no recent answers at all says nothing
    clock.t += 61
    assert m.readings()["answer_p95_ms"] == 0.0 and m.refusal() is None


def test_model_queue_waits_and_loop_lag_refuse() -> None:
    clock = Clock()
    m = LoadMonitor(AdmissionSettings(max_model_wait_ms=500, max_loop_lag_ms=150), clock)
    for _ in range(20):
        m.note_model_wait(30)
        m.note_loop_lag(5)
    assert m.refusal() is None
    for _ in range(5):
        m.note_model_wait(1200)
    refusal = m.refusal()
    assert refusal is not None and "waited" in refusal.reason
    clock.t += 11  # the 10 s window moved on
    for _ in range(3):
        m.note_loop_lag(400)
    refusal = m.refusal()
    assert refusal is not None and "late" in refusal.reason and "waited" not in refusal.reason


def test_an_idle_box_always_takes_a_call() -> None:
    m = LoadMonitor(AdmissionSettings(max_answer_ms=2000, min_samples=1))
    m.note_answer(5000)
    m.note_loop_lag(900)
    assert m.refusal(active_calls=1) is not None
    assert m.refusal(active_calls=0) is None  # nothing in progress: the slowness is not the calls'


def test_disabled_or_zero_limits_never_refuse() -> None:
    m = LoadMonitor(AdmissionSettings(enabled=False))
    for _ in range(5):
        m.note_answer(99999)
    assert m.refusal() is None
    m = LoadMonitor(AdmissionSettings(max_answer_ms=0, max_model_wait_ms=0, max_loop_lag_ms=0))
    for _ in range(5):
        m.note_answer(99999)
        m.note_model_wait(99999)
    assert m.refusal() is None


def test_measured_executor_reports_the_wait_for_a_thread() -> None:
    waits: list[float] = []
    gate = threading.Event()
    ex = MeasuredExecutor(1, waits.append)
    try:
        first = ex.submit(gate.wait, 5)
        second = ex.submit(lambda: 42)
        time.sleep(0.2)  # the second job queues behind the first for this long
        gate.set()
        assert second.result(5) == 42 and first.result(5)
    finally:
        ex.shutdown()
    assert len(waits) == 2 and waits[0] < 100 and waits[1] >= 150


async def test_loop_lag_is_measured_on_the_running_loop() -> None:
    m = LoadMonitor()
    await m.start()
    try:
        ticks = asyncio.get_running_loop().time() + 5
        while len(m.lags.values()) < 2 and asyncio.get_running_loop().time() < ticks:
            await asyncio.sleep(0.05)
        time.sleep(0.3)  # block the loop: the next tick is late by about this much
        while max(m.lags.values(), default=0) < 150 and asyncio.get_running_loop().time() < ticks:
            await asyncio.sleep(0.05)
    finally:
        await m.stop()
    assert max(m.lags.values()) >= 150


def test_settings_come_from_the_configuration_and_are_checked() -> None:
    config = load_config(env={"VOICE_AGENT_ADMISSION__MAX_ANSWER_MS": "1500"})
    assert config.admission.max_answer_ms == 1500
    with pytest.raises(ConfigError, match=r"admission\.max_loop_lag_ms"):
        load_config(env={"VOICE_AGENT_ADMISSION__MAX_LOOP_LAG_MS": "-1"})
