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
