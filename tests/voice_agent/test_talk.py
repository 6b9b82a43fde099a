"""`voice-agent talk` without PyAudio or without any audio device: one clear line, no traceback."""

from __future__ import annotations

import sys
import types

import pytest

from voice_agent.cli import main


def test_missing_pyaudio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # import fails as if the extra were not installed
    assert main(["talk"]) == 2
    err = capsys.readouterr().err
    assert "voice-agent[talk]" in err and "Traceback" not in err


def test_no_audio_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    terminated: list[bool] = []

    class NoDevices:
        def get_device_count(self) -> int:
            return 0

        def terminate(self) -> None:
            terminated.append(True)

    fake = types.ModuleType("pyaudio")
    fake.PyAudio = NoDevices  # type: ignore[attr-defined]
    fake.paInt16 = 8  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyaudio", fake)
    assert main(["talk"]) == 2
    err = capsys.readouterr().err
    assert "no audio device found" in err and "voice-agent call --caller" in err
    assert terminated == [True]
