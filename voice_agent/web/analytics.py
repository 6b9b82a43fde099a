"""The analytics API and the KB-gap loop: ``GET /api/analytics`` (JSON or CSV) and ``POST /api/kb/entries``.

Reading analytics is audited like other reads (its KB-gap examples are callers' words, redacted); a new KB
entry written from a gap is checked by the KB loader before it lands in the KB folder, and the index
rebuilds in the background. Store reads, grouping and file writes run in worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import threading
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from voice_agent import analytics
from voice_agent.web.api import STATE, _date, _int, _json_body, hide_paths
from voice_agent.web.security import VIA_KEY, ApiError, require

FORMATS = ("json", "csv")
TABLES = ("calls", "days", "gaps")
DEFAULT_TOPIC = "Questions from calls"
_MAX_TEXT = {"question": 300, "answer": 2000, "topic": 80}


class GapEmbeddings:
    """MiniLM vectors of KB-gap questions, remembered so that a dashboard refresh embeds only new ones."""

    def __init__(self, limit: int = 5000) -> None:
        self.limit = limit
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # two dashboards may refresh at once, each in its own worker thread

    def __call__(self, texts: list[str]) -> np.ndarray:
        from dialog.embeddings import shared_embedder

        if not texts:
            return np.zeros((0, 384), np.float32)
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            known.update(zip(missing, shared_embedder().encode(missing), strict=True))
            with self._lock:
                self._cache.update((t, known[t]) for t in missing)
                while len(self._cache) > self.limit:
                    self._cache.popitem(last=False)
        return np.stack([known[t] for t in texts])


_EMBEDDINGS = web.AppKey("analytics_embeddings", GapEmbeddings)


def _range(request: web.Request, offset_min: int) -> tuple[float | None, float | None]:
    """since/until as Unix times; a plain date is the viewer's day (``tz`` minutes east of UTC), until inclusive."""
    q = request.query
    bounds: list[float | None] = []
    for name in ("since", "until"):
        text = q.get(name, "")
        value = _date(text, name) if text else None
        if value is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            value -= offset_min * 60  # midnight where the viewer is
            if name == "until":
                value += 86400  # a plain date means "through the end of that day"
        bounds.append(value)
    since, until = bounds
    if since is not None and until is not None and until <= since:
        raise ApiError(400, "until: must be after since")
    return since, until


def _report(store: Any, since: float | None, until: float | None, offset_min: int,
            embed: analytics.Embed | None) -> dict[str, Any]:
    """Everything the dashboard shows (blocking: store reads and MiniLM run in a worker thread)."""
    analytics.backfill(store)
    rows = store.analytics_rows(since, until)
    summary = analytics.summarize(rows, store.latency_values(since, until), offset_min=offset_min)
    summary["kb_gaps"] = analytics.group_gaps(store.kb_gap_rows(since, until), embed)
    summary["rows"] = rows
    return summary


async def get_analytics(request: web.Request) -> web.Response:
    """GET /api/analytics: the dashboard's numbers for a date range, as JSON or CSV (audited)."""
    user = require(request, "viewer")
    st: Any = request.app[STATE]
    q = request.query
    offset = _int(q.get("tz"), "tz", 0, -14 * 60, 14 * 60)
    since, until = _range(request, offset)
    fmt, table = q.get("format", "json"), q.get("table", "calls")
    if fmt not in FORMATS:
        raise ApiError(400, f"format: one of {', '.join(FORMATS)}")
    if table not in TABLES:
        raise ApiError(400, f"table: one of {', '.join(TABLES)}")
    embed = request.app[_EMBEDDINGS] if st.engine is not None else None  # MiniLM is loaded when calls are taken
    loop = asyncio.get_running_loop()
    report = await loop.run_in_executor(None, _report, st.store, since, until, offset, embed)
    detail = {"since": since, "until": until, "via": request.get(VIA_KEY, "")}
    if fmt == "csv":
        await loop.run_in_executor(None, partial(st.users.audit, user.name, "export_analytics", table, **detail))
        text = {"calls": lambda: analytics.calls_csv(report["rows"]),
                "days": lambda: analytics.days_csv(report),
                "gaps": lambda: analytics.gaps_csv(report["kb_gaps"])}[table]()
        return web.Response(text=text, content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="analytics-{table}.csv"'})
    # The KB-gap examples are callers' words (redacted): who read them is audited, once a minute per user.
    await st.read_audit.record(user.name, "read_analytics", ["analytics"], **detail)
    report.pop("rows")
    report["range"] = {"since": since, "until": until, "tz": offset}
    return web.json_response(report)


# ---- new KB entries from the questions the KB could not answer ----------------------------------------
def _text(data: dict[str, Any], name: str, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise ApiError(400, f"the field {name!r} must be a string")
    value = " ".join(value.split())
    if required and not value:
        raise ApiError(400, f"the field {name!r} (a non-empty string) is required")
    if len(value) > _MAX_TEXT[name]:
        raise ApiError(413, f"the field {name!r} is at most {_MAX_TEXT[name]} characters")
    return value


def _strings(data: dict[str, Any], name: str, most: int, length: int) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"the field {name!r} must be a list of strings")
    if len(value) > most:
        raise ApiError(413, f"the field {name!r} holds at most {most} items")
    out = [" ".join(v.split()) for v in value]
    if any(len(v) > length for v in out):
        raise ApiError(413, f"each item of {name!r} is at most {length} characters")
    return [v for v in dict.fromkeys(out) if v]


def _slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:6])[:48].strip("-") or "question"


