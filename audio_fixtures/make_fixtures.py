"""Generate the project's own test audio with espeak-ng and sox.

Run ``python audio_fixtures/make_fixtures.py [--out DIR]``; tests call
``ensure_fixtures()``. Output is deterministic for a given espeak-ng version and
is written to ``audio_fixtures/generated/`` (git-ignored). ``manifest.json``
lists every file with its reference text and, where known, the exact spans of
speech in seconds, so tests can check words and timestamps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "generated"
VERSION = "5"  # bump when the generated set changes so stale caches are rebuilt

# Call-centre phrases a caller and an agent would say.
UTTERANCES: list[tuple[str, str]] = [
    ("utt_outage", "My internet has been down since this morning and I work from home."),
    ("utt_bill", "Why is my bill higher this month than it was last month?"),
    ("utt_move", "I am moving to a new apartment next week and need my service moved."),
    ("utt_technician", "Can you send a technician on Thursday afternoon?"),
    ("utt_cancel", "I would like to cancel my phone line please."),
    ("utt_refund", "When will I get the refund for the days without service?"),
]

AGENT_LINES = [
    "Thank you for calling. How can I help you today?",
    "I am sorry to hear that. Let me check the network status in your area.",
    "There is a known outage and engineers expect to fix it by six this evening.",
]
CALLER_LINES = [
    "Hello, my internet stopped working this morning.",
    "I live on Main Street near the station.",
    "Thank you, that is good to know.",
]

# A caller for whole simulated calls: questions the example knowledge base answers, an
# angry turn, then a request for a human. Long gaps leave room for the agent's answers.
CALLER_TURNS: list[tuple[str, float]] = [
    ("Hi. What are your opening hours on Saturday?", 13.0),
    ("How much does it cost to move my service to a new address?", 14.0),
    ("This is ridiculous! My internet has been down for three days and nobody has fixed it!", 12.0),
    ("I want to speak to a human agent please.", 8.0),
]
BARGE_IN_TURNS = [
    "Can you tell me about your refund policy?",
    "Sorry to interrupt, I only need to know how long a refund takes.",
]

SR = 16000


class FixtureError(RuntimeError):
    """A tool needed to make fixtures is missing or failed."""


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise FixtureError(
            f"{tool} is not installed; run scripts/apt-deps.sh (apt-get install espeak-ng sox)"
        )
    return path


def _run(cmd: list[str]) -> None:
    if cmd[0] == "sox":
        # repeatable mode: sox dithers with a random seed otherwise, so every clone got different fixtures
        # (and a phone-line WER that moved across a test threshold)
        cmd = [cmd[0], "-R", *cmd[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FixtureError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def speak(text: str, voice: str = "en-us", speed: int = 140, pitch: int = 50) -> np.ndarray:
    """espeak-ng speech as float32 mono at 16 kHz, with leading/trailing silence trimmed."""
    _need("espeak-ng")
    _need("sox")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        out = Path(tmp) / "out.wav"
        _run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text])
        _run(["sox", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out)])
        audio = read_wav(out)
    return trim(audio)


def trim(audio: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Cut leading and trailing near-silence."""
    idx = np.flatnonzero(np.abs(audio) > threshold)
    if idx.size == 0:
        return audio[:0]
    return audio[idx[0] : idx[-1] + 1]


def read_wav(path: Path) -> np.ndarray:
    """Read a 16-bit PCM WAV as float32 (mono or the first channel)."""
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        ch = w.getnchannels()
    return (data.reshape(-1, ch)[:, 0].astype(np.float32) / 32768.0).copy()


def write_wav(path: Path, audio: np.ndarray, rate: int = SR) -> None:
    """Write float32 audio (samples, or samples x channels) as 16-bit PCM WAV."""
    pcm = np.clip(np.asarray(audio), -1.0, 1.0)
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((pcm * 32767).astype("<i2").tobytes())


def to_telephone(src: Path, dst: Path, encoding: str = "u-law") -> None:
    """Convert a WAV to 8 kHz G.711 (u-law or a-law) WAV with sox."""
    _run(["sox", str(src), "-r", "8000", "-c", "1", "-e", encoding, "-b", "8", str(dst)])


