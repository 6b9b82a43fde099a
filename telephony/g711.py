"""G.711 mu-law and A-law in numpy, bit-exact with the ITU-T G.711 reference (G.191 g711.c)."""

from __future__ import annotations

import numpy as np

# Segment end points of the reference coder (g711.c: seg_uend, seg_aend).
_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _to_pcm16(audio: np.ndarray) -> np.ndarray:
    if audio.dtype == np.int16:
        return audio.astype(np.int32)
    return (np.clip(np.asarray(audio, dtype=np.float64), -1.0, 32767 / 32768) * 32768).astype(np.int32)


def _segment(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return np.searchsorted(ends, values, side="left").astype(np.int32)


def linear_to_ulaw(pcm: np.ndarray) -> np.ndarray:
    """16-bit linear PCM (int16, or float in [-1, 1)) to mu-law bytes."""
    x = _to_pcm16(pcm) >> 2  # 14-bit magnitude domain of the reference coder
    mask = np.where(x < 0, 0x7F, 0xFF).astype(np.int32)
    x = np.where(x < 0, -x, x)
    x = np.minimum(x, 8159) + 33  # clip and add the bias
    seg = _segment(x, _SEG_UEND)
    out = np.where(seg >= 8, 0x7F, (seg << 4) | ((x >> (seg + 1)) & 0xF))
    return (out ^ mask).astype(np.uint8)


def ulaw_to_linear(codes: np.ndarray) -> np.ndarray:
    """Mu-law bytes to 16-bit linear PCM (int16)."""
    u = (~np.asarray(codes, dtype=np.int32)) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def linear_to_alaw(pcm: np.ndarray) -> np.ndarray:
    """16-bit linear PCM (int16, or float in [-1, 1)) to A-law bytes."""
    x = _to_pcm16(pcm) >> 3  # 13-bit domain of the reference coder
    mask = np.where(x >= 0, 0xD5, 0x55).astype(np.int32)
    x = np.where(x >= 0, x, -x - 1)
    seg = _segment(x, _SEG_AEND)
    aval = np.where(seg >= 8, 0x7F,
                    (seg << 4) | np.where(seg < 2, (x >> 1) & 0xF, (x >> seg) & 0xF))
    return (aval ^ mask).astype(np.uint8)


def alaw_to_linear(codes: np.ndarray) -> np.ndarray:
    """A-law bytes to 16-bit linear PCM (int16)."""
    a = np.asarray(codes, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def encode_ulaw(audio: np.ndarray) -> bytes:
    """Float or int16 audio to a mu-law payload."""
    return linear_to_ulaw(audio).tobytes()


def decode_ulaw(payload: bytes | np.ndarray) -> np.ndarray:
    """A mu-law payload to float32 in [-1, 1)."""
    codes = np.frombuffer(payload, dtype=np.uint8) if isinstance(payload, bytes | bytearray) else payload
    return ulaw_to_linear(codes).astype(np.float32) / 32768.0


def encode_alaw(audio: np.ndarray) -> bytes:
    """Float or int16 audio to an A-law payload."""
    return linear_to_alaw(audio).tobytes()


def decode_alaw(payload: bytes | np.ndarray) -> np.ndarray:
    """An A-law payload to float32 in [-1, 1)."""
    codes = np.frombuffer(payload, dtype=np.uint8) if isinstance(payload, bytes | bytearray) else payload
    return alaw_to_linear(codes).astype(np.float32) / 32768.0
