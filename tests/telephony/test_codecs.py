"""Codec registry: G.711 through g711.py, G.722 and Opus through PyAV."""

from __future__ import annotations

import numpy as np
import pytest

from telephony import codecs, g711
from telephony.codecs import CodecError
from telephony.sdp import Codec


def sine(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def round_trip(codec: codecs.AudioCodec, audio: np.ndarray) -> np.ndarray:
    n = codecs.samples_per_frame(codec)
    return np.concatenate([codec.decode(codec.encode(audio[i : i + n])) for i in range(0, len(audio), n)])


def test_g711_matches_reference_module() -> None:
    audio = sine(8000, 0.1)
    pcmu, pcma = codecs.create("PCMU"), codecs.create(Codec("PCMA", 8, 8000))
    assert pcmu.encode(audio) == g711.encode_ulaw(audio)
    assert pcma.encode(audio) == g711.encode_alaw(audio)
    assert (pcmu.sample_rate, pcmu.clock_rate, codecs.samples_per_frame(pcmu)) == (8000, 8000, 160)
    assert len(pcma.encode(audio[:160])) == 160
    np.testing.assert_allclose(round_trip(pcma, audio), audio, atol=0.02)


@pytest.mark.parametrize(("name", "rate", "clock", "step"), [("G722", 16000, 8000, 160), ("opus", 48000, 48000, 960)])
def test_av_codecs_round_trip(name: str, rate: int, clock: int, step: int) -> None:
    if name.lower() not in codecs.available():
        pytest.skip(f"this PyAV build has no {name}")
    codec = codecs.create(name)
    assert (codec.sample_rate, codec.clock_rate, codecs.timestamp_step(codec)) == (rate, clock, step)
    audio = sine(rate, 0.5)
    payload = codec.encode(audio[: codecs.samples_per_frame(codec)])
    assert 0 < len(payload) < codecs.samples_per_frame(codec) * 2
    out = round_trip(codecs.create(name), audio)
    assert len(out) == len(audio)
    # Both codecs delay the signal a little; compare where they have settled, allowing for that delay.
    best = max(np.corrcoef(audio[2000 : 2000 + 2000], out[2000 + lag : 4000 + lag])[0, 1] for lag in range(0, 400))
    assert best > 0.95


def test_errors() -> None:
    with pytest.raises(CodecError, match="unknown codec 'AMR-WB'"):
        codecs.create("AMR-WB")
    with pytest.raises(CodecError):
        codecs.G711("G729")
    assert {"pcmu", "pcma"} <= set(codecs.available())
    if "opus" in codecs.available():
        with pytest.raises(CodecError, match="cannot decode"):
            codecs.create("opus").decode(b"\xff" * 3)
