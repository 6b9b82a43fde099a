"""The voice: normalise, synthesize sentence by sentence off the event loop, trim, resample, cache prompts."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tts.audio import resample, trim_silence
from tts.normalize import normalize_for_speech
from tts.sentences import SentenceSplitter
from tts.voices import DEFAULT_VOICE, Backend, load_voice


@dataclass
class AudioChunk:
    """Audio for one sentence of a streamed reply."""

    samples: np.ndarray  # float32 mono
    rate: int
    text: str
    is_first: bool


def _default_cache() -> Path:
    return Path.home() / ".cache" / "voice-agent" / "tts"


class Synthesizer:
    """One loaded voice shared by every call (thread-safe); synthesis runs in an executor."""

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        cache_dir: Path | None = None,
        *,
        backend: Backend | None = None,
        executor: Executor | None = None,
        first_clause_words: int = 6,
    ) -> None:
        self.backend = backend or load_voice(voice)
        self.voice = self.backend.name
        self.cache_dir = cache_dir or _default_cache()
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self.first_clause_words = first_clause_words
        self._prompts: dict[tuple[str, str, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def synthesize(self, text: str, rate: int | None = None) -> np.ndarray:
        """Audio for ``text`` at ``rate`` (the voice's own rate when None), silence trimmed (blocking)."""
        spoken = normalize_for_speech(text)
        if not spoken.strip():
            return np.zeros(0, np.float32)
        audio = trim_silence(self.backend.synthesize(spoken), self.backend.rate)
        return resample(audio, self.backend.rate, rate or self.backend.rate)

    async def synthesize_async(self, text: str, rate: int) -> np.ndarray:
        """``synthesize`` in the executor."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.synthesize, text, rate)

    async def stream(self, chunks: AsyncIterator[str], rate: int) -> AsyncIterator[AudioChunk]:
        """Audio sentence by sentence while the text streams in; cancelling stops at once.

        Reading the text and synthesizing run side by side: a sentence's audio is
        yielded as soon as it is ready, while later text is still being generated.
        """
        splitter = SentenceSplitter(first_clause_words=self.first_clause_words)
        queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]] | None] = asyncio.Queue()

        async def read_text() -> None:
            try:
                async for chunk in chunks:
                    for sentence in splitter.feed(chunk):
                        queue.put_nowait((sentence, asyncio.ensure_future(self.synthesize_async(sentence, rate))))
                for sentence in splitter.flush():
                    queue.put_nowait((sentence, asyncio.ensure_future(self.synthesize_async(sentence, rate))))
            finally:
                queue.put_nowait(None)

        reader = asyncio.ensure_future(read_text())
        first = True
        try:
            while (item := await queue.get()) is not None:
                text, future = item
                audio = await future
                if audio.size:
                    yield AudioChunk(audio, rate, text, first)
                    first = False
            await reader  # surfaces an error from the text stream
        finally:
            reader.cancel()
            while not queue.empty():
                left = queue.get_nowait()
                if left is not None:
                    left[1].cancel()

    def _prompt_file(self, text: str, rate: int) -> Path:
        key = hashlib.sha256(f"{self.voice}|{rate}|{text}".encode()).hexdigest()[:24]
        return self.cache_dir / "prompts" / f"{key}.npy"

    def prompt_blocking(self, text: str, rate: int) -> np.ndarray:
        """A fixed prompt from memory, then disk, else synthesized once and saved."""
        key = (self.voice, text, rate)
        with self._lock:
            if key in self._prompts:
                return self._prompts[key]
        path = self._prompt_file(text, rate)
        audio: np.ndarray | None = None
        if path.exists():
            try:
                audio = np.load(path)
            except (OSError, ValueError):
                audio = None  # a damaged cache file is simply rebuilt
        if audio is None:
            audio = self.synthesize(text, rate)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, audio)
                tmp.replace(path)
            except OSError:
                pass  # a read-only cache only costs a re-synthesis next start
        with self._lock:
            self._prompts[key] = audio
        return audio

    async def prompt(self, text: str, rate: int) -> np.ndarray:
        """``prompt_blocking`` off the event loop."""
        key = (self.voice, text, rate)
        if key in self._prompts:
            return self._prompts[key]
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.prompt_blocking, text, rate)
