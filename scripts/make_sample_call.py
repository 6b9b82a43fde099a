"""Make audio_fixtures/samples/support_call_ulaw8k.wav, the quickstart's sample call, from the script below.

A stereo phone-line recording (8 kHz G.711 mu-law; caller on the left channel, agent on the right)
of a short support call: an outage, a frustrated caller, a refund with a card number read out
(which the quickstart's `transcribe --analyze` must redact), and a resolution. espeak-ng speaks
both sides; sox makes the phone line. Deterministic: the same file on every machine with the same
espeak-ng.

    .venv/bin/python scripts/make_sample_call.py [--out audio_fixtures/samples/support_call_ulaw8k.wav]

`SCRIPT` is the reference transcript the quickstart's e2e test checks the output against.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audio_fixtures.make_fixtures import SR, _place, speak, write_wav  # noqa: E402

SAMPLE = ROOT / "audio_fixtures" / "samples" / "support_call_ulaw8k.wav"
CARD = "4111 1111 1111 1111"  # a test card number (Luhn-valid, never a real account)
# (speaker, text) in order; the agent opens.
SCRIPT: list[tuple[str, str]] = [
    ("agent", "Thank you for calling. How can I help you today?"),
    ("caller", "Hi. My internet stopped working this morning, and I need it for my job."),
    ("agent", "I am sorry to hear that. Let me check the network in your area."),
    ("caller", "This is the third time this month. I am really fed up with it."),
    ("agent", "Sorry about that. There is an outage in your area, and it will be fixed tonight."),
    ("caller", "Can I get a refund for the days without service?"),
    ("agent", "Yes. I can refund it to your card. What is the card number?"),
    ("caller", f"Sure, my card number is {', '.join(' '.join(group) for group in CARD.split())}."),
    ("agent", "Thank you. The refund will reach your card within five days."),
    ("caller", "Great, thank you for your help."),
]
VOICES = {"caller": ("en-us", 150, 55), "agent": ("en-gb-x-rp", 150, 40)}  # espeak voice, speed, pitch
GAP_S = 0.6


def build(out: Path) -> None:
    """Speak the script into a stereo 8 kHz mu-law WAV at ``out``."""
    left: list[tuple[float, np.ndarray]] = []
    right: list[tuple[float, np.ndarray]] = []
    t = 0.4
    for speaker, text in SCRIPT:
        voice, speed, pitch = VOICES[speaker]
        audio = speak(text, voice=voice, speed=speed, pitch=pitch) * 0.7
        (left if speaker == "caller" else right).append((t, audio))
        t += len(audio) / SR + GAP_S
    stereo = np.stack([_place(left, t), _place(right, t)], axis=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wide = Path(tmp) / "call.wav"
        write_wav(wide, stereo)
        subprocess.run(["sox", "-R", str(wide), "-r", "8000", "-e", "u-law", "-b", "8", str(out)], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=SAMPLE)
    args = ap.parse_args(argv)
    build(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
