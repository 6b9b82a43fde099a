"""`voice-agent transcribe --analyze`: per-segment sentiment, PII redaction and a short call summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from dialog.options import PII_KINDS
from dialog.pii import Redactor
from dialog.sentiment import SentimentAnalyzer
from dialog.speech import shorten

_shared_analyzer: SentimentAnalyzer | None = None


def _analyzer() -> SentimentAnalyzer:
    global _shared_analyzer
    if _shared_analyzer is None:
        _shared_analyzer = SentimentAnalyzer()
    return _shared_analyzer


def analyze_transcript(segments: list[dict[str, Any]], *, redact: bool = True, kinds: Iterable[str] = PII_KINDS,
                       analyzer: SentimentAnalyzer | None = None) -> dict[str, Any]:
    """Segments with `sentiment` {label, score} and redacted `text`; plus `summary`, `redactions` and `by_speaker`.

    Input segments are transcript JSON dicts (start, end, speaker, channel, text, ...); they are copied, not
    changed. With redact=True no raw PII is kept anywhere in the result (word timings included).
    """
    analyzer = analyzer or _analyzer()
    redactor = Redactor(kinds)
    out: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    texts: list[str] = []
    for seg in segments:
        if redact:
            new, found = redact_segment(seg, redactor)
            counts.update(found)
        else:
            new = dict(seg, text=str(seg.get("text", "")))
        texts.append(new["text"])
        out.append(new)
    for new, sentiment in zip(out, analyzer.analyze_many(texts), strict=True):
        new["sentiment"] = sentiment.as_dict()
    return {
        "segments": out,
        "summary": summarize(out),
        "redactions": sum(counts.values()),
        "redactions_by_kind": dict(counts),
        "by_speaker": _speaker_moods(out),
    }


def redact_segment(seg: dict[str, Any], redactor: Redactor) -> tuple[dict[str, Any], Counter[str]]:
    """A copy of a transcript segment with PII replaced in its text and word timings, and what was found."""
    new = dict(seg)
    text, found = redactor.redact_counted(str(seg.get("text", "")))
    new["text"] = text
    if found and new.get("words"):
        new["words"] = redact_words(new["words"], redactor)
    return new, found


def redact_words(words: list[dict[str, Any]], redactor: Redactor) -> list[dict[str, Any]]:
    """Word timings with PII replaced: the first word of a finding becomes the placeholder and spans the rest."""
    if not all(isinstance(w, dict) and isinstance(w.get("word"), str) for w in words):
        return []  # unknown shape: drop the timings rather than keep raw digits
    spans: list[tuple[int, int]] = []
    pos = 0
    for w in words:
        spans.append((pos, pos + len(w["word"])))
        pos += len(w["word"])
    joined = "".join(w["word"] for w in words)
    out: list[dict[str, Any]] = []
    findings = redactor.find(joined)
    owner: dict[int, int] = {}  # word index -> finding index
    for index, f in enumerate(findings):
        for wi, (s, e) in enumerate(spans):
            if s < f.end and f.start < e and wi not in owner:
                owner[wi] = index
    placed: dict[int, dict[str, Any]] = {}
    for wi, w in enumerate(words):
        fi = owner.get(wi)
        if fi is None:
            out.append(dict(w))
        elif fi in placed:
            placed[fi]["end"] = w.get("end", placed[fi].get("end"))
        else:
            lead = " " if w["word"].startswith(" ") else ""
            new = dict(w, word=lead + redactor.placeholders[findings[fi].kind])
            placed[fi] = new
            out.append(new)
    return out


def _speaker_moods(segments: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    moods: dict[str, dict[str, Any]] = {}
    for seg in segments:
        who = str(seg.get("speaker") or "speaker")
        entry = moods.setdefault(who, {"segments": 0, "negative": 0, "neutral": 0, "positive": 0})
        entry["segments"] += 1
        entry[seg["sentiment"]["label"]] += 1
    return moods


def summarize(segments: list[dict[str, Any]]) -> str:
    """What the call opened with, how the callers' sentiment went and, on longer calls, how it ended."""
    spoken = [s for s in segments if str(s.get("text", "")).strip()]
    if not spoken:
        return "The recording has no speech."
    callers = [s for s in spoken if str(s.get("speaker", "")).lower() in ("caller", "customer")] or spoken
    opening = max(callers[:3], key=lambda s: len(str(s["text"])))
    duration = max(float(s.get("end", 0.0)) for s in spoken)
    quote = shorten(str(opening["text"]), 16).rstrip(".!?")
    first = f'The call ({duration:.0f} s, {len(spoken)} segments) opens with "{quote}"'
    labels = [s["sentiment"]["label"] for s in callers]
    negative = labels.count("negative")
    start, end = labels[: max(1, len(labels) // 2)], labels[len(labels) // 2 :]
    trend = ""
    if start.count("negative") > end.count("negative"):
        trend = ", calmer towards the end"
    elif end.count("negative") > start.count("negative"):
        trend = ", more upset towards the end"
    who = "the caller" if callers is not spoken else "the speakers"
    tone = ("mostly negative" if negative > len(labels) / 2 else
            "mixed" if negative else
            "positive" if labels.count("positive") > len(labels) / 2 else "neutral")
    mood = f"Sentiment of {who} is {tone} ({negative} of {len(labels)} segments negative{trend})."
    if len(callers) >= 3 and callers[-1] is not opening:
        closing = shorten(str(callers[-1]["text"]), 16).rstrip(".!?")
        return f'{first.rstrip(".")}. {mood} It ends with "{closing}".'
    return f"{first.rstrip('.')}. {mood}"
