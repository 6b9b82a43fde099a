"""Spoken evaluation: caller turns rendered with espeak-ng voices, played into the real call loop.

    .venv/bin/python bench/spoken_eval.py [--eval bench/eval/spoken.yaml] [--lines 16k,8k]
        [--kb examples/shop-kb] [--json out.json] [--with-hotwords | --without-hotwords] [--repeats 1]

Each turn of the eval file (a YAML list of ``{kb, text, expect}``; optional ``id``, and ``context``:
earlier caller turns spoken first in the same call) is rendered in one of several espeak-ng voices
unlike the project's own caller fixture (bench/spoken_audio.py), on a 16 kHz PCM line and on an 8 kHz
band-limited G.711 mu-law phone line, and played as a whole simulated call through the same public
path as ``voice-agent call --fast``: Engine.from_config, Engine.session, simulate.FileSource. Every
model is real (Whisper, the KB retriever, the local LLM, the TTS voice).

Reports per KB and per line: caller WER (case, punctuation and spoken numbers normalised) and the
brain's outcome of the scored turn (action, escalate, sources, agent text) as rows that
``bench/dialog_eval.py --spoken-only --spoken out.json`` judges (``--json out.json``); a rough check (top
source is an expected entry, handoff taken, off-KB question not answered) is printed here too.
Voice-to-voice latency is the median over turns (and over ``--repeats``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from asr.audio import load_audio  # noqa: E402
from bench.spoken_audio import (  # noqa: E402
    LINE_RATE,
    LINES,
    VOICES,
    AudioError,
    CallerVoice,
    line_noise,
    on_line,
    render,
    write_wav,
)

DEFAULT_EVAL = ROOT / "bench" / "eval" / "spoken.yaml"
AUDIO_CACHE = ROOT / "var" / "spoken-eval" / "audio"
GREETING_S = 6.0  # the caller waits for the greeting before speaking
CONTEXT_GAP_S = 14.0  # after a context turn: room for the agent's answer
SR = 16000  # the caller audio is composed at 16 kHz, then put on the line


class EvalError(ValueError):
    """The eval file or an option is invalid; the message says which and how to fix it."""


# ---------------------------------------------------------------- text normalisation for WER

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_CONTRACTIONS = {"i'm": "i am", "it's": "it is", "don't": "do not", "can't": "cannot", "won't": "will not",
                 "that's": "that is", "there's": "there is", "i'd": "i would", "let's": "let us",
                 "you're": "you are", "we're": "we are", "isn't": "is not", "what's": "what is",
                 "i've": "i have", "doesn't": "does not", "didn't": "did not", "haven't": "have not",
                 "wasn't": "was not", "where's": "where is", "how's": "how is", "i'll": "i will"}
_ORDINALS = {"first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th"}


def _numbers(words: list[str]) -> list[str]:
    """Runs of number words as one digit string: "twenty five" -> "25", "one hundred and nine" -> "109".

    Digits pass through, so "25" and "twenty five" compare equal; "four ninety nine" stays two numbers.
    """
    out: list[str] = []
    total, current, active = 0, 0, False

    def is_num(w: str) -> bool:
        return w in _UNITS or w in _TENS

    for i, w in enumerate(words):
        if is_num(w):
            value = _UNITS.get(w, _TENS.get(w, 0))
            if not active:
                current, active = value, True
            elif current == 0 and total:
                current = value  # "one thousand five"
            elif current >= 20 and current % 10 == 0 and current % 100 != 0 and value < 10:
                current += value  # "twenty five"
            elif current >= 100 and current % 100 == 0 and value < 100:
                current += value  # "one hundred twenty"
            else:
                out.append(str(total + current))  # "four ninety": two numbers
                total, current = 0, value
            continue
        if w in _SCALES and active:
            if _SCALES[w] == 100:
                current = max(current, 1) * 100
            else:
                total, current = total + max(current, 1) * _SCALES[w], 0
            continue
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "and" and active and current % 100 == 0 and (current or total) and is_num(nxt):
            continue  # "one hundred and nine"
        if active:
            out.append(str(total + current))
            total, current, active = 0, 0, False
        out.append(w)
    if active:
        out.append(str(total + current))
    return out


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation; contractions expanded; numbers, money and times as digits."""
    text = text.lower().replace("’", "'")
    for short, full in _CONTRACTIONS.items():
        text = re.sub(rf"\b{re.escape(short)}\b", full, text)
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)  # 1,500 -> 1500
    text = re.sub(r"(\d)\.(\d)", r"\1 \2", text)  # $4.99 -> 4 99 (as "four ninety nine")
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text)
    text = re.sub(r"\b([ap])\.m\.", r"\1m", text)
    text = re.sub(r"(\d)\s*%", r"\1 percent", text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text).replace("'", "")
    words = [_ORDINALS.get(w, w) for w in text.split()]
    words = [w[:-2] if w in _ORDINALS.values() else w for w in words]
    words = [w for w in words if w not in ("dollars", "dollar", "cents", "um", "uh")]
    return _numbers(words)


