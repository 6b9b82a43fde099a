"""Decode any audio file to float32 at 16 kHz, in bounded blocks (never the whole file at once)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.errors import AudioDecodeError

SAMPLE_RATE = 16000
SUPPORTED_EXTENSIONS = {
    ".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac",
    ".webm", ".mka", ".au", ".aif", ".aiff", ".caf", ".ul", ".al",
}


@dataclass
class AudioInfo:
    """What the container says about a file before decoding."""

    path: str
    codec: str
    channels: int
    sample_rate: int
    duration: float | None  # seconds, None when the container does not say


def _open(path: Path):  # type: ignore[no-untyped-def]
    import av

    if not path.exists():
        raise AudioDecodeError(str(path), "file not found")
    if path.is_dir():
        raise AudioDecodeError(str(path), "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(str(path), "file is empty (0 bytes)")
    fmt = {".ul": "mulaw", ".al": "alaw"}.get(path.suffix.lower())
    options = {"ar": "8000", "ac": "1"} if fmt else {}
    try:
        container = av.open(str(path), format=fmt, options=options, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(
            str(path), f"not a readable audio file ({_reason(exc)}); supported: WAV, FLAC, "
            "MP3, OGG/Opus, M4A and raw .ul/.al G.711"
        ) from None
    if not container.streams.audio:
        container.close()
        raise AudioDecodeError(str(path), "contains no audio stream")
    return container


def _reason(exc: Exception) -> str:
    text = str(exc)
    # FFmpeg errors look like "[Errno 1094995529] Invalid data found ...: 'path'"; keep the middle.
    if "]" in text:
        text = text.split("]", 1)[1]
    return text.split(":")[0].strip() or type(exc).__name__


def probe(path: str | Path) -> AudioInfo:
    """Read container metadata (codec, channels, rate, duration)."""
    p = Path(path)
    container = _open(p)
    try:
        stream = container.streams.audio[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        return AudioInfo(
            path=str(p),
            codec=stream.codec_context.name,
            channels=stream.codec_context.channels or 1,
            sample_rate=stream.codec_context.sample_rate or 0,
            duration=duration,
        )
    finally:
        container.close()


def stream_decode(
    path: str | Path, sample_rate: int = SAMPLE_RATE, block_seconds: float = 30.0
) -> Iterator[np.ndarray]:
    """Yield float32 blocks shaped (channels, samples) at ``sample_rate``.

    Memory stays bounded by ``block_seconds`` whatever the file length. A file
    that stops decoding early (truncated, corrupt) raises AudioDecodeError
    naming the point where it broke.
    """
    import av

    p = Path(path)
    container = _open(p)
    try:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 1
        expected = None
        if stream.duration is not None and stream.time_base is not None:
            expected = float(stream.duration * stream.time_base)
        elif container.duration:
            expected = container.duration / 1_000_000
        layout = stream.codec_context.layout.name if channels <= 2 else f"{channels}c"
        try:
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        except (ValueError, av.error.FFmpegError):
            resampler = av.AudioResampler(format="fltp", layout="stereo" if channels > 1 else "mono",
                                          rate=sample_rate)
        block = int(block_seconds * sample_rate)
        pending: list[np.ndarray] = []
        pending_len = 0
        decoded = 0
        frames_iter = container.decode(stream)
        while True:
            try:
                frame = next(frames_iter)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                raise AudioDecodeError(
                    str(p), f"decoding failed after {decoded / sample_rate:.1f} s "
                    f"(corrupt or truncated: {_reason(exc)})"
                ) from None
            frame.pts = None  # let the resampler ignore gaps in timestamps
            for out in resampler.resample(frame):
                arr = out.to_ndarray().astype(np.float32, copy=False)
                pending.append(arr)
                pending_len += arr.shape[1]
                decoded += arr.shape[1]
            while pending_len >= block:
                joined = np.concatenate(pending, axis=1)
                yield joined[:, :block]
                rest = joined[:, block:]
                pending = [rest] if rest.shape[1] else []
                pending_len = rest.shape[1]
        for out in resampler.resample(None):
            arr = out.to_ndarray().astype(np.float32, copy=False)
            pending.append(arr)
            decoded += arr.shape[1]
        if pending:
            yield np.concatenate(pending, axis=1)
        if decoded == 0:
            raise AudioDecodeError(str(p), "contains no decodable audio samples")
        got = decoded / sample_rate
        if expected and expected > 1.0 and got < expected * 0.9 - 0.5:
            raise AudioDecodeError(
                str(p), f"truncated: the header says {expected:.1f} s but only {got:.1f} s "
                "could be decoded"
            )
    finally:
        container.close()


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a whole (short) file to (channels, samples) float32."""
    blocks = list(stream_decode(path, sample_rate))
    return np.concatenate(blocks, axis=1)


def as_channels(audio: np.ndarray) -> np.ndarray:
    """Accept (samples,), (channels, samples) or (samples, channels) and return (channels, samples)."""
    arr = np.asarray(audio)
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 1:
        return arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"audio must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] > arr.shape[1]:
        arr = arr.T
    return np.ascontiguousarray(arr)


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Polyphase resampling of (channels, samples) or (samples,) float32 audio."""
    if src_rate == dst_rate:
        return audio
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(src_rate, dst_rate)
    return resample_poly(audio, dst_rate // g, src_rate // g, axis=-1).astype(np.float32)


def decode_bytes(data: bytes, sample_rate: int = SAMPLE_RATE, *, suffix: str = "", name: str = "<memory>"
                 ) -> np.ndarray:
    """Decode a whole audio file held in memory (e.g. decrypted, never written to disk) to (channels, samples).

    ``suffix`` names the container when it cannot be sniffed (``.ul``/``.al`` raw G.711).
    """
    import io

    import av

    if not data:
        raise AudioDecodeError(name, "file is empty (0 bytes)")
    fmt = {".ul": "mulaw", ".al": "alaw"}.get(suffix.lower())
    options = {"ar": "8000", "ac": "1"} if fmt else {}
    try:
        container = av.open(io.BytesIO(data), mode="r", format=fmt, options=options, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(name, f"not a readable audio file ({_reason(exc)})") from None
    try:
        if not container.streams.audio:
            raise AudioDecodeError(name, "contains no audio stream")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 1
        resampler = av.AudioResampler(format="fltp", layout="stereo" if channels > 1 else "mono", rate=sample_rate)
        parts: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                frame.pts = None
                parts.extend(out.to_ndarray().astype(np.float32, copy=False) for out in resampler.resample(frame))
        except av.error.FFmpegError as exc:
            raise AudioDecodeError(name, f"decoding failed (corrupt or truncated: {_reason(exc)})") from None
        parts.extend(out.to_ndarray().astype(np.float32, copy=False) for out in resampler.resample(None))
    finally:
        container.close()
    if not parts:
        raise AudioDecodeError(name, "contains no decodable audio samples")
    return np.concatenate(parts, axis=1)
