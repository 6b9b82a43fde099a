"""`voice-agent talk`: converse through this machine's microphone and speaker (pyaudio extra)."""

from __future__ import annotations

import argparse
import asyncio
import queue
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from voice_agent.cli import UserError
from voice_agent.config import Config

RATE = 16000
FRAME = 320


def register(sub: argparse._SubParsersAction) -> None:
    """Add the talk subcommand."""
    p = sub.add_parser("talk", help="talk to the assistant through the microphone and speaker")
    p.add_argument("--input-device", type=int, help="pyaudio input device index")
    p.add_argument("--output-device", type=int, help="pyaudio output device index")
    p.set_defaults(func=run)


def open_audio(input_device: int | None, output_device: int | None) -> tuple[Any, Any, Any]:
    """Open microphone and speaker streams, or raise UserError saying what is missing."""
    try:
        import pyaudio
    except ImportError:
        raise UserError("`talk` needs PyAudio: pip install 'voice-agent[talk]' (and portaudio19-dev)") from None
    pa = pyaudio.PyAudio()
    if pa.get_device_count() == 0:
        pa.terminate()
        raise UserError("no audio device found on this machine; use `voice-agent call --caller FILE`")
    try:
        mic = pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, input=True, frames_per_buffer=FRAME,
                      input_device_index=input_device)
        spk = pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, output=True, frames_per_buffer=FRAME,
                      output_device_index=output_device)
    except OSError as exc:
        pa.terminate()
        raise UserError(f"cannot open the microphone or speaker: {exc}") from None
    return pa, mic, spk


def run(args: argparse.Namespace, config: Config) -> int:
    """Converse until Ctrl-C."""
    pa, mic, spk = open_audio(args.input_device, args.output_device)
    from voice_agent.engine import Engine

    engine = Engine.from_config(config)
    frames: queue.Queue[np.ndarray] = queue.Queue(maxsize=200)
    stop = threading.Event()

    def capture() -> None:
        # PyAudio blocks: read on a thread and hand frames to the event loop.
        while not stop.is_set():
            data = mic.read(FRAME, exception_on_overflow=False)
            frames.put(np.frombuffer(data, "<i2").astype(np.float32) / 32768.0)

    async def source() -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            yield await loop.run_in_executor(None, frames.get)

    async def sink(frame: np.ndarray) -> None:
        await asyncio.get_running_loop().run_in_executor(
            None, spk.write, (np.clip(frame, -1, 1) * 32767).astype("<i2").tobytes())

    thread = threading.Thread(target=capture, daemon=True)
    thread.start()
    try:
        session = engine.session(RATE, recording_path=config.recordings_path / "talk-latest.wav")
        result = asyncio.run(session.run(source(), sink))
        print(f"call ended: {result.outcome}")
    except KeyboardInterrupt:
        print("bye")
    finally:
        stop.set()
        mic.close()
        spk.close()
        pa.terminate()
    return 0
