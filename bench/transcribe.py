"""Benchmark offline transcription against plain faster-whisper and its batched pipeline.

Same model (Whisper tiny.en, CTranslate2 int8), same process, repeats alternated;
prints medians, x-realtime, wall-time ratios and WER. Inputs: (a) short
utterances, (b) a 3+ minute call-like file assembled from the fixtures with
pauses, as mono for all three and as a stereo call (caller left, agent right)
for ours, which is the only one that labels speakers.

    .venv/bin/python bench/transcribe.py [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asr import Transcriber  # noqa: E402
from asr.audio import load_audio  # noqa: E402
from asr.metrics import wer  # noqa: E402
from audio_fixtures.make_fixtures import ensure_fixtures, write_wav  # noqa: E402
from bench.machine import steal_percent  # noqa: E402

SHARED = ROOT.parent / "shared" / "fixtures"
JFK = ("And so my fellow Americans, ask not what your country can do for you, "
       "ask what you can do for your country.")
LEFT = "He began a confused complaint against the wizard, who had vanished behind the curtain on the left."
RIGHT = "The horizon seems extremely distant."


def build_long_call(out: Path) -> tuple[Path, Path, str, list[tuple[float, float, int]]]:
    """A ~3.5 minute call from real and generated speech with pauses: mono and stereo files."""
    folder = ensure_fixtures()
    gen_dir = ROOT / "audio_fixtures" / "generated"
    pieces: list[tuple[np.ndarray, str]] = []
    if SHARED.is_dir():
        pieces.append((load_audio(SHARED / "jfk.flac").mean(axis=0), JFK))
        stereo = load_audio(SHARED / "stereo_diarization.wav")
        pieces.append((stereo[0], LEFT))
        pieces.append((stereo[1], RIGHT))
    for name, info in folder["files"].items():
        if info["kind"] == "utterance":
            pieces.append((load_audio(gen_dir / name)[0], info["text"]))
    for name in ("stereo_call.wav",):
        s = load_audio(gen_dir / name)
        for turn in folder["files"][name]["turns"]:
            pieces.append((s[turn["channel"], int(turn["start"] * 16000): int(turn["start"] * 16000) + 16000 * 5],
                           ""))
    rng = np.random.default_rng(7)
    mono: list[np.ndarray] = []
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    refs: list[str] = []
    truth: list[tuple[float, float, int]] = []
    t = 0.0
    speech = [p for p in pieces if p[1]]
    order = speech * 4
    for i, (audio, text) in enumerate(order):
        pause = np.zeros(int(16000 * rng.uniform(1.0, 4.0)), np.float32)
        channel = i % 2
        for track, on in ((left, channel == 0), (right, channel == 1)):
            track.append(pause)
            track.append(audio if on else np.zeros_like(audio))
        mono.extend([pause, audio])
        t += len(pause) / 16000
        truth.append((t, t + len(audio) / 16000, channel))
        t += len(audio) / 16000
        refs.append(text)
    mono_path, stereo_path = out / "long_call_mono.wav", out / "long_call_stereo.wav"
    write_wav(mono_path, np.concatenate(mono))
    write_wav(stereo_path, np.stack([np.concatenate(left), np.concatenate(right)], axis=1))
    return mono_path, stereo_path, " ".join(refs), truth


def timed(fn: Callable[[], str], repeats: int) -> tuple[float, str]:
    times, text = [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        text = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from faster_whisper import BatchedInferencePipeline

    compute = "float16" if args.device == "cuda" else "int8"
    ours = Transcriber("whisper-tiny.en", device=args.device, compute_type=compute)
    model = ours.backend.model  # type: ignore[attr-defined]  # the same loaded weights for all three
    batched = BatchedInferencePipeline(model)

    def plain(path: Path) -> str:
        segs, _ = model.transcribe(str(path), beam_size=5, language="en", vad_filter=False)
        return " ".join(s.text.strip() for s in segs)

    def batch(path: Path) -> str:
        segs, _ = batched.transcribe(str(path), beam_size=5, batch_size=8, language="en")
        return " ".join(s.text.strip() for s in segs)

    def batch_words(path: Path) -> str:
        segs, _ = batched.transcribe(str(path), beam_size=5, batch_size=8, language="en", word_timestamps=True)
        return " ".join(s.text.strip() for s in segs)

    def our(path: Path) -> str:
        return ours.transcribe(path, beam_size=5).text

    with tempfile.TemporaryDirectory() as tmp:
        mono, stereo, long_ref, truth = build_long_call(Path(tmp))
        manifest = ensure_fixtures()
        gen_dir = ROOT / "audio_fixtures" / "generated"
        shorts = [(gen_dir / n, i["text"]) for n, i in manifest["files"].items() if i["kind"] == "utterance"]
        if SHARED.is_dir():
            shorts.append((SHARED / "jfk.flac", JFK))
        short_audio = sum(load_audio(p).shape[1] for p, _ in shorts) / 16000
        long_audio = load_audio(mono).shape[1] / 16000

        def over_shorts(fn: Callable[[Path], str]) -> Callable[[], str]:
            return lambda: " ".join(fn(p) for p, _ in shorts)

        short_ref = " ".join(r for _, r in shorts)
        contenders: list[tuple[str, str, Callable[[], str], float, str]] = [
            ("plain transcribe (beam 5, no VAD)", "a) short", over_shorts(plain), short_audio, short_ref),
            ("BatchedInferencePipeline (batch 8)", "a) short", over_shorts(batch), short_audio, short_ref),
            ("voice-agent transcribe", "a) short", over_shorts(our), short_audio, short_ref),
            ("plain transcribe (beam 5, no VAD)", "b) long mono", lambda: plain(mono), long_audio, long_ref),
            ("BatchedInferencePipeline (batch 8)", "b) long mono", lambda: batch(mono), long_audio, long_ref),
            ("voice-agent transcribe", "b) long mono", lambda: our(mono), long_audio, long_ref),
            ("BatchedInferencePipeline + word timestamps", "b) long mono", lambda: batch_words(mono), long_audio,
             long_ref),
            ("voice-agent transcribe", "b) long stereo", lambda: our(stereo), long_audio, long_ref),
        ]
        for _, _, fn, _, _ in contenders[:3]:
            fn()  # warm-up: first-call allocations stay out of the medians
        results = []
        steal0 = steal_percent()
        for name, inp, fn, audio_s, ref in contenders:
            median, text = timed(fn, args.repeats)
            results.append((name, inp, median, audio_s, wer(ref, text)))
        steal1 = steal_percent()

        # Speaker labels on the stereo call: each segment's speaker against the channel truth.
        t = ours.transcribe(stereo)
        right = 0
        for seg in t.segments:
            mid = (seg.start + seg.end) / 2
            truth_ch = next((c for a, b, c in truth if a - 0.5 <= mid <= b + 0.5), -1)
            right += int(truth_ch == seg.channel)
        speaker_acc = right / max(1, len(t.segments))

    base = {inp: m for name, inp, m, _, _ in results if name == "BatchedInferencePipeline (batch 8)"}
    plain_t = {inp: m for name, inp, m, _, _ in results if name.startswith("plain")}
    print(f"device={args.device} compute={compute} repeats={args.repeats} "
          f"short audio={short_audio:.1f}s long audio={long_audio:.1f}s cpu steal since boot "
          f"{steal0:.1f}%->{steal1:.1f}%")
    print("| contender | input | wall s (median) | x-realtime | vs batched | vs plain | WER |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, inp, median, audio_s, err in results:
        key = inp if inp in base else "b) long mono"
        print(f"| {name} | {inp} | {median:.2f} | {audio_s / median:.1f}x | "
              f"{base[key] / median:.2f}x | {plain_t[key] / median:.2f}x | {err * 100:.1f}% |")
    print(f"\nvoice-agent speaker labels on the stereo call: {speaker_acc * 100:.1f}% of segments on the "
          "right channel (plain and batched give no speakers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
