"""G.711 against the reference coder: every 16-bit input, both laws."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from telephony.g711 import (
    alaw_to_linear,
    decode_alaw,
    decode_ulaw,
    encode_alaw,
    encode_ulaw,
    linear_to_alaw,
    linear_to_ulaw,
    ulaw_to_linear,
)

ALL = np.arange(-32768, 32768, dtype=np.int16)


@pytest.fixture(scope="module")
def audioop():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop as ref  # CPython's C port of the same Sun/ITU reference code

    return ref


def test_ulaw_matches_reference_for_every_sample(audioop) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(audioop.lin2ulaw(ALL.tobytes(), 2), dtype=np.uint8)
    assert np.array_equal(linear_to_ulaw(ALL), expected)
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(ulaw_to_linear(codes), np.frombuffer(audioop.ulaw2lin(codes.tobytes(), 2), "<i2"))


def test_alaw_matches_reference_for_every_sample(audioop) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(audioop.lin2alaw(ALL.tobytes(), 2), dtype=np.uint8)
    assert np.array_equal(linear_to_alaw(ALL), expected)
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(alaw_to_linear(codes), np.frombuffer(audioop.alaw2lin(codes.tobytes(), 2), "<i2"))


def test_table_points() -> None:
    # Values from the G.711 tables: silence codes and the extremes.
    assert linear_to_ulaw(np.array([0], np.int16))[0] == 0xFF
    assert linear_to_alaw(np.array([0], np.int16))[0] == 0xD5
    assert list(ulaw_to_linear(np.array([0x00, 0x80, 0xFF], np.uint8))) == [-32124, 32124, 0]
    assert list(alaw_to_linear(np.array([0x2A, 0xAA, 0xD5], np.uint8))) == [-32256, 32256, 8]


def test_float_round_trip_is_close() -> None:
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for enc, dec in ((encode_ulaw, decode_ulaw), (encode_alaw, decode_alaw)):
        payload = enc(tone)
        assert len(payload) == 8000
        back = dec(payload)
        snr = 10 * np.log10(np.sum(tone**2) / np.sum((tone - back) ** 2))
        assert snr > 30