def encode_with_av(src_audio: np.ndarray, dst: Path, codec: str, rate: int = SR) -> None:
    """Encode mono float32 audio into a compressed container (mp3, ogg/opus, m4a)."""
    import av

    out_rate = 48000 if codec == "libopus" else rate
    audio = src_audio
    if out_rate != rate:
        from scipy.signal import resample_poly

        audio = resample_poly(src_audio, out_rate // 1000, rate // 1000).astype(np.float32)
    with av.open(str(dst), "w") as container:
        stream = container.add_stream(codec, rate=out_rate)
        stream.layout = "mono"  # type: ignore[union-attr]
        frame_size = 960 if codec == "libopus" else 1152
        for i in range(0, len(audio), frame_size):
            chunk = audio[i : i + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[np.newaxis, :].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate = out_rate
            for packet in stream.encode(frame):  # type: ignore[union-attr]
                container.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            container.mux(packet)


def _place(parts: list[tuple[float, np.ndarray]], total: float) -> np.ndarray:
    out = np.zeros(int(total * SR), dtype=np.float32)
    for start, audio in parts:
        i = int(start * SR)
        out[i : i + len(audio)] += audio
    return out


def build(out: Path) -> dict[str, Any]:
    """Make every fixture into ``out`` and return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"version": VERSION, "files": {}}
    files = manifest["files"]
    rng = np.random.default_rng(1234)

    # Short single utterances, plus 8 kHz mu-law and a-law phone versions.
    for name, text in UTTERANCES:
        audio = np.concatenate([np.zeros(SR // 4, np.float32), speak(text) * 0.8, np.zeros(SR // 4, np.float32)])
        write_wav(out / f"{name}.wav", audio)
        files[f"{name}.wav"] = {"text": text, "kind": "utterance"}
        to_telephone(out / f"{name}.wav", out / f"{name}_ulaw8k.wav", "u-law")
        files[f"{name}_ulaw8k.wav"] = {"text": text, "kind": "utterance-phone"}
    to_telephone(out / "utt_bill.wav", out / "utt_bill_alaw8k.wav", "a-law")
    files["utt_bill_alaw8k.wav"] = {"text": UTTERANCES[1][1], "kind": "utterance-phone"}

    # Compressed formats of one utterance.
    bill = speak(UTTERANCES[1][1]) * 0.8
    for ext, codec in (("mp3", "libmp3lame"), ("ogg", "libopus"), ("m4a", "aac")):
        encode_with_av(bill, out / f"utt_bill.{ext}", codec)
        files[f"utt_bill.{ext}"] = {"text": UTTERANCES[1][1], "kind": "utterance-format"}
    _run(["sox", str(out / "utt_bill.wav"), "-b", "24", str(out / "utt_bill_24bit.flac")])
    files["utt_bill_24bit.flac"] = {"text": UTTERANCES[1][1], "kind": "utterance-format"}
    _run(["sox", str(out / "utt_bill.wav"), "-r", "44100", "-e", "floating-point", "-b", "32",
          str(out / "utt_bill_float44k.wav")])
    files["utt_bill_float44k.wav"] = {"text": UTTERANCES[1][1], "kind": "utterance-format"}

    # Known gaps: speech at exact offsets, for timestamp checks.
    gap_parts: list[tuple[float, np.ndarray]] = []
    spans = []
    t = 1.0
    texts = []
    for (_, text), gap in zip(UTTERANCES[:4], (2.0, 3.5, 1.5, 2.5), strict=True):
        audio = speak(text) * 0.8
        gap_parts.append((t, audio))
        spans.append([round(t, 3), round(t + len(audio) / SR, 3)])
        texts.append(text)
        t += len(audio) / SR + gap
    write_wav(out / "gaps.wav", _place(gap_parts, t))
    files["gaps.wav"] = {"text": " ".join(texts), "kind": "gaps", "spans": spans}

    # A stereo call: caller on the left, agent on the right, taking turns.
    left: list[tuple[float, np.ndarray]] = []
    right: list[tuple[float, np.ndarray]] = []
    turns = []
    t = 0.5
    for agent, caller in zip(AGENT_LINES, CALLER_LINES, strict=True):
        a = speak(agent, voice="en-gb", speed=140, pitch=40) * 0.7
        right.append((t, a))
        turns.append({"speaker": "agent", "channel": 1, "start": round(t, 3), "text": agent})
        t += len(a) / SR + 0.8
        c = speak(caller, voice="en-us", speed=140, pitch=60) * 0.7
        left.append((t, c))
        turns.append({"speaker": "caller", "channel": 0, "start": round(t, 3), "text": caller})
        t += len(c) / SR + 0.8
    stereo = np.stack([_place(left, t), _place(right, t)], axis=1)
    write_wav(out / "stereo_call.wav", stereo)
    files["stereo_call.wav"] = {"kind": "stereo", "turns": turns,
                                "text": " ".join(x["text"] for x in turns)}
    with tempfile.TemporaryDirectory() as tmp:
        # A phone-line stereo recording: 8 kHz mu-law, two channels.
        _run(["sox", str(out / "stereo_call.wav"), "-r", "8000", "-e", "u-law", "-b", "8",
              str(Path(tmp) / "s.wav")])
        shutil.copy(Path(tmp) / "s.wav", out / "stereo_call_ulaw8k.wav")
    files["stereo_call_ulaw8k.wav"] = dict(files["stereo_call.wav"])

    # Whole simulated calls: a multi-turn caller (a voice unlike the agent's), a caller who
    # talks over the agent, and callers who say nothing.
    parts = []
    t = 5.0  # after the greeting
    turn_meta = []
    for text, gap in CALLER_TURNS:
        a = speak(text, voice="en-us+m3", speed=140, pitch=35) * 0.8
        parts.append((t, a))
        turn_meta.append({"start": round(t, 3), "end": round(t + len(a) / SR, 3), "text": text})
        t += len(a) / SR + gap
    write_wav(out / "caller_multiturn.wav", _place(parts, t))
    files["caller_multiturn.wav"] = {"kind": "caller", "turns": turn_meta,
                                     "text": " ".join(x for x, _ in CALLER_TURNS)}
    to_telephone(out / "caller_multiturn.wav", out / "caller_multiturn_ulaw8k.wav", "u-law")
    files["caller_multiturn_ulaw8k.wav"] = dict(files["caller_multiturn.wav"])
    q = speak(BARGE_IN_TURNS[0], voice="en-us+m3", speed=140, pitch=35) * 0.8
    cut = speak(BARGE_IN_TURNS[1], voice="en-us+m3", speed=150, pitch=35) * 0.8
    # The interruption comes 2.5 s after the question ends: the agent is mid-answer by then.
    interrupt_at = 5.0 + len(q) / SR + 2.5
    write_wav(out / "caller_bargein.wav", _place([(5.0, q), (interrupt_at, cut)], interrupt_at + len(cut) / SR + 10))
    files["caller_bargein.wav"] = {"kind": "caller-bargein", "interrupt_at": round(interrupt_at, 3),
                                   "text": " ".join(BARGE_IN_TURNS)}
    write_wav(out / "caller_silent.wav", np.zeros(SR * 40, np.float32))
    files["caller_silent.wav"] = {"kind": "caller-silent", "text": ""}
    write_wav(out / "caller_noise.wav", (rng.standard_normal(SR * 40) * 0.05).astype(np.float32))
    files["caller_noise.wav"] = {"kind": "caller-silent", "text": ""}

    # Things that must give zero segments.
    write_wav(out / "silence.wav", np.zeros(SR * 10, np.float32))
    files["silence.wav"] = {"text": "", "kind": "no-speech"}
    write_wav(out / "white_noise.wav", (rng.standard_normal(SR * 10) * 0.1).astype(np.float32))
    files["white_noise.wav"] = {"text": "", "kind": "no-speech"}
    # Music on hold: a looping synthesised melody.
    notes = [261.6, 329.6, 392.0, 523.3, 392.0, 329.6]
    tt = np.arange(int(SR * 0.4)) / SR
    env = np.minimum(1.0, np.minimum(tt / 0.02, (0.4 - tt) / 0.1))
    bar = np.concatenate([(0.25 * np.sin(2 * np.pi * f * tt) + 0.1 * np.sin(4 * np.pi * f * tt)) * env
                          for f in notes]).astype(np.float32)
    write_wav(out / "hold_music.wav", np.tile(bar, 5))
    files["hold_music.wav"] = {"text": "", "kind": "no-speech"}

    # Broken inputs.
    (out / "empty.wav").write_bytes(b"")
    files["empty.wav"] = {"kind": "bad"}
    (out / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + rng.bytes(4000))
    files["corrupt.wav"] = {"kind": "bad"}
    (out / "not_audio.mp3").write_text("this is a text file, not audio\n" * 50)
    files["not_audio.mp3"] = {"kind": "bad"}
    flac = (out / "utt_bill_24bit.flac").read_bytes()
    (out / "truncated.flac").write_bytes(flac[: len(flac) // 3])
    files["truncated.flac"] = {"kind": "truncated", "text": UTTERANCES[1][1]}

    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _source_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def ensure_fixtures(out: Path = DEFAULT_OUT) -> dict[str, Any]:
    """Build the fixtures if missing or stale; return the manifest."""
    stamp = out / ".stamp"
    if stamp.exists() and stamp.read_text() == _source_digest() and (out / "manifest.json").exists():
        return dict(json.loads((out / "manifest.json").read_text()))
    if out.exists():
        shutil.rmtree(out)
    manifest = build(out)
    stamp.write_text(_source_digest())
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        manifest = ensure_fixtures(args.out)
    except FixtureError as exc:
        print(f"make_fixtures: {exc}", file=sys.stderr)
        return 1
    print(f"{len(manifest['files'])} fixtures in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
