"""Call analytics: what a support lead reads every morning.

Per call (computed when the call ends, from what the store holds: segments, turns, events, meta):
topics (KB entries answered from), outcome (contained, transferred and why, abandoned), handle time,
talk time per side, silence and overlap, barge-ins, the sentiment trajectory, QA checks, and the
questions the knowledge base could not answer. Across calls (``summarize``): calls per hour and day,
containment, transfer reasons, handle time, sentiment trend, latency percentiles, QA pass rates and
the unanswered questions grouped (``group_gaps``: same words, or close MiniLM embeddings).

Everything here is pure computation except ``analyze_call``/``backfill``, which read and write the
store (blocking: call them from a worker thread).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from voice_agent.store import CallStore

log = logging.getLogger("voice_agent.analytics")

ANALYTICS_VERSION = 1  # bump when a per-call number changes meaning: stored calls are computed again
OUTCOMES = ("contained", "transferred", "abandoned", "error")
QA_CHECKS = ("greeted", "empathy_on_upset", "no_guard_rejections", "transfer_offered_when_asked")
_OUTCOME = {"resolved": "contained", "transferred": "transferred", "abandoned": "abandoned"}
_EMPATHY = re.compile(r"\b(?:sorry|apologi[sz]e|understand|frustrat\w*|annoying|inconvenien\w*|hear you|"
                      r"that must be)\b", re.I)
_OFFER = re.compile(r"\b(?:colleague|transfer\w*|connect\w*|put you through|a person|human|agent)\b", re.I)
_FILLER = frozenset("""
a an the and or but so um uh er erm hmm well okay ok hi hello hey please just like i me my we our you your it
is are was be can could would will do does did to of in on at for with about any some this that there here
what how when where why which who tell know want wanted need get have has had if im i'm it's is there them they
these those
""".split())


# ---- one call ---------------------------------------------------------------------------------
def outcome_of(stored: str | None) -> str:
    """The dashboard's outcome for a stored outcome: contained, transferred, abandoned or error."""
    return _OUTCOME.get(stored or "", "error")


def transfer_category(reason: str) -> str:
    """Why a call went to a person, as a short category (free text is never shown: it may quote the caller)."""
    r = reason.strip().lower()
    if not r:
        return ""
    if "asked for a human" in r or "asked for a person" in r:
        return "caller asked for a person"
    if "upset" in r:
        return "caller upset"
    if "knowledge base" in r:
        return "knowledge base could not answer"
    if r.startswith("requested by") or "console" in r:
        return "transferred from the console"
    if "menu" in r or "key" in r:
        return "menu choice"
    return "other"


def _union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _length(intervals: Sequence[tuple[float, float]]) -> float:
    return float(sum(e - s for s, e in intervals))