def edits(reference: list[str], hypothesis: list[str]) -> int:
    """Word edit distance."""
    prev = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


# ---------------------------------------------------------------- the eval set


@dataclass
class SpokenTurn:
    """One scored caller turn of the eval file."""

    index: int
    kb: str
    text: str
    expect: dict[str, Any]
    id: str = ""
    context: list[str] = field(default_factory=list)


def load_eval(path: Path) -> list[SpokenTurn]:
    """The eval file's turns, validated with a message naming the bad item."""
    if not path.exists():
        raise EvalError(f"{path}: file not found (write the spoken eval set there, or pass --eval FILE)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EvalError(f"{path}: not valid YAML ({exc})") from None
    if isinstance(data, dict):
        data = data.get("turns", data.get("items"))
    if not isinstance(data, list) or not data:
        raise EvalError(f"{path}: expected a list of {{kb, text, expect}} items")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not str(item.get("text") or "").strip() or not item.get("kb"):
            raise EvalError(f"{path}: item {i + 1} needs `kb` and `text`")
        kb = ROOT / str(item["kb"]) if not Path(str(item["kb"])).is_absolute() else Path(str(item["kb"]))
        if not kb.is_dir():
            raise EvalError(f"{path}: item {i + 1}: knowledge base folder {item['kb']} does not exist")
        expect = item.get("expect") or {}
        if not isinstance(expect, dict):
            raise EvalError(f"{path}: item {i + 1}: `expect` must be a mapping")
        context = item.get("context") or []
        if isinstance(context, str):
            context = [context]
        out.append(SpokenTurn(i, str(item["kb"]), str(item["text"]).strip(), dict(expect),
                              str(item.get("id") or ""), [str(c) for c in context]))
    return out


# ---------------------------------------------------------------- the call loop


def make_config(kb: str, home: Path, hotwords: bool | None) -> Any:
    """The configuration of one KB's engine: defaults plus the KB folder and, if asked, ASR hotwords."""
    from voice_agent.config import AsrConfig, load_config

    overrides: dict[str, Any] = {"dialog": {"kb_dir": str(ROOT / kb) if not Path(kb).is_absolute() else kb}}
    if hotwords is not None:
        names = [f.name for f in dataclasses.fields(AsrConfig) if "hotword" in f.name]
        flag = next((f for f in dataclasses.fields(AsrConfig)
                     if "hotword" in f.name and f.type in (bool, "bool")), None)
        if flag is None:
            raise EvalError(f"asr has no boolean hotwords setting (found {names or 'none'}); "
                            "--with-hotwords/--without-hotwords need one")
        overrides["asr"] = {flag.name: hotwords}
    return load_config(overrides=overrides, env={**os.environ, "VOICE_AGENT_HOME": str(home)})


def caller_audio(turn: SpokenTurn, voice: CallerVoice, line: str) -> tuple[np.ndarray, float]:
    """The whole call's caller audio at the line's rate, and when the scored turn starts (line seconds)."""
    from voice_agent.simulate import phone_line

    parts: list[np.ndarray] = [np.zeros(int(GREETING_S * SR), np.float32)]
    for text in turn.context:
        parts.append(load_audio(render(text, voice, AUDIO_CACHE))[0])
        parts.append(np.zeros(int(CONTEXT_GAP_S * SR), np.float32))
    start = sum(len(p) for p in parts) / SR
    parts.append(load_audio(render(turn.text, voice, AUDIO_CACHE))[0])
    wide = np.concatenate(parts).astype(np.float32)
    wide += line_noise(len(wide), f"{turn.kb}|{turn.text}|{voice}")
    audio = on_line(wide, line)
    # as `voice-agent call --telephony` does with any file: G.711 both ways (a no-op on mu-law audio)
    return (phone_line(audio) if line == "8k" else audio), start


async def play_call(engine: Any, audio: np.ndarray, rate: int, recording: Path, telephony: bool) -> dict[str, Any]:
    """One simulated call as ``voice-agent call --fast`` plays it; the call's report."""
    from voice_agent.simulate import FileSource, phone_line

    session = engine.session(rate, recording_path=recording, outgoing=phone_line if telephony else None)
    source = FileSource(audio, rate, fast=True, busy=lambda: session.busy > 0, hold=session.holding_line)

    async def sink(frame: np.ndarray) -> None:
        return None

    result = await session.run(source.frames(), sink)
    report: dict[str, Any] = result.report()
    return report


def outcome_row(turn: SpokenTurn, voice: CallerVoice, line: str, report: dict[str, Any], start: float,
                wall_s: float) -> dict[str, Any]:
    """The scored turn's outcome from a call report, with the caller WER."""
    turns = report.get("turns", [])
    scored = [t for t in turns if (t.get("end_of_speech") or 0) >= start - 0.05]
    heard = " ".join(t.get("caller_text", "") for t in scored).strip()
    last = scored[-1] if scored else {}
    transfers = [e for e in report.get("events", []) if e.get("type") == "transfer" and e.get("t", 0) >= start]
    ref, hyp = normalize(turn.text), normalize(heard)
    sources = last.get("sources")
    return {
        "kb": turn.kb, "index": turn.index, "id": turn.id, "line": line, "voice": voice.label,
        "text": turn.text, "context": turn.context, "expect": turn.expect,
        "heard": heard, "ref_words": len(ref), "word_errors": edits(ref, hyp),
        "wer": round(edits(ref, hyp) / max(1, len(ref)), 3),
        "action": last.get("action", ""), "intent": last.get("intent", ""),
        "escalate": bool(last.get("escalate", False)) or bool(transfers),
        "sources": sources if sources is not None else [],
        "agent_text": " ".join(t.get("agent_text", "") for t in scored).strip(),
        "turns_heard": len(scored), "call_outcome": report.get("summary", {}).get("outcome", ""),
        "barge_in": any(e.get("type") == "barge_in" for e in report.get("events", [])),
        "voice_to_voice_ms": last.get("voice_to_voice_ms"), "wall_s": round(wall_s, 2),
    }


def source_ids(row: dict[str, Any]) -> list[str]:
    """The retrieved entry ids of a row, best first (sources may be ids or {id, score} objects)."""
    return [str(s.get("id") if isinstance(s, dict) else s) for s in row["sources"]]


def _is_entry(source: str, entries: list[str]) -> bool:
    """A retrieved id is one of the expected entries (Markdown chunks add -N to the section's id)."""
    return any(source == e or (source.startswith(e + "-") and source[len(e) + 1:].isdigit()) for e in entries)


def quick_check(row: dict[str, Any]) -> bool | None:
    """A rough verdict (the real one is `bench/dialog_eval.py --spoken`): handoff taken, top source right,
    off-KB question not answered. None where ``expect`` gives nothing to check."""
    e = row["expect"]
    kind = e.get("kind")
    if kind == "handoff":
        return bool(row["escalate"])
    if row["escalate"]:
        return False
    if kind == "answer":
        ids = source_ids(row)
        return bool(ids) and _is_entry(ids[0], [str(x) for x in e.get("entries") or []]) \
            and row["action"] in ("answer", "clarify")
    if kind == "not_found":
        return row["action"] != "answer"
    return None


async def run_kb(kb: str, turns: list[SpokenTurn], lines: list[str], hotwords: bool | None, repeats: int,
                 home: Path, keep: Path | None) -> list[dict[str, Any]]:
    """Every turn of one KB on every line, through one engine loaded for that KB."""
    from voice_agent.engine import Engine

    config = make_config(kb, home, hotwords)
    t0 = time.perf_counter()
    engine = await asyncio.to_thread(Engine.from_config, config)
    await engine.warm_up()
    print(f"[{kb}] models loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for line in lines:
        for rep in range(repeats):
            for turn in turns:
                voice = VOICES[turn.index % len(VOICES)]
                audio, start = caller_audio(turn, voice, line)
                with tempfile.TemporaryDirectory() as tmp:
                    rec = (keep / f"{Path(kb).name}-{turn.index}-{line}.wav") if keep else Path(tmp) / "call.wav"
                    if keep:
                        write_wav(keep / f"{Path(kb).name}-{turn.index}-{line}-caller.wav", audio, LINE_RATE[line])
                    t = time.perf_counter()
                    report = await play_call(engine, audio, LINE_RATE[line], rec, telephony=line == "8k")
                    row = outcome_row(turn, voice, line, report, start, time.perf_counter() - t)
                row["repeat"] = rep
                rows.append(row)
                mark = {True: "ok", False: "MISS", None: "-"}[quick_check(row)]
                print(f"[{kb} {line} {voice.label}] wer={row['wer']:.2f} {mark} heard={row['heard']!r} "
                      f"-> {row['action'] or row['intent']} {source_ids(row)[:1]} {row['agent_text'][:70]!r}",
                      file=sys.stderr)
    engine.executor.shutdown(wait=False)
    return rows


# ---------------------------------------------------------------- report


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per KB and line: corpus WER, mean per-turn WER, quick checks, voice-to-voice median."""
    out = []
    for kb in dict.fromkeys(r["kb"] for r in rows):
        for line in LINES:
            group = [r for r in rows if r["kb"] == kb and r["line"] == line]
            if not group:
                continue
            checks = [c for c in (quick_check(r) for r in group) if c is not None]
            v2v = [r["voice_to_voice_ms"] for r in group if r["voice_to_voice_ms"] is not None]
            out.append({
                "kb": kb, "line": line, "turns": len(group),
                "wer": round(sum(r["word_errors"] for r in group) / max(1, sum(r["ref_words"] for r in group)), 3),
                "wer_mean": round(statistics.fmean(r["wer"] for r in group), 3),
                "exact_transcripts": sum(r["word_errors"] == 0 for r in group),
                "checked": len(checks), "checked_ok": sum(checks),
                "escalated": sum(r["escalate"] for r in group),
                "v2v_p50_ms": round(statistics.median(v2v), 1) if v2v else None,
            })
    return out


def print_table(summary: list[dict[str, Any]], per_voice: dict[tuple[str, str, str], float]) -> None:
    """The table for bench/RESULTS.md."""
    print("| KB | line | turns | caller WER | mean turn WER | exact transcripts | top source / handoff ok "
          "| escalated | voice-to-voice p50 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in summary:
        ok = f"{s['checked_ok']}/{s['checked']}" if s["checked"] else "-"
        v2v = f"{s['v2v_p50_ms']:.0f} ms" if s["v2v_p50_ms"] is not None else "-"
        print(f"| {s['kb']} | {s['line']} | {s['turns']} | {s['wer']:.1%} | {s['wer_mean']:.1%} | "
              f"{s['exact_transcripts']}/{s['turns']} | {ok} | {s['escalated']} | {v2v} |")
    print()
    print("| KB | line | voice | caller WER |")
    print("|---|---|---|---:|")
    for (kb, line, voice), w in per_voice.items():
        print(f"| {kb} | {line} | {voice} | {w:.1%} |")


def per_voice_wer(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    """Corpus WER for each KB, line and voice."""
    keys = dict.fromkeys((r["kb"], r["line"], r["voice"]) for r in rows)
    out = {}
    for k in keys:
        g = [r for r in rows if (r["kb"], r["line"], r["voice"]) == k]
        out[k] = sum(r["word_errors"] for r in g) / max(1, sum(r["ref_words"] for r in g))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the spoken evaluation and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL, help="the spoken eval set (YAML list)")
    parser.add_argument("--kb", action="append", help="only turns of this KB (repeatable; default: all)")
    parser.add_argument("--lines", default="16k,8k", help="comma list of 16k (PCM) and 8k (mu-law phone line)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many turns per KB (0: all)")
    parser.add_argument("--repeats", type=int, default=1, help="play every turn this many times (latency median)")
    parser.add_argument("--json", type=Path, help="write the per-turn outcome rows and the summary here")
    parser.add_argument("--keep-audio", type=Path, help="write each call's caller audio and recording here")
    hw = parser.add_mutually_exclusive_group()
    hw.add_argument("--with-hotwords", dest="hotwords", action="store_true", default=None,
                    help="bias ASR towards the KB's vocabulary (the asr hotwords setting on)")
    hw.add_argument("--without-hotwords", dest="hotwords", action="store_false", help="the asr hotwords setting off")
    args = parser.parse_args(argv)
    try:
        lines = [x.strip() for x in args.lines.split(",") if x.strip()]
        bad = [x for x in lines if x not in LINES]
        if bad or not lines:
            raise EvalError(f"--lines {args.lines!r}: choose from {', '.join(LINES)}")
        turns = load_eval(args.eval)
        if args.kb:
            wanted = {k.rstrip("/") for k in args.kb}
            turns = [t for t in turns if t.kb.rstrip("/") in wanted]
            if not turns:
                raise EvalError(f"no turns of {sorted(wanted)} in {args.eval}")
        by_kb: dict[str, list[SpokenTurn]] = {}
        for t in turns:
            by_kb.setdefault(t.kb, []).append(t)
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            # the model conversions are slow: share the cache with the e2e tests' data dir
            shared = ROOT / "var" / "test-home" / "cache"
            shared.mkdir(parents=True, exist_ok=True)
            home.mkdir()
            (home / "cache").symlink_to(shared, target_is_directory=True)
            for kb, group in by_kb.items():
                group = group[: args.limit] if args.limit else group
                rows += asyncio.run(run_kb(kb, group, lines, args.hotwords, max(1, args.repeats), home,
                                           args.keep_audio))
    except (EvalError, AudioError) as exc:
        print(f"spoken_eval: {exc}", file=sys.stderr)
        return 2
    summary = summarise(rows)
    per_voice = per_voice_wer(rows)
    print_table(summary, per_voice)
    if args.json:
        from bench.machine import describe

        args.json.write_text(json.dumps({
            "eval": str(args.eval), "lines": lines, "hotwords": args.hotwords,
            "voices": [dataclasses.asdict(v) for v in VOICES], "machine": describe(),
            "summary": summary, "rows": rows,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
