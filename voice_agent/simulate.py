"""Simulated calls: a caller recording streamed as 20 ms frames, in real time or as fast as the models allow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np

from asr.audio import load_audio, resample

FRAME_S = 0.02


def caller_frames(path: Path, rate: int, telephony: bool = False) -> np.ndarray:
    """The caller file as mono float32 at ``rate`` (through G.711 mu-law when ``telephony``)."""
    audio = load_audio(path).mean(axis=0)
    audio = resample(audio, 16000, rate) if rate != 16000 else audio
    if telephony:
        audio = phone_line(audio)
    return audio.astype(np.float32)


def phone_line(audio: np.ndarray) -> np.ndarray:
    """What 8 kHz audio sounds like after G.711 mu-law companding both ways."""
    from telephony.g711 import decode_ulaw, encode_ulaw

    return decode_ulaw(encode_ulaw(audio))


class FileSource:
    """Yields the caller's audio frame by frame, then silence until the session stops.

    Real time: one frame every 20 ms of wall clock. Fast: frames go out at once
    except while the session has model work in flight (``busy``), when they go
    out in real time, so every latency still includes the models' compute time.
    """

    def __init__(
        self,
        audio: np.ndarray,
        rate: int,
        *,
        fast: bool = False,
        busy: Callable[[], bool] | None = None,
        hold: Callable[[], bool] | None = None,
        tail_s: float = 2.0,
        max_tail_s: float = 60.0,
        wait_at: float | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.audio = audio
        self.rate = rate
        self.fast = fast
        self.busy = busy or (lambda: False)
        self.hold = hold or (lambda: False)
        self.tail_s = tail_s
        self.max_tail_s = max_tail_s
        self.n = int(rate * FRAME_S)
        # The caller's audio from ``wait_at`` (s into the file) waits, as silence, until ``ready()``: an
        # interruption that lands mid-answer however fast the models are. ``cue_s``: when it went out (line time).
        self.wait_at = wait_at
        self.ready = ready or (lambda: True)
        self.cue_s: float | None = None

    async def frames(self) -> AsyncIterator[np.ndarray]:
        """The frames."""
        body = -(-len(self.audio) // self.n)
        silence = np.zeros(self.n, np.float32)
        next_due = time.monotonic()
        quiet = 0  # frames since the file ended with nothing left for the agent to do
        cue = None if self.wait_at is None else round(self.wait_at / FRAME_S)
        i = -1
        held = 0  # frames of silence put in while the caller waited
        while True:
            i += 1
            pos = i - held
            if pos >= body:
                # The caller has said everything: stay on the line while the agent still
                # answers, then hang up after a short silence.
                quiet = 0 if self.hold() else quiet + 1
                if quiet * FRAME_S >= self.tail_s or (pos - body) * FRAME_S >= self.max_tail_s:
                    return
            if pos == cue and self.cue_s is None:
                if not self.ready() and held * FRAME_S < self.max_tail_s:
                    held += 1
                    pos = -1  # silence this frame
                else:
                    self.cue_s = i * FRAME_S
            start = pos * self.n
            chunk = self.audio[start : start + self.n] if pos >= 0 else silence
            if len(chunk) < self.n:
                chunk = np.concatenate([chunk, silence[: self.n - len(chunk)]]) if len(chunk) else silence
            if self.fast and not self.busy():
                next_due = time.monotonic()
                await asyncio.sleep(0)
            else:
                next_due += FRAME_S
                delay = next_due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.2:
                    next_due = time.monotonic()  # fell behind (CPU stall): do not burst
            yield chunk
