"""Output formats render the documented shapes."""

from __future__ import annotations

import json

import pytest

from asr.formats import render

DATA = {
    "file": "call.wav", "duration": 4.0, "language": "en", "model": "whisper-tiny.en", "channels": 2,
    "text": "Hello. Hi there.",
    "segments": [
        {"start": 0.5, "end": 1.25, "speaker": "agent", "channel": 1, "text": "Hello.", "words": []},
        {"start": 3661.0, "end": 3662.5, "speaker": "caller", "channel": 0, "text": "Hi there.", "words": []},
    ],
}


def test_srt() -> None:
    out = render(DATA, "srt")
    assert out.startswith("1\n00:00:00,500 --> 00:00:01,250\n[agent] Hello.\n")
    assert "2\n01:01:01,000 --> 01:01:02,500\n[caller] Hi there." in out


def test_vtt_uses_voice_tags() -> None:
    out = render(DATA, "vtt")
    assert out.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.250\n<v agent>Hello.")


def test_txt_and_json() -> None:
    assert render(DATA, "txt").splitlines()[1] == "01:01:01.000 [caller] Hi there."
    assert json.loads(render(DATA, "json")) == DATA


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(DATA, "docx")
