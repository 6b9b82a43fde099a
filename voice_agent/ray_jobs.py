"""Batch transcription on a Ray cluster: ``voice-agent transcribe --ray ADDRESS``.

Transcription is a pure function of (file, options), so the local command stays as it is and
only the step "audio file -> Transcript" moves: :class:`RayTranscriber` has the same
``transcribe(path, **options)`` method as ``asr.Transcriber`` and runs it on one of a few Ray
actors, each holding one loaded Whisper model for the whole batch. The command's threads
(one per actor) keep writing outputs, the store and the progress bar exactly as locally.

Files travel as bytes through Ray's object store, or as paths when every node of the cluster
is this machine (``transcribe.ray_send = "auto"``, the default); ``"bytes"`` / ``"paths"``
force one or the other.
"""

from __future__ import annotations

import logging
import queue
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from asr import AsrError, Transcript
from asr.errors import AudioDecodeError
from voice_agent.logs import log_event

log = logging.getLogger("voice_agent.ray_jobs")
SEND_MODES = ("auto", "bytes", "paths")


class RayError(AsrError):
    """The Ray cluster could not be reached or used; the message says what to check."""


class TranscribeWorker:
    """A Ray actor: one Whisper model, loaded once, transcribing file after file.

    Errors come back as values (kind, message) so the driver prints the same one line as a
    local run instead of a remote traceback.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        from asr import Transcriber

        cache = settings.pop("cache_dir", None)
        self.transcriber = Transcriber(**settings, cache_dir=Path(cache) if cache else None)

    def ready(self) -> str:
        """The model's name, once loaded (the driver waits on this)."""
        return str(self.transcriber.model_name)

    def transcribe(self, name: str, path: str | None, data: bytes | None,
                   options: dict[str, Any]) -> tuple[str, Any]:
        """Transcribe a path on this node, or bytes written to a temporary file named like the input."""
        tmp: str | None = None
        source = path or ""
        try:
            if data is not None:
                tmp = tempfile.mkdtemp(prefix="voice-agent-ray-")
                source = str(Path(tmp) / Path(name).name)
                Path(source).write_bytes(data)
            transcript = self.transcriber.transcribe(source, **options)
            transcript.file = name
            return "ok", transcript
        except AudioDecodeError as exc:
            return "decode", exc.reason
        except AsrError as exc:
            return "asr", str(exc).replace(source, name)
        except Exception as exc:  # the driver reports it as one line for this file
            return "crash", f"{type(exc).__name__}: {str(exc).replace(source, name)}"
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def _local_cluster(nodes: Sequence[dict[str, Any]], driver_ip: str) -> bool:
    """Whether every alive node is this machine (then a path means the same file everywhere)."""
    alive = [n for n in nodes if n.get("Alive")]
    return bool(alive) and all(n.get("NodeManagerAddress") in (driver_ip, "127.0.0.1") for n in alive)