def write_entry(kb_dir: Path, question: str, answer: str, also: list[str], topic: str) -> tuple[str, str]:
    """Write a one-entry YAML document into the KB folder after the KB loader accepted it; (file name, entry id).

    Blocking (file I/O). The entry id and file name are new: an existing document is never replaced.
    """
    import yaml

    from dialog.errors import KnowledgeBaseError
    from dialog.kb import load_passages

    slug = _slug(question)
    digest = hashlib.sha256(f"{question}\n{answer}".encode()).hexdigest()[:6]
    entry_id = f"calls-{slug}-{digest}"
    try:
        taken = {p.id for p in load_passages(kb_dir)} if kb_dir.is_dir() else set()
    except KnowledgeBaseError:
        taken = set()  # a KB that does not load yet: the new document is still checked on its own below
    n = 2
    base = entry_id
    while entry_id in taken:
        entry_id, n = f"{base}-{n}", n + 1
    entry: dict[str, Any] = {"id": entry_id, "question": question}
    if also:
        entry["also"] = also
    entry["answer"] = answer
    text = "# Written from the console's analytics: a question callers asked that the KB could not answer.\n"
    text += yaml.safe_dump({"topic": topic, "entries": [entry]}, sort_keys=False, allow_unicode=True, width=100)
    name = f"from-calls-{entry_id[len('calls-'):]}.yaml"
    with tempfile.TemporaryDirectory(prefix="kb-check-") as tmp:
        (Path(tmp) / name).write_text(text, encoding="utf-8")
        try:
            passages = load_passages(Path(tmp))
        except KnowledgeBaseError as exc:
            raise ApiError(400, f"the knowledge base would not load this entry: {hide_paths(str(exc))}") from None
    if [p.id for p in passages] != [entry_id]:
        raise ApiError(400, "the knowledge base would not read this entry as one question and answer")
    kb_dir.mkdir(parents=True, exist_ok=True)
    path = kb_dir / name
    tmp_path = path.with_suffix(".yaml.tmp")
    tmp_path.write_text(text, encoding="utf-8")
    tmp_path.replace(path)
    return name, entry_id


async def add_entry(request: web.Request) -> web.Response:
    """POST /api/kb/entries: a new KB entry (question, answer, other phrasings) in a new file of the KB folder.

    ``covers`` lists the normalised questions (``norms`` of a KB-gap group) that the entry answers: they
    leave the dashboard's list of unanswered questions. The index rebuilds in the background.
    """
    user = require(request, "agent")
    st: Any = request.app[STATE]
    data = await _json_body(request)
    question, answer = _text(data, "question"), _text(data, "answer")
    topic = _text(data, "topic", required=False) or DEFAULT_TOPIC
    also = [a for a in _strings(data, "also", 20, _MAX_TEXT["question"]) if a != question]
    covers = _strings(data, "covers", 200, 400)
    loop = asyncio.get_running_loop()
    name, entry_id = await loop.run_in_executor(None, partial(write_entry, Path(st.kb_dir), question, answer, also,
                                                              topic))
    covered = await loop.run_in_executor(None, st.store.cover_kb_gaps, covers, entry_id)
    await loop.run_in_executor(None, partial(st.users.audit, user.name, "kb_write", name, entry=entry_id,
                                             from_gaps=covered))
    st.rebuild_kb()
    return web.json_response({"name": name, "id": entry_id, "covered": covered, "index": st.kb_status}, status=201)


async def _script(request: web.Request) -> web.Response:
    from importlib import resources

    body = resources.files("voice_agent.web").joinpath("analytics.js").read_bytes()
    return web.Response(body=body, content_type="application/javascript", charset="utf-8")


def add_analytics_routes(app: web.Application) -> None:
    """Register the analytics API, the KB-entry endpoint and the dashboard's script."""
    app[_EMBEDDINGS] = GapEmbeddings()
    app.router.add_get("/api/analytics", get_analytics)
    app.router.add_post("/api/kb/entries", add_entry)
    app.router.add_get("/console/analytics.js", _script)
