"""Render a transcript (its JSON dict) as json, txt, srt or vtt."""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("json", "txt", "srt", "vtt")


def _clock(seconds: float, sep: str) -> str:
    ms = round(max(seconds, 0.0) * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _label(seg: dict[str, Any], multi: bool) -> str:
    return f"[{seg['speaker']}] " if multi else ""


def render(data: dict[str, Any], fmt: str) -> str:
    """The transcript in one output format."""
    segments = data.get("segments", [])
    multi = len({s.get("speaker") for s in segments}) > 1 or data.get("channels", 1) > 1
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "txt":
        if any("sentiment" in s for s in segments):
            return _analyzed_txt(data, segments)
        lines = [f"{_clock(s['start'], '.')} {_label(s, multi)}{s['text']}" for s in segments]
        return "\n".join(lines) + ("\n" if lines else "")
    if fmt in ("srt", "vtt"):
        sep = "," if fmt == "srt" else "."
        blocks = []
        for i, s in enumerate(segments, 1):
            head = f"{i}\n" if fmt == "srt" else ""
            label = f"<v {s['speaker']}>" if (fmt == "vtt" and multi) else _label(s, multi)
            blocks.append(f"{head}{_clock(s['start'], sep)} --> {_clock(s['end'], sep)}\n{label}{s['text']}\n")
        body = "\n".join(blocks)
        return ("WEBVTT\n\n" + body) if fmt == "vtt" else body
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")


def _analyzed_txt(data: dict[str, Any], segments: list[dict[str, Any]]) -> str:
    """A call report for a reader: summary, speakers' sentiment, redactions, then the transcript turn by turn."""
    lines = ["CALL SUMMARY", f"  {data.get('summary') or 'No summary.'}"]
    moods = data.get("by_speaker") or {}
    for who, m in moods.items():
        lines.append(f"  {who}: {m.get('segments', 0)} segments, {m.get('negative', 0)} negative, "
                     f"{m.get('neutral', 0)} neutral, {m.get('positive', 0)} positive")
    if "redactions" in data:
        kinds = data.get("redactions_by_kind") or {}
        detail = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
        count = int(data.get("redactions") or 0)
        lines.append(f"  Redacted: {count} item{'s' if count != 1 else ''}" + (f" ({detail})" if detail else "")
                     + (", replaced by placeholders such as [CARD] in everything shown and stored" if count else ""))
    lines += ["", "TRANSCRIPT"]
    width = max((len(str(s.get("speaker") or "")) for s in segments), default=0)
    long_call = max((float(s.get("end", 0.0)) for s in segments), default=0.0) >= 3600
    for s in segments:
        mood = (s.get("sentiment") or {}).get("label", "")
        who = str(s.get("speaker") or "").ljust(width)
        stamp = _clock(s["start"], ".")[: -2] if long_call else _clock(s["start"], ".")[3:-2]
        lines.append(f"  {stamp}  {who}  {mood:<8}  {s['text']}")
    return "\n".join(lines) + "\n"
