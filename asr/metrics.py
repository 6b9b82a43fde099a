"""Word error rate with Whisper-style text normalisation (for tests and benchmarks)."""

from __future__ import annotations

import re

_NUMBERS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_CONTRACTIONS = {"i'm": "i am", "it's": "it is", "don't": "do not", "can't": "cannot",
                 "won't": "will not", "that's": "that is", "there's": "there is", "i'd": "i would",
                 "let's": "let us", "you're": "you are", "we're": "we are", "isn't": "is not"}


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation, contractions expanded, small numbers as digits."""
    text = text.lower().replace("’", "'")
    for short, full in _CONTRACTIONS.items():
        text = re.sub(rf"\b{re.escape(short)}\b", full, text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text).replace("'", "")
    return [_NUMBERS.get(w, w) for w in text.split()]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` after normalisation."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)
