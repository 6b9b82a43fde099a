"""`voice-agent transcribe PATH...`: offline transcripts of recorded calls."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from asr import AsrError, Transcriber
from asr.audio import SUPPORTED_EXTENSIONS
from asr.formats import FORMATS, render
from voice_agent.config import Config
from voice_agent.logs import log_event
from voice_agent.privacy import Privacy
from voice_agent.store import CallStore

log = logging.getLogger("voice_agent.transcribe")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the transcribe subcommand."""
    p = sub.add_parser("transcribe", help="transcribe recorded calls (files or directories)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories (recursive)")
    p.add_argument("--model", help="whisper-tiny.en (default), whisper-base, a directory or a .pt file")
    p.add_argument("--backend", choices=["faster-whisper", "openai-whisper"])
    p.add_argument("--language", help="language code; default: auto-detect on multilingual models")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"])
    p.add_argument("--compute-type", help="int8 (CPU default), float16 (CUDA default), float32...")
    p.add_argument("--beam-size", type=int)
    p.add_argument("--vad", choices=["silero", "webrtc"])
    p.add_argument("--format", action="append", dest="formats", metavar="FMT",
                   help=f"output format, repeatable or comma-separated: {', '.join(FORMATS)}")
    p.add_argument("--output", "-o", type=Path, help="write DIR/<file stem>.<format> for each input")
    p.add_argument("--jobs", "-j", type=int, help="files transcribed in parallel")
    p.add_argument("--speakers", help="channel speaker names, e.g. caller,agent")
    p.add_argument("--prompt", help="vocabulary hint for Whisper (product names, places)")
    p.add_argument("--no-words", action="store_true", help="skip word-level timestamps")
    p.add_argument("--no-store", action="store_true", help="do not save transcripts in the call store")
    p.add_argument("--allow-download", action="store_true", help="allow fetching hub models")
    p.add_argument("--analyze", action="store_true",
                   help="add sentiment, PII redaction and a call summary (dialog brain)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run on a Ray cluster, one model per actor (default: transcribe.ray_address)")
    p.set_defaults(func=run)


