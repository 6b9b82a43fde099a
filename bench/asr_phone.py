"""Caller WER on an 8 kHz mu-law phone line: KB hotwords on/off, Whisper tiny.en vs base finals.

The caller questions below are written in caller phrasing for the example KB (never its own
`question`/`also` text), spoken by espeak-ng voices unlike the project's own (its fixtures use
en-us and en-gb), sent through sox as 8 kHz G.711 mu-law and decoded back to 16 kHz, then
recognised the way a live call's final is (``UtteranceRecognizer.recognize_final``, beam 1,
the KB topic prompt the engine always sets, with or without the KB hotwords).

    .venv/bin/python bench/asr_phone.py [--repeats 3] [--kb examples/kb] [--voices en-029,...]

Prints one row per configuration: WER over all utterances (deterministic decoding, so the same
every run) and the median over repeats of the mean decode time per utterance.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from asr.audio import load_audio  # noqa: E402
from asr.hints import MAX_HOTWORD_CHARS, hotwords_from_vocabulary  # noqa: E402
from asr.metrics import normalize, wer  # noqa: E402
from asr.streaming import UtteranceRecognizer  # noqa: E402
from audio_fixtures.make_fixtures import speak, to_telephone, write_wav  # noqa: E402

# Caller turns for the example telecom KB, phrased the way people talk on the phone.
TELECOM_TURNS = [
    "Hi, my broadband's been dead since last night, is there some kind of outage round here?",
    "What's the monthly charge for the Fiber 500 package?",
    "The little light on my router has gone red, what does that mean?",
    "I'm moving flat next month, can you shift my connection over?",
    "Can I get a technician out on Thursday morning?",
    "Why did my bill go up this month?",
    "How do I pay with direct debit?",
    "I forgot the Wi-Fi password, how do I reset it?",
    "When do your phone lines open on a Saturday?",
    "How long until I see the refund on my card?",
]
# Voices unlike the project's own caller (en-us) and agent (en-gb).
VOICES = ["en-029", "en-gb-scotland", "en-gb-x-gbcwmd", "en-us+f3"]


def kb_vocabulary(kb_dir: Path, cache: Path, max_chars: int = MAX_HOTWORD_CHARS) -> tuple[str, str]:
    """(the topic prompt the engine sets, the KB hotwords) for a KB folder, through the real KB class."""
    from dialog.embeddings import shared_embedder
    from dialog.kb import KnowledgeBase
    from voice_agent.engine import asr_prompt

    kb = KnowledgeBase(kb_dir, shared_embedder(), cache)
    kb.ensure_loaded()
    return asr_prompt("", [p.topic for p in kb.passages]), hotwords_from_vocabulary(kb.vocabulary(), max_chars)


def phone_line(text: str, voice: str, tmp: Path, index: int) -> np.ndarray:
    """The turn spoken by ``voice``, through an 8 kHz mu-law line, back at 16 kHz float32."""
    wide = tmp / f"u{index}.wav"
    narrow = tmp / f"u{index}_ulaw8k.wav"
    write_wav(wide, speak(text, voice=voice, speed=150, pitch=50))
    to_telephone(wide, narrow, "u-law")
    return np.asarray(load_audio(narrow, 16000)[0], dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kb", type=Path, default=ROOT / "examples" / "kb")
    ap.add_argument("--voices", default=",".join(VOICES))
    ap.add_argument("--models", default="whisper-tiny.en,whisper-base")
    ap.add_argument("--hotword-chars", type=int, default=MAX_HOTWORD_CHARS, help="cap on the hotword string")
    args = ap.parse_args(argv)
    voices = [v for v in args.voices.split(",") if v]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        prompt, hotwords = kb_vocabulary(args.kb, tmp / "cache", args.hotword_chars)
        print(f"prompt:   {prompt}")
        print(f"hotwords: {hotwords}")
        clips: list[tuple[str, str, np.ndarray]] = []
        for v in voices:
            for text in TELECOM_TURNS:
                clips.append((text, v, phone_line(text, v, tmp, len(clips))))
        print(f"{len(clips)} utterances ({len(TELECOM_TURNS)} turns x {len(voices)} voices), 8 kHz mu-law")
        rows = []
        for final in args.models.split(","):
            rec = UtteranceRecognizer("whisper-tiny.en", final_model=final, cpu_threads=2, num_workers=1)
            rec.prompt = prompt
            for use_hotwords in (False, True):
                rec.hotwords = hotwords if use_hotwords else None
                times: list[float] = []
                words = errors = 0.0
                per_voice: dict[str, list[float]] = {v: [0.0, 0.0] for v in voices}
                for r in range(args.repeats):
                    t0 = time.perf_counter()
                    for text, v, audio in clips:
                        hyp = rec.recognize_final(audio, 1).text
                        if r == 0:
                            n = len(normalize(text))
                            e = wer(text, hyp) * n
                            words += n
                            errors += e
                            per_voice[v][0] += e
                            per_voice[v][1] += n
                    times.append((time.perf_counter() - t0) / len(clips))
                voice_wer = " ".join(f"{v}={100 * e / n:.0f}%" for v, (e, n) in per_voice.items())
                rows.append((final, "on" if use_hotwords else "off", 100 * errors / words,
                             1000 * statistics.median(times), voice_wer))
            del rec
    print()
    print(f"| final model | KB hotwords | caller WER | decode ms/utt (median of {args.repeats}) | WER per voice |")
    print("|---|---|---|---|---|")
    for final, hot, w, ms, pv in rows:
        print(f"| {final} | {hot} | {w:.1f}% | {ms:.0f} | {pv} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
