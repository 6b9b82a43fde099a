"""Audio codec registry for RTP: PCMU/PCMA with g711.py, G.722 and Opus through PyAV when it has them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from telephony import g711
from telephony.errors import TelephonyError
from telephony.sdp import Codec


class CodecError(TelephonyError):
    """Unknown codec, codec unavailable in this build, or a payload it cannot decode."""


class AudioCodec(Protocol):
    """Encodes and decodes one 20 ms (or any ptime) mono frame at `sample_rate`."""

    name: str
    sample_rate: int
    clock_rate: int

    def encode(self, frame: np.ndarray) -> bytes:
        """Float32 (or int16) mono samples to one RTP payload."""
        ...

    def decode(self, payload: bytes) -> np.ndarray:
        """One RTP payload to float32 mono samples."""
        ...


class G711:
    """PCMU or PCMA: stateless, 8 kHz, one byte per sample, through lookup tables built from g711.py."""

    _tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # noqa: RUF012 - a process-wide cache

    def __init__(self, name: str) -> None:
        self.name = name.upper()
        self.sample_rate = self.clock_rate = 8000
        if self.name not in ("PCMU", "PCMA"):
            raise CodecError(f"G711 handles PCMU and PCMA, not {name!r}")
        if self.name not in self._tables:
            # Every int16 value through the bit-exact reference once: a frame is then one table lookup,
            # about ten times cheaper than the arithmetic, which matters with hundreds of legs per core.
            every = np.arange(65536, dtype=np.uint16).view(np.int16)
            enc = g711.linear_to_ulaw(every) if self.name == "PCMU" else g711.linear_to_alaw(every)
            codes = np.arange(256, dtype=np.uint8)
            lin = g711.ulaw_to_linear(codes) if self.name == "PCMU" else g711.alaw_to_linear(codes)
            self._tables[self.name] = (enc, lin.astype(np.float32) / 32768.0)
        self._enc, self._dec = self._tables[self.name]

    def encode(self, frame: np.ndarray) -> bytes:
        """Float32 (or int16) mono samples to G.711 bytes, bit-exact with g711.py."""
        pcm = np.asarray(frame)
        if pcm.dtype != np.int16:
            # Same clip-and-truncate as g711.py's conversion; scaling by 2**15 is exact in float32 too.
            pcm = (np.clip(pcm, -1.0, 32767 / 32768) * 32768).astype(np.int16)
        return self._enc[pcm.view(np.uint16)].tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        """G.711 bytes to float32."""
        return self._dec[np.frombuffer(payload, dtype=np.uint8)]


class AvCodec:
    """A PyAV (FFmpeg) encoder/decoder pair with its state kept across frames, as these codecs need."""

    def __init__(self, name: str, encoder: str, decoders: tuple[str, ...], sample_rate: int, clock_rate: int,
                 bit_rate: int | None = None) -> None:
        try:
            import av
        except ImportError as exc:  # pragma: no cover - av is a declared dependency
            raise CodecError(f"{name} needs PyAV (pip install av): {exc}") from None
        self._av: Any = av
        self.name = name
        self.sample_rate = sample_rate
        self.clock_rate = clock_rate
        try:
            self._enc: Any = self._av.CodecContext.create(encoder, "w")
            self._enc.sample_rate = sample_rate
            self._enc.format = "s16"
            self._enc.layout = "mono"
            if bit_rate:
                self._enc.bit_rate = bit_rate
            self._enc.open()
            self._dec = self._open_decoder(decoders)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"this PyAV/FFmpeg build cannot encode {name} ({encoder}): {exc}") from None
        self._pts = 0

    def _open_decoder(self, names: tuple[str, ...]) -> Any:
        for n in names:
            try:
                dec = self._av.CodecContext.create(n, "r")
            except Exception:  # this build lacks that name; try the next one
                continue
            dec.sample_rate = self.sample_rate
            dec.layout = "mono"
            return dec
        raise CodecError(f"this PyAV/FFmpeg build has no {self.name} decoder (tried {', '.join(names)})")

    def encode(self, frame: np.ndarray) -> bytes:
        """Float32 (or int16) mono samples to one payload."""
        pcm = np.asarray(frame)
        if pcm.dtype != np.int16:
            pcm = (np.clip(pcm.astype(np.float32), -1.0, 32767 / 32768) * 32768).astype(np.int16)
        av_frame = self._av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        av_frame.sample_rate = self.sample_rate
        av_frame.pts = self._pts
        self._pts += pcm.size
        try:
            packets = self._enc.encode(av_frame)
        except Exception as exc:
            raise CodecError(f"{self.name} encoder failed: {exc}") from None
        return b"".join(bytes(p) for p in packets)

    def decode(self, payload: bytes) -> np.ndarray:
        """One payload to float32 samples."""
        try:
            frames = self._dec.decode(self._av.Packet(payload))
        except Exception as exc:
            raise CodecError(f"cannot decode a {len(payload)}-byte {self.name} payload: {exc}") from None
        out = [_to_float(f.to_ndarray()) for f in frames]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _to_float(samples: np.ndarray) -> np.ndarray:
    mono = samples.reshape(samples.shape[0], -1)[0] if samples.ndim > 1 else samples
    if mono.dtype == np.int16:
        return mono.astype(np.float32) / 32768.0
    return mono.astype(np.float32)


_FACTORIES: dict[str, Callable[[], AudioCodec]] = {
    "pcmu": lambda: G711("PCMU"),
    "pcma": lambda: G711("PCMA"),
    # G.722 samples at 16 kHz but its RTP clock is 8000 (RFC 3551 section 4.5.2).
    "g722": lambda: AvCodec("G722", "g722", ("g722",), 16000, 8000, 64000),
    "opus": lambda: AvCodec("opus", "libopus", ("libopus", "opus"), 48000, 48000, 32000),
}


def available() -> list[str]:
    """Names of the codecs this build can create."""
    names = []
    for key, factory in _FACTORIES.items():
        try:
            factory()
        except CodecError:
            continue
        names.append(key)
    return names


def create(codec: Codec | str) -> AudioCodec:
    """A fresh encoder/decoder for a negotiated codec (or a codec name); CodecError if unknown or missing."""
    name = codec if isinstance(codec, str) else codec.name
    factory = _FACTORIES.get(name.lower())
    if factory is None:
        raise CodecError(f"unknown codec {name!r} (known: {', '.join(_FACTORIES)})")
    return factory()


def samples_per_frame(codec: AudioCodec, ptime_ms: int = 20) -> int:
    """Audio samples in one frame of `ptime_ms`."""
    return codec.sample_rate * ptime_ms // 1000


def timestamp_step(codec: AudioCodec, ptime_ms: int = 20) -> int:
    """RTP timestamp increment for one frame of `ptime_ms`."""
    return codec.clock_rate * ptime_ms // 1000