class RayTranscriber:
    """``asr.Transcriber``'s ``transcribe`` over a pool of Ray actors (one model each)."""

    def __init__(self, address: str, settings: dict[str, Any], *, actors: int = 0, send: str = "auto",
                 cpus_per_actor: float = 1.0) -> None:
        if send not in SEND_MODES:
            raise RayError(f"transcribe.ray_send: expected one of {', '.join(SEND_MODES)}, got {send!r}")
        try:
            import ray
        except ImportError:
            raise RayError("--ray needs the 'ray' package (pip install ray)") from None
        self._ray = ray
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     configure_logging=False, namespace="voice-agent-transcribe")
        except Exception as exc:
            raise RayError(f"cannot connect to the Ray cluster at {address!r}: {_first_line(exc)} "
                           "(start one with `ray start --head`, then pass its address, e.g. 127.0.0.1:6379)") from None
        try:
            nodes = ray.nodes()
            client = address.startswith("ray://")
            local = not client and _local_cluster(nodes, ray.util.get_node_ip_address())
            self.send = ("paths" if local else "bytes") if send == "auto" else send
            count = actors or max(1, sum(1 for n in nodes if n.get("Alive")))
            self.model_name = str(settings.get("model", ""))
            remote_cls: Any = ray.remote(num_cpus=cpus_per_actor, max_restarts=2)(TranscribeWorker)
            self._actors = [remote_cls.remote(dict(settings)) for _ in range(count)]
            loaded = self._gather([a.ready.remote() for a in self._actors])
            if loaded:
                self.model_name = loaded[0]
        except RayError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise RayError(f"the Ray cluster at {address!r} could not start the transcription workers: "
                           f"{_first_line(exc)}") from None
        self._idle: queue.Queue[Any] = queue.Queue()
        for actor in self._actors:
            self._idle.put(actor)
        log_event(log, "ray_transcribers_ready", address=address, actors=len(self._actors), send=self.send,
                  model=self.model_name)

    def _gather(self, refs: list[Any]) -> list[str]:
        ray = self._ray
        try:
            return [str(x) for x in ray.get(refs)]
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, AsrError):
                raise RayError(str(cause)) from None  # e.g. the model is not on the worker's machine
            raise RayError(f"a Ray worker could not load the model: {_first_line(cause)}") from None

    @property
    def actors(self) -> int:
        """How many models are loaded (the command runs this many files at once)."""
        return len(self._actors)

    def transcribe(self, source: str | Path, *, progress: Callable[[float], None] | None = None,
                   **options: Any) -> Transcript:
        """Transcribe one file on an idle actor; raises AsrError with the same text as a local run."""
        path = Path(source)
        name = str(source)
        data: bytes | None = None
        remote_path: str | None = None
        if self.send == "bytes":
            if not path.exists():
                raise AudioDecodeError(name, "file not found")
            data = path.read_bytes()
        else:
            remote_path = str(path.resolve())
        actor = self._idle.get()
        try:
            kind, value = self._ray.get(actor.transcribe.remote(name, remote_path, data, options))
        except self._ray.exceptions.RayActorError as exc:
            raise AsrError(f"{name}: the Ray worker transcribing it died ({_first_line(exc)})") from None
        except self._ray.exceptions.RayError as exc:
            raise AsrError(f"{name}: Ray could not transcribe it ({_first_line(exc)})") from None
        finally:
            self._idle.put(actor)
        if kind == "decode":
            raise AudioDecodeError(name, str(value))
        if kind in ("asr", "crash"):
            raise AsrError(str(value) if name in str(value) else f"{name}: {value}")
        transcript: Transcript = value
        if progress is not None:
            progress(transcript.duration)
        return transcript

    def close(self) -> None:
        """Release the actors and disconnect from the cluster."""
        for actor in getattr(self, "_actors", []):
            try:
                self._ray.kill(actor)
            except Exception:  # already gone with the cluster
                log.debug("ray kill failed", exc_info=True)
        self._actors = []
        if self._ray.is_initialized():
            self._ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail with one line when nothing listens at a host:port address.

    Ray's core aborts the whole process with a C++ log when its GCS is not there, so the
    command looks first (ray:// client addresses are left to Ray).
    """
    if "://" in address or address == "auto":
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RayError(f"--ray {address!r}: expected HOST:PORT of the head node (e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise RayError(f"cannot connect to the Ray cluster at {address!r}: {exc.strerror or exc} "
                       "(start one with `ray start --head`, then pass its address, e.g. 127.0.0.1:6379)") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def connect(address: str, args: Any, config: Any) -> RayTranscriber:
    """The transcribe command's model settings, loaded on the cluster's actors."""
    asr_cfg = config.asr
    settings = {
        "model": args.model or asr_cfg.model,
        "device": args.device or asr_cfg.device,
        "compute_type": args.compute_type or asr_cfg.compute_type,
        "backend": args.backend or asr_cfg.backend,
        "vad": args.vad or asr_cfg.vad,
        "batch_size": asr_cfg.batch_size,
        "cache_dir": str(config.cache_path),
        "allow_download": args.allow_download or asr_cfg.allow_download,
        "cpu_threads": asr_cfg.cpu_threads,
    }
    tc = config.transcribe
    return RayTranscriber(address, settings, actors=args.jobs or tc.ray_actors, send=tc.ray_send,
                          cpus_per_actor=tc.ray_cpus_per_actor)