def _intersection(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def talk_times(segments: Sequence[Mapping[str, Any]], duration: float) -> dict[str, float]:
    """Seconds each side spoke, seconds nobody spoke, and seconds both spoke at once (from the segments)."""
    sides: dict[str, list[tuple[float, float]]] = {"caller": [], "agent": []}
    for seg in segments:
        speaker = str(seg.get("speaker", ""))
        if speaker in sides:
            sides[speaker].append((float(seg.get("start") or 0.0), float(seg.get("end") or 0.0)))
    caller, agent = _union(sides["caller"]), _union(sides["agent"])
    either = _union([*caller, *agent])
    end = max([duration, *(e for _, e in either)]) if either else duration
    return {"caller_talk_s": round(_length(caller), 2), "agent_talk_s": round(_length(agent), 2),
            "silence_s": round(max(0.0, end - _length(either)), 2), "overlap_s": round(_intersection(caller, agent), 2)}


def _turn_value(turn: Mapping[str, Any], mood: float | None) -> float | None:
    if mood is not None:
        return float(mood)
    label = turn.get("sentiment")
    if not label:
        return None
    score = abs(float(turn.get("sentiment_score") or 0.6))
    return -score if label == "negative" else score if label == "positive" else 0.0


def normalise_question(text: str) -> str:
    """The words that carry a question's meaning, stemmed and sorted: "Do you sell gift cards?" -> "card gift sell"."""
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", re.sub(r"\[([A-Z_]+)\]", r" \1 ", text).lower())
    kept = set()
    for w in words:
        if w in _FILLER or len(w) < 2:
            continue
        for suffix in ("ing", "es", "ed", "s"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                w = w[: -len(suffix)]
                break
        kept.add(w)
    return " ".join(sorted(kept)) or " ".join(words)


@dataclass
class CallAnalytics:
    """One call's numbers (a row of call_analytics) and its unanswered questions."""

    row: dict[str, Any]
    gaps: list[dict[str, Any]] = field(default_factory=list)


def compute_call(call: Mapping[str, Any], segments: Sequence[Mapping[str, Any]], turns: Sequence[Mapping[str, Any]],
                 events: Sequence[Mapping[str, Any]], redact: Callable[[str], str]) -> CallAnalytics:
    """The analytics of one stored call. ``call`` has kind, started_at, duration, outcome and meta.

    ``redact`` is applied to every question kept as a KB gap (personal data never reaches the dashboard).
    """
    meta = call.get("meta") or {}
    started = float(call.get("started_at") or 0.0)
    duration = float(call.get("duration") or 0.0)
    outcome = outcome_of(call.get("outcome"))
    transfer = meta.get("transfer") if isinstance(meta.get("transfer"), dict) else None
    reason = str((transfer or {}).get("reason") or "")
    if not reason:
        reason = next((str(e.get("reason") or "") for e in events if e.get("type") == "transfer"), "")
    category = transfer_category(reason) if outcome == "transferred" else ""
    if outcome == "transferred" and not category:
        category = "other"

    # sentiment: the smoothed mood of the timeline where the session recorded one, else each turn's label
    moods = {int(p["turn"]): p.get("mood") for p in meta.get("sentiment_timeline") or []
             if isinstance(p, dict) and p.get("turn") is not None}
    trajectory = []
    for t in turns:
        value = _turn_value(t, moods.get(int(t.get("index", -1))))
        if value is not None:
            trajectory.append({"t": round(float(t.get("end_of_speech") or 0.0), 2), "turn": int(t.get("index", 0)),
                               "value": round(value, 3), "label": t.get("sentiment") or ""})
    values: list[float] = [float(p["value"]) for p in trajectory]

    topics = Counter(str(t["sources"][0]["id"]) for t in turns
                     if t.get("action") == "answer" and t.get("sources") and isinstance(t["sources"][0], dict)
                     and t["sources"][0].get("id"))

    # QA checks: True passed, False failed, None not applicable to this call
    kinds = [str(e.get("type")) for e in events]
    agent_first = min((float(s.get("start") or 0.0) for s in segments if s.get("speaker") == "agent"), default=None)
    caller_first = min((float(s.get("start") or 0.0) for s in segments if s.get("speaker") == "caller"), default=None)
    greeted = "greeting" in kinds or (agent_first is not None and (caller_first is None or agent_first <= caller_first))
    upset = [t for t in turns if t.get("sentiment") == "negative" and t.get("agent_text")]
    empathy = all(_EMPATHY.search(str(t.get("agent_text"))) for t in upset) if upset else None
    rejections = sum(int(t.get("guard_rejections") or 0) for t in turns)
    asked = [t for t in turns if t.get("intent") == "human"]
    offered = (outcome == "transferred" or "transfer" in kinds
               or all(_OFFER.search(str(t.get("agent_text") or "")) for t in asked)) if asked else None
    qa: dict[str, bool | None] = {"greeted": bool(greeted), "empathy_on_upset": empathy,
                                  "no_guard_rejections": rejections == 0, "transfer_offered_when_asked": offered}

    gaps = []
    kb_transfer = category == "knowledge base could not answer"
    for i, t in enumerate(turns):
        action = t.get("action")
        before = turns[i - 1] if i > 0 else None
        after = turns[i + 1] if i + 1 < len(turns) else None
        guessed = before is not None and before.get("action") == "clarify"  # this turn answers "do you mean ...?"
        if action == "not_found" or (kb_transfer and action == "escalate" and t.get("escalate")):
            # "No, neither" to a clarifying question: the question the KB missed is the one asked before it
            text = str((before if guessed and before is not None else t).get("caller_text") or "")
        elif action == "clarify" and (after is None or after.get("action") not in ("answer", "not_found")):
            text = str(t.get("caller_text") or "")  # unsure, and the caller never confirmed a guess
        else:
            continue
        text = text.strip()
        if not text or text.startswith("[DTMF"):
            continue
        question = redact(text)
        gaps.append({"turn": int(t.get("index", 0)), "at": started + float(t.get("end_of_speech") or 0.0),
                     "question": question, "norm": normalise_question(question)})

    latency = [float(t["voice_to_voice_ms"]) for t in turns if t.get("voice_to_voice_ms") is not None]
    row: dict[str, Any] = {
        "version": ANALYTICS_VERSION, "started_at": started, "kind": str(call.get("kind") or ""),
        "outcome": outcome, "transfer_reason": category, "handle_s": round(duration, 2), "turns": len(turns),
        **talk_times(segments, duration),
        "barge_ins": kinds.count("barge_in"),
        "sentiment_start": values[0] if values else None, "sentiment_end": values[-1] if values else None,
        "sentiment_mean": round(float(np.mean(values)), 3) if values else None,
        "qa_passed": sum(1 for v in qa.values() if v is True),
        "qa_checked": sum(1 for v in qa.values() if v is not None),
        "data": {"topics": dict(topics), "trajectory": trajectory, "qa": qa, "guard_rejections": rejections,
                 "latency_p50_ms": _percentile(latency, 50), "latency_p95_ms": _percentile(latency, 95),
                 "unanswered": len(gaps)},
    }
    return CallAnalytics(row, gaps)


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


# ---- the store side ---------------------------------------------------------------------------
_redactor: Callable[[str], str] | None = None


def redact_all(text: str) -> str:
    """The text with every kind of PII replaced (whatever the store's redaction settings are)."""
    global _redactor
    if _redactor is None:
        from dialog.options import PII_KINDS
        from voice_agent.privacy import Privacy

        _redactor = Privacy(PII_KINDS).text
    return _redactor(text)


def analyze_call(store: CallStore, call_id: str) -> CallAnalytics:
    """Compute one stored call's analytics and store them (blocking)."""
    rec = store.get_call(call_id)
    call = {"kind": rec.kind, "started_at": rec.started_at, "duration": rec.duration, "outcome": rec.outcome,
            "meta": rec.meta}
    result = compute_call(call, store.segments(call_id), store.turns(call_id), store.events(call_id), redact_all)
    store.put_analytics(call_id, result.row, result.gaps)
    return result


def backfill(store: CallStore, limit: int = 500) -> int:
    """Compute analytics for stored calls that have none (older calls, calls recovered after a crash); how many."""
    done = 0
    for call_id in store.calls_needing_analytics(ANALYTICS_VERSION, limit):
        try:
            analyze_call(store, call_id)
            done += 1
        except Exception as exc:  # one odd call must not hide the others' numbers
            log.warning("analytics for call %s failed: %s: %s", call_id, type(exc).__name__, exc)
    return done


# ---- across calls -----------------------------------------------------------------------------
Embed = Callable[[list[str]], np.ndarray]
# MiniLM cosine at which two unanswered questions are one: paraphrases measured 0.60-0.91 ("Do you sell gift
# cards?" / "Can I buy a gift voucher?" 0.61), different questions about the same shop at most 0.48.
GROUP_COSINE = 0.58


def _jaccard(a: str, b: str) -> float:
    x, y = set(a.split()), set(b.split())
    return len(x & y) / len(x | y) if x and y else 0.0


def group_gaps(gaps: Sequence[Mapping[str, Any]], embed: Embed | None = None, threshold: float = GROUP_COSINE,
               examples: int = 5) -> list[dict[str, Any]]:
    """Unanswered questions grouped: the same words (normalised), then close in meaning.

    Without ``embed`` two groups join when their normalised words overlap by 60 %; with it (MiniLM,
    unit vectors) when the cosine of their questions with the group's first is at least ``threshold``.
    Largest groups first.
    """
    by_norm: dict[str, list[Mapping[str, Any]]] = {}
    for g in sorted(gaps, key=lambda g: -float(g["at"])):
        by_norm.setdefault(str(g["norm"]), []).append(g)
    norms = sorted(by_norm, key=lambda n: (-len(by_norm[n]), -float(by_norm[n][0]["at"])))
    vectors = embed([str(by_norm[n][0]["question"]) for n in norms]) if embed is not None and norms else None
    clusters: list[list[int]] = []
    for i, norm in enumerate(norms):
        for cluster in clusters:
            head = cluster[0]
            if vectors is not None:
                close = float(np.dot(vectors[i], vectors[head])) >= threshold
            else:
                close = _jaccard(norm, norms[head]) >= 0.6
            if close:
                cluster.append(i)
                break
        else:
            clusters.append([i])
    groups: list[dict[str, Any]] = []
    for cluster in clusters:
        members = sorted((g for i in cluster for g in by_norm[norms[i]]), key=lambda g: -float(g["at"]))
        counts = Counter(str(g["question"]) for g in members)
        seen: list[str] = []
        for g in members:
            q = str(g["question"])
            if q not in seen:
                seen.append(q)
        groups.append({"question": counts.most_common(1)[0][0], "count": len(members),
                       "calls": len({g["call_id"] for g in members}), "examples": seen[:examples],
                       "first_seen": min(float(g["at"]) for g in members),
                       "last_seen": float(members[0]["at"]), "norms": [norms[i] for i in cluster]})
    groups.sort(key=lambda g: (-int(g["count"]), -float(g["last_seen"])))
    return groups


def _day(t: float, offset_s: float) -> str:
    return dt.datetime.fromtimestamp(t + offset_s, dt.UTC).strftime("%Y-%m-%d")


def _hour(t: float, offset_s: float) -> int:
    return dt.datetime.fromtimestamp(t + offset_s, dt.UTC).hour


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return round(sum(kept) / len(kept), 3) if kept else None


def summarize(rows: Sequence[Mapping[str, Any]], latencies: Sequence[float], *, offset_min: int = 0) -> dict[str, Any]:
    """The dashboard's numbers from per-call rows (``CallStore.analytics_rows``) and turn latencies.

    Days and hours are the viewer's: ``offset_min`` is minutes east of UTC (120 for UTC+2).
    """
    offset = offset_min * 60.0
    n = len(rows)
    outcomes = Counter(str(r["outcome"]) for r in rows)
    per_hour = [{"hour": h, "calls": 0} for h in range(24)]
    days: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = float(r["started_at"])
        per_hour[_hour(t, offset)]["calls"] += 1
        day = days.setdefault(_day(t, offset), {"calls": 0, **{o: 0 for o in OUTCOMES}, "_sent": [], "_handle": []})
        day["calls"] += 1
        day[str(r["outcome"])] = day.get(str(r["outcome"]), 0) + 1
        day["_sent"].append(r.get("sentiment_mean"))
        day["_handle"].append(r.get("handle_s"))
    per_day = []
    for name in sorted(days):
        d = days[name]
        per_day.append({"day": name, "calls": d["calls"], **{o: d[o] for o in OUTCOMES},
                        "containment": round(d["contained"] / d["calls"], 3) if d["calls"] else None,
                        "sentiment": _mean(d["_sent"]), "avg_handle_s": _mean(d["_handle"])})
    reasons = Counter(str(r["transfer_reason"] or "other") for r in rows if r["outcome"] == "transferred")
    topics: Counter[str] = Counter()
    qa = {c: {"passed": 0, "checked": 0} for c in QA_CHECKS}
    for r in rows:
        data = r.get("data") or {}
        topics.update({str(k): int(v) for k, v in (data.get("topics") or {}).items()})
        for check, value in (data.get("qa") or {}).items():
            if check in qa and value is not None:
                qa[check]["checked"] += 1
                qa[check]["passed"] += 1 if value else 0
    lat = sorted(latencies)
    return {
        "calls": n,
        "outcomes": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "containment_rate": round(outcomes.get("contained", 0) / n, 3) if n else None,
        "avg_handle_s": _mean(r.get("handle_s") for r in rows),
        "per_hour": per_hour,
        "per_day": per_day,
        "transfer_reasons": [{"reason": k, "count": v} for k, v in reasons.most_common()],
        "sentiment": {"start": _mean(r.get("sentiment_start") for r in rows),
                      "end": _mean(r.get("sentiment_end") for r in rows),
                      "mean": _mean(r.get("sentiment_mean") for r in rows)},
        "latency_ms": {"turns": len(lat), **{f"p{q}": _percentile(lat, q) for q in (50, 90, 95, 99)}},
        "talk": {k: _mean(r.get(k) for r in rows) for k in ("caller_talk_s", "agent_talk_s", "silence_s", "overlap_s")},
        "barge_ins": sum(int(r.get("barge_ins") or 0) for r in rows),
        "qa": qa,
        "topics": [{"id": k, "count": v} for k, v in topics.most_common(20)],
    }


CALL_CSV_FIELDS = ("call_id", "started_at", "kind", "outcome", "transfer_reason", "handle_s", "turns", "caller_talk_s",
                   "agent_talk_s", "silence_s", "overlap_s", "barge_ins", "sentiment_start", "sentiment_end",
                   "sentiment_mean", "qa_passed", "qa_checked", *QA_CHECKS, "topics", "latency_p50_ms",
                   "unanswered")


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def calls_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per call (times in UTC ISO 8601)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CALL_CSV_FIELDS)
    for r in rows:
        data = r.get("data") or {}
        qa = data.get("qa") or {}
        when = dt.datetime.fromtimestamp(float(r["started_at"]), dt.UTC).isoformat(timespec="seconds")
        values = {**r, "started_at": when, **{c: qa.get(c) for c in QA_CHECKS},
                  "topics": " ".join(sorted(data.get("topics") or {})),
                  "latency_p50_ms": data.get("latency_p50_ms"), "unanswered": data.get("unanswered", 0)}
        w.writerow([_cell(values.get(f)) for f in CALL_CSV_FIELDS])
    return out.getvalue()


def gaps_csv(groups: Sequence[Mapping[str, Any]]) -> str:
    """One line per group of unanswered questions."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(("question", "count", "calls", "last_seen", "examples"))
    for g in groups:
        when = dt.datetime.fromtimestamp(float(g["last_seen"]), dt.UTC).isoformat(timespec="seconds")
        w.writerow([_cell(g["question"]), g["count"], g["calls"], when, _cell(" | ".join(g["examples"]))])
    return out.getvalue()


def days_csv(summary: Mapping[str, Any]) -> str:
    """One line per day."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    fields = ("day", "calls", *OUTCOMES, "containment", "sentiment", "avg_handle_s")
    w.writerow(fields)
    for d in summary["per_day"]:
        w.writerow([_cell(d.get(f)) for f in fields])
    return out.getvalue()