def collect_inputs(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Expand directories recursively; returns (files, problems)."""
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED_EXTENSIONS)
            if not found:
                problems.append(f"{p}: directory has no audio files ({', '.join(sorted(SUPPORTED_EXTENSIONS))})")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            problems.append(f"{p}: file not found")
    return files, problems


class Progress:
    """A one-line progress bar on stderr: files, audio seconds and speed."""

    def __init__(self, total_files: int, enabled: bool) -> None:
        self.total = total_files
        self.enabled = enabled
        self.done = 0
        self.audio = 0.0
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def add_audio(self, seconds: float) -> None:
        """Count decoded-and-transcribed audio."""
        with self._lock:
            self.audio += seconds
            self._draw()

    def file_done(self) -> None:
        """Count one finished file."""
        with self._lock:
            self.done += 1
            self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-6)
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] files {self.done}/{self.total} | "
                f"audio {self.audio:7.1f} s | {self.audio / elapsed:5.1f}x realtime")
        if self._tty:
            sys.stderr.write("\r" + line)
            if self.done == self.total:
                sys.stderr.write("\n")
        elif force:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _formats(args: argparse.Namespace, config: Config) -> list[str]:
    raw = args.formats or config.transcribe.formats
    out: list[str] = []
    for item in raw:
        for fmt in item.split(","):
            fmt = fmt.strip().lower()
            if fmt not in FORMATS:
                raise AsrError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")
            if fmt not in out:
                out.append(fmt)
    return out


def _analyze(data: dict[str, Any], config: Config) -> dict[str, Any]:
    from dialog.analysis import analyze_transcript

    result = analyze_transcript(data["segments"], redact=config.dialog.redact_transcripts,
                                kinds=config.dialog.redact)
    data["segments"] = result["segments"]
    data["summary"] = result.get("summary", "")
    data["redactions"] = result.get("redactions", 0)
    data["redactions_by_kind"] = result.get("redactions_by_kind", {})
    data["by_speaker"] = result.get("by_speaker", {})
    data["text"] = " ".join(s["text"] for s in data["segments"] if s["text"])
    return data


def run(args: argparse.Namespace, config: Config) -> int:
    """Transcribe every input; one bad file never stops the others."""
    asr_cfg = config.asr
    formats = _formats(args, config)
    files, problems = collect_inputs(args.paths)
    if not args.output and (len(files) > 1 or len(formats) > 1):
        raise AsrError("several inputs or formats: pass --output DIR (one file prints to stdout)")
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
    jobs = max(1, args.jobs or config.transcribe.jobs)
    speakers = (args.speakers.split(",") if args.speakers else config.transcribe.channel_speakers)
    for problem in problems:
        print(f"voice-agent: {problem}", file=sys.stderr)
    if not files:
        print("voice-agent: nothing to transcribe", file=sys.stderr)
        return 1
    ray_address = args.ray or config.transcribe.ray_address
    if ray_address:  # the same batch on a Ray cluster, one model per actor (voice_agent.ray_jobs)
        from voice_agent.ray_jobs import connect

        transcriber: Any = connect(ray_address, args, config)
        jobs = transcriber.actors
    else:
        transcriber = Transcriber(
            model=args.model or asr_cfg.model,
            device=args.device or asr_cfg.device,
            compute_type=args.compute_type or asr_cfg.compute_type,
            backend=args.backend or asr_cfg.backend,
            vad=args.vad or asr_cfg.vad,
            batch_size=asr_cfg.batch_size,
            cache_dir=config.cache_path,
            allow_download=args.allow_download or asr_cfg.allow_download,
            cpu_threads=asr_cfg.cpu_threads,
            num_workers=jobs,
        )
    store = None if args.no_store else CallStore.from_config(config)
    privacy = Privacy.from_config(config)
    progress = Progress(len(files), enabled=not args.quiet and (len(files) > 1 or bool(args.output)))
    failures: list[str] = []

    def one(path: Path) -> None:
        t0 = time.monotonic()
        try:
            transcript = transcriber.transcribe(
                path,
                language=args.language or asr_cfg.language or None,
                beam_size=args.beam_size or asr_cfg.beam_size,
                word_timestamps=not args.no_words and asr_cfg.word_timestamps,
                channel_speakers=speakers,
                initial_prompt=args.prompt,
                block_seconds=config.transcribe.block_seconds,
                progress=progress.add_audio,
            )
            data = transcript.to_dict()
            if args.analyze:
                data = _analyze(data, config)
            stored = privacy.transcript(data) if privacy.store else data
            if privacy.transcripts:
                data = privacy.transcript(data)
            if store is not None:
                call_id = store.add_call(
                    "transcription", str(path.resolve()), duration=data["duration"],
                    ended_at=time.time(), outcome="transcribed", language=data["language"],
                    model=data["model"], text=stored["text"],
                    meta={k: stored[k] for k in ("channels", "summary", "redactions") if k in stored},
                    segments=stored["segments"],
                )
                data["call_id"] = call_id
            for fmt in formats:
                text = render(data, fmt)
                if args.output:
                    (args.output / f"{path.stem}.{fmt}").write_text(text, encoding="utf-8")
                else:
                    sys.stdout.write(text)
            log_event(log, "transcribed", file=str(path), duration=data["duration"],
                      segments=len(data["segments"]), seconds=round(time.monotonic() - t0, 2))
        except (AsrError, OSError) as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            print(f"voice-agent: {message}", file=sys.stderr)
            failures.append(str(path))
        except Exception as exc:  # one broken file must not stop the batch
            print(f"voice-agent: {path}: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
            log.debug("transcribe failed", exc_info=True)
            failures.append(str(path))
        finally:
            progress.file_done()

    if jobs == 1:
        for f in files:
            one(f)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, files))
    if store is not None:
        store.close()
    if ray_address:
        transcriber.close()
    failed = len(failures) + len(problems)
    ok = len(files) - len(failures)
    if failed or len(files) > 1:
        print(f"voice-agent: {ok} transcribed, {failed} failed", file=sys.stderr)
    return 1 if failed else 0
