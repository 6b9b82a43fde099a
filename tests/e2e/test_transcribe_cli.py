"""`voice-agent transcribe` as a user runs it: a subprocess on real files, the store read back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from asr.metrics import wer

Gen = tuple[Path, dict[str, Any]]
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VOICE_AGENT_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "voice_agent", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)


def test_directory_with_bad_files(generated: Gen, shared_fixtures: Path, tmp_path: Path) -> None:
    folder = generated[0]
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    for name in ("stereo_call_ulaw8k.wav", "utt_bill.mp3", "corrupt.wav", "empty.wav", "silence.wav"):
        shutil.copy(folder / name, inputs / name)
    shutil.copy(shared_fixtures / "jfk.flac", inputs / "nested" / "jfk.flac")
    out = tmp_path / "out"
    home = tmp_path / "home"
    proc = cli("transcribe", str(inputs), "--output", str(out), "--format", "json,srt",
               "--format", "vtt", "--jobs", "2", home=home)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert "corrupt.wav: not a readable audio file" in err
    assert "empty.wav: file is empty" in err
    assert "4 transcribed, 2 failed" in err
    assert "Traceback" not in err
    assert "files 6/6" in err and "realtime" in err  # the progress bar

    call = json.loads((out / "stereo_call_ulaw8k.json").read_text())
    assert set(call) >= {"file", "duration", "language", "model", "text", "segments", "call_id"}
    seg = call["segments"][0]
    assert set(seg) >= {"start", "end", "speaker", "channel", "text", "avg_logprob", "no_speech_prob", "words"}
    assert set(seg["words"][0]) == {"start", "end", "word", "probability"}
    assert {s["speaker"] for s in call["segments"]} == {"caller", "agent"}
    assert (out / "stereo_call_ulaw8k.srt").read_text().startswith("1\n00:00:")
    assert (out / "jfk.vtt").read_text().startswith("WEBVTT")
    assert json.loads((out / "silence.json").read_text())["segments"] == []
    assert not (out / "corrupt.json").exists()

    listing = cli("calls", "list", home=home)
    assert listing.returncode == 0
    assert listing.stdout.count("transcription") == 4
    shown = cli("calls", "show", call["call_id"][:8], "--format", "json", home=home)
    stored = json.loads(shown.stdout)
    assert stored["segments"] == call["segments"]
    txt = cli("calls", "show", call["call_id"], "--format", "txt", home=home).stdout
    assert "[agent]" in txt and "[caller]" in txt


def test_single_file_to_stdout(shared_fixtures: Path, tmp_path: Path) -> None:
    proc = cli("transcribe", str(shared_fixtures / "jfk.flac"), "--format", "txt", "--quiet",
               "--no-store", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert wer("And so my fellow Americans, ask not what your country can do for you, ask what "
               "you can do for your country.", " ".join(line[13:] for line in proc.stdout.splitlines())) < 0.1


def test_missing_model_is_one_clear_line(shared_fixtures: Path, tmp_path: Path) -> None:
    proc = cli("transcribe", str(shared_fixtures / "jfk.flac"), "--model", "large-v3", home=tmp_path)
    assert proc.returncode == 2
    assert "model 'large-v3' is not on this machine" in proc.stderr
    assert "whisper-tiny.en" in proc.stderr and "Traceback" not in proc.stderr


def test_python_module_and_models_command(tmp_path: Path) -> None:
    proc = cli("models", home=tmp_path)
    assert proc.returncode == 0 and "whisper-base" in proc.stdout
    exe = ROOT / ".venv" / "bin" / "voice-agent"
    assert exe.exists(), "the console script is installed into .venv by scripts/bootstrap.sh"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert version.stdout.startswith("voice-agent")
