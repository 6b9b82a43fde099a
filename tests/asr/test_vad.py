"""VAD: no speech in silence, noise or music; speech where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asr.audio import load_audio
from asr.errors import AsrError
from asr.vad import SileroVad, WebrtcVad, make_detector

Gen = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def silero() -> SileroVad:
    return SileroVad()


@pytest.mark.parametrize("name", ["silence.wav", "white_noise.wav", "hold_music.wav"])
def test_silero_finds_no_speech(generated: Gen, silero: SileroVad, name: str) -> None:
    assert silero.regions(load_audio(generated[0] / name)[0]) == []


@pytest.mark.parametrize("detector", ["silero", "webrtc"])
def test_regions_cover_known_spans(generated: Gen, detector: str) -> None:
    vad = make_detector(detector)
    spans = generated[1]["files"]["gaps.wav"]["spans"]
    regions = vad.regions(load_audio(generated[0] / "gaps.wav")[0])
    assert len(regions) == len(spans)
    for r, (a, b) in zip(regions, spans, strict=True):
        assert abs(r.start / 16000 - a) < 0.35 and abs(r.end / 16000 - b) < 0.5


def test_webrtc_silence(generated: Gen) -> None:
    assert WebrtcVad().regions(load_audio(generated[0] / "silence.wav")[0]) == []


def test_unknown_vad() -> None:
    with pytest.raises(AsrError, match="silero or webrtc"):
        make_detector("magic")
