"""Transcription jobs from the console: uploaded recordings transcribed in a worker thread, never on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from voice_agent.config import Config
from voice_agent.logs import log_event
from voice_agent.privacy import Privacy
from voice_agent.store import CallStore, private_dir

log = logging.getLogger("voice_agent.web.jobs")

JOB_FORMATS = ("json", "srt", "vtt", "txt")


class JobRunner:
    """Queues uploads, transcribes them one at a time and keeps progress and results in the store."""

    def __init__(self, config: Config, store: CallStore, upload_dir: Path, transcriber: Any = None) -> None:
        self.config = config
        self.store = store
        self.upload_dir = upload_dir
        private_dir(upload_dir)  # uploads are call audio: owner only
        self._transcriber = transcriber
        # One worker: a transcription already uses every core through CTranslate2.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcribe")
        self._tasks: set[asyncio.Future[Any]] = set()

    def _get_transcriber(self) -> Any:
        if self._transcriber is None:
            from asr import Transcriber

            a = self.config.asr
            self._transcriber = Transcriber(model=a.model, device=a.device, compute_type=a.compute_type,
                                            backend=a.backend, vad=a.vad, batch_size=a.batch_size,
                                            cache_dir=self.config.cache_path, allow_download=a.allow_download,
                                            cpu_threads=a.cpu_threads)
        return self._transcriber

    def submit(self, filename: str, path: Path, user: str) -> dict[str, Any]:
        """Record a queued job and start it (blocking store write: a short one)."""
        with contextlib.suppress(OSError):
            path.chmod(0o600)
        job_id = self.store.add_job(filename, str(path), user)
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._run, job_id, path)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)
        return self.get(job_id) or {}

    def _set(self, job_id: str, **fields: Any) -> None:
        self.store.update_job(job_id, **fields)

    def _source(self, job_id: str, path: Path) -> tuple[Any, float]:
        """What to transcribe and its length: the file, or a sealed upload decrypted into memory only."""
        from asr.audio import SAMPLE_RATE, decode_bytes, probe
        from voice_agent.protection.files import SealedReader, is_sealed

        if not is_sealed(path):
            return path, float(probe(path).duration or 0.0)
        data = SealedReader(path, self.store.cipher, f"the upload of job {job_id}").read_all()
        audio = decode_bytes(data, SAMPLE_RATE, suffix=path.suffix, name=path.name)
        del data
        return audio, audio.shape[-1] / SAMPLE_RATE

    def _run(self, job_id: str, path: Path) -> None:
        try:
            self._set(job_id, status="running")
            source, seconds = self._source(job_id, path)
            total = max(0.01, seconds)
            done = [0.0]

            def progress(seconds: float) -> None:
                done[0] += seconds
                self._set(job_id, progress=round(min(0.99, done[0] / total), 3))

            a = self.config.asr
            transcript = self._get_transcriber().transcribe(
                source, language=a.language or None, beam_size=a.beam_size, word_timestamps=a.word_timestamps,
                channel_speakers=self.config.transcribe.channel_speakers,
                block_seconds=self.config.transcribe.block_seconds, progress=progress)
            data = transcript.to_dict()
            data["file"] = path.name  # an upload decrypted in memory has no file name of its own
            privacy = Privacy.from_config(self.config)
            if privacy.store:
                data = privacy.transcript(data)
            call_id = self.store.add_call(
                "transcription", str(path), duration=data["duration"], ended_at=time.time(), outcome="transcribed",
                language=data.get("language"), model=data.get("model"), text=data["text"],
                meta={"channels": data.get("channels"), "recording": str(path), "job": job_id},
                segments=data["segments"])
            data["call_id"] = call_id
            self._set(job_id, status="done", progress=1.0, finished_at=time.time(), call_id=call_id,
                      result=data)
            log_event(log, "job_done", job=job_id, duration=data["duration"])
        except Exception as exc:  # a bad upload fails its job, not the server
            log.info("job %s failed", job_id, exc_info=True)
            self._set(job_id, status="failed", finished_at=time.time(), error=f"{type(exc).__name__}: {exc}")

    def get(self, job_id: str) -> dict[str, Any] | None:
        """One job without its result (blocking)."""
        return self.store.job(job_id)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Recent jobs first (blocking)."""
        return self.store.recent_jobs(limit)

    def result(self, job_id: str) -> dict[str, Any] | None:
        """The transcript of a finished job (blocking)."""
        return self.store.job_result(job_id)

    async def close(self) -> None:
        """Stop taking jobs; running ones finish in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)

