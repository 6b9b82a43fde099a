"""REST API handlers under /api/ (JSON in, JSON out; errors as JSON with a clear message)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from asr.formats import render
from telephony.webrtc import WebRtcError
from voice_agent.auth import User, Users
from voice_agent.store import StoreError
from voice_agent.store.calls import customer_of
from voice_agent.web.jobs import JOB_FORMATS
from voice_agent.web.live import AlreadyTaken, LinesBusy
from voice_agent.web.protection import add_protection_routes, open_upload, playable_name, recording_response
from voice_agent.web.queries import CallFilter, delete_call, search_calls
from voice_agent.web.security import (
    COOKIE,
    USER_KEY,
    VIA_KEY,
    ApiError,
    client_address,
    is_https,
    origin_allowed,
    require,
)

STATE = web.AppKey("state", object)
_OUTCOMES = {"resolved", "transferred", "abandoned", "transcribed", "failed"}
_SENTIMENTS = {"positive", "neutral", "negative"}
_DOC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,80}\.(md|yaml|yml)")  # fullmatch: no trailing newline
# An absolute server path inside a message (KB folder, store, uploads); viewers see only its last part.
_ABS_PATH = re.compile(r"(?<![\w:/.])(?:/[^\s/'\"`:,;()\[\]]+)+/?")


def _state(request: web.Request) -> Any:
    return request.app[STATE]


JSON_BYTES = 64 * 1024  # SDP offers, small commands
SIGNIN_BYTES = 4096
KB_BYTES = 4 * 1024 * 1024  # a 1 MB document, escaped


async def _json_body(request: web.Request, max_bytes: int = JSON_BYTES) -> dict[str, Any]:
    """The JSON object in the body, read only up to max_bytes (413 past that, before any parsing)."""
    too_big = ApiError(413, f"the request body is larger than {max_bytes} bytes")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > max_bytes:
            raise too_big
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def hide_paths(text: str) -> str:
    """A message without absolute server paths: each becomes its last part ("/srv/va/uploads/x.wav" -> "x.wav")."""
    return _ABS_PATH.sub(lambda m: Path(m.group(0).rstrip("/")).name or "/", text)


def _public_source(source: str) -> str:
    """Where a call came from, without the server's folders (uploads are named by their file only)."""
    return Path(source).name if source.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", source) else source


def _public_job(job: dict[str, Any]) -> dict[str, Any]:
    return {**job, "error": hide_paths(job["error"])} if isinstance(job.get("error"), str) else job


def safe_filename(name: str | None, default: str = "upload.wav") -> str:
    """An uploaded file's name as shown and stored: no folders, no control characters (CRLF), no quotes."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch if ch.isprintable() and ch not in '"<>|*?:;' else "_" for ch in name).strip(" .")
    return name[:120] or default


def _str_field(data: dict[str, Any], name: str, max_len: int = 100_000) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"the field {name!r} (a non-empty string) is required")
    if len(value) > max_len:
        raise ApiError(413, f"the field {name!r} is too long")
    return value


# ---- sessions (console sign-in) ---------------------------------------------------------
async def sign_in(request: web.Request) -> web.Response:
    """POST /api/session: sign in with a name and password; sets the session cookie."""
    st = _state(request)
    # Login CSRF: a cross-site form can post text/plain but not application/json without a
    # preflight, and a browser names the page's origin, which must be this site or a configured one.
    if request.content_type != "application/json":
        raise ApiError(415, "sign in with a JSON body (Content-Type: application/json)")
    if not origin_allowed(request):
        raise ApiError(403, "sign-in from another site is refused (the Origin is not this server's)")
    data = await _json_body(request, SIGNIN_BYTES)
    name, password = _str_field(data, "username", 64), _str_field(data, "password", 1024)
    address = client_address(request)
    wait = st.signin_throttle.retry_after(address, name)
    if wait:
        raise web.HTTPTooManyRequests(text=f"too many failed sign-ins; try again in {wait} s",
                                      headers={"Retry-After": str(wait)})
    user = await asyncio.get_running_loop().run_in_executor(None, st.users.authenticate, name, password)
    if user is None:
        st.signin_throttle.failed(address, name)
        st.users.audit(name, "sign_in_failed", address=address)
        raise ApiError(401, "wrong user name or password")
    st.signin_throttle.succeeded(address, name)
    cookie = st.signer.issue(user)
    st.users.audit(user.name, "sign_in", address=address)
    response = web.json_response({"user": user.name, "role": user.role, "csrf": st.signer.csrf(cookie)})
    # Behind a TLS proxy the connection here is plain HTTP; the trusted proxy's header says https.
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", secure=is_https(request), path="/",
                        max_age=int(st.signer.max_age_s))
    return response


async def whoami(request: web.Request) -> web.Response:
    """GET /api/session: the signed-in user and the CSRF token for state-changing requests."""
    user = require(request)
    cookie = request.cookies.get(COOKIE, "")
    csrf = _state(request).signer.csrf(cookie) if cookie else None
    return web.json_response({"user": user.name, "role": user.role, "csrf": csrf})


async def sign_out(request: web.Request) -> web.Response:
    """DELETE /api/session: sign out."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        _state(request).signer.revoke(cookie)
    response = web.json_response({"signed_out": True})
    response.del_cookie(COOKIE, path="/")
    return response


# ---- calls --------------------------------------------------------------------------------
def _date(value: str, name: str) -> float:
    try:
        if re.fullmatch(r"\d+(\.\d+)?", value):
            return float(value)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name}: use a date like 2026-05-01 or a Unix time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise ApiError(400, f"{name}: expected a whole number") from None
    if not low <= n <= high:
        raise ApiError(400, f"{name}: expected {low}..{high}")
    return n


async def list_calls(request: web.Request) -> web.Response:
    """GET /api/calls: past calls, searchable by text, date, outcome and sentiment (previews and searches audited)."""
    user = require(request, "viewer")
    q = request.query
    outcome, sentiment = q.get("outcome", ""), q.get("sentiment", "")
    if outcome and outcome not in _OUTCOMES:
        raise ApiError(400, f"outcome: one of {', '.join(sorted(_OUTCOMES))}")
    if sentiment and sentiment not in _SENTIMENTS:
        raise ApiError(400, f"sentiment: one of {', '.join(sorted(_SENTIMENTS))}")
    f = CallFilter(q=q.get("q", "")[:200], outcome=outcome, sentiment=sentiment, kind=q.get("kind", "")[:40],
                   since=_date(q["since"], "since") if q.get("since") else None,
                   until=_date(q["until"], "until") if q.get("until") else None,
                   limit=_int(q.get("limit"), "limit", 50, 1, 500), offset=_int(q.get("offset"), "offset", 0, 0, 10**9))
    if f.until is not None and q.get("until") and re.fullmatch(r"\d{4}-\d{2}-\d{2}", q["until"]):
        f.until += 86400  # a plain date means "through the end of that day"
    st = _state(request)
    calls, total = await asyncio.get_running_loop().run_in_executor(None, search_calls, st.store, f)
    via = request.get(VIA_KEY, "")
    if f.q.strip():
        # A text search reads every transcript it matches: who searched for what is audited.
        query = st.privacy.text(f.q.strip())
        await st.read_audit.record(user.name, "search_transcripts", [f"q:{query}"], q=query, matches=total, via=via)
    # Each preview shows the opening of a transcript: one row per call and user per minute.
    await st.read_audit.record(user.name, "read_preview", [c["id"] for c in calls if c.get("preview")], via=via)
    return web.json_response({"calls": [{**c, "source": _public_source(str(c.get("source") or ""))} for c in calls],
                              "total": total,
                              # encrypted transcripts are searched by whole words (a keyed index), not parts
                              "search_mode": "whole_words" if st.store.cipher is not None else "substring"})


def _call_or_404(request: web.Request) -> Any:
    call_id = request.match_info["call_id"]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", call_id):
        raise ApiError(404, f"no call with id {call_id!r}")
    try:
        rec = _state(request).store.get_call(call_id)
    except StoreError:
        rec = None
    # The store accepts unique id prefixes (a CLI convenience); over HTTP, where a DELETE could
    # hit a call by its first letter, only the exact id names a call.
    if rec is None or rec.id != call_id:
        raise ApiError(404, f"no call with id {call_id!r}")
    return rec


async def get_call(request: web.Request) -> web.Response:
    """GET /api/calls/{id}: the transcript, turns with latency, sentiment timeline and events (audited)."""
    user = require(request, "viewer")
    st = _state(request)
    rec = _call_or_404(request)
    st.users.audit(user.name, "read_transcript", rec.id, via=request.get(VIA_KEY, ""))
    meta = dict(rec.meta)
    recording = meta.pop("recording", None) or (rec.source if rec.kind == "transcription" else None)
    body = {"id": rec.id, "kind": rec.kind, "source": _public_source(rec.source), "started_at": rec.started_at,
            "ended_at": rec.ended_at, "duration": rec.duration, "outcome": rec.outcome, "language": rec.language,
            "model": rec.model, "text": rec.text, "meta": meta,
            "segments": st.store.segments(rec.id), "turns": st.store.turns(rec.id), "events": st.store.events(rec.id),
            "sentiment_timeline": meta.get("sentiment_timeline", []),
            "analytics": st.store.call_analytics(rec.id),  # outcome, talk/silence/overlap, QA checks (or None)
            # the linked customer as the directory has them now (name, plan, tickets, last calls), or None
            "customer": await st.callers.card_for(customer_of(meta)) if st.callers is not None else None,
            "recording_url": f"/api/calls/{rec.id}/recording" if recording and Path(recording).is_file() else None}
    return web.json_response(body)


async def get_recording(request: web.Request) -> web.StreamResponse:
    """GET /api/calls/{id}/recording: the stereo WAV (caller left, agent right); agents and admins only, audited."""
    user = require(request, "agent")
    st = _state(request)
    rec = _call_or_404(request)
    path = rec.meta.get("recording") or (rec.source if rec.kind == "transcription" else None)
    if not path or not Path(path).is_file():
        raise ApiError(404, f"call {rec.id} has no recording on this server")
    st.users.audit(user.name, "read_recording", rec.id, via=request.get(VIA_KEY, ""))
    # Sealed at rest (a key is configured): decrypted as it streams, never written anywhere in clear.
    return await recording_response(request, Path(path), playable_name(rec.id, Path(path)), st.store.cipher)


async def remove_call(request: web.Request) -> web.Response:
    """DELETE /api/calls/{id}: delete a call and its recording (admins only, audited)."""
    user = require(request, "admin")
    st = _state(request)
    rec = _call_or_404(request)
    recording = rec.meta.get("recording")
    delete_call(st.store, rec.id)
    if recording and Path(recording).is_file() and Path(recording).resolve().is_relative_to(st.recordings.resolve()):
        Path(recording).unlink()
    st.users.audit(user.name, "delete_call", rec.id)
    return web.json_response({"deleted": rec.id})


# ---- live calls ---------------------------------------------------------------------------
async def offer(request: web.Request) -> web.Response:
    """POST /api/webrtc/offer: a caller's SDP offer in, the answer out (public, rate-limited)."""
    st = _state(request)
    address = client_address(request)
    if not st.offer_limit.allow(address):
        raise web.HTTPTooManyRequests(text="too many calls from this address; wait a minute",
                                      headers={"Retry-After": str(st.offer_limit.retry_after(address))})
    data = await _json_body(request)
    sdp = _str_field(data, "sdp", 20_000)
    kind = data.get("type", "offer")
    if st.live is None:
        raise ApiError(503, "browser calls are not enabled on this server")
    try:
        ref = data.get("customer_ref")  # the widget's signed customer reference; checked, never logged
        call, answer, answer_type = await st.live.answer(sdp, str(kind), address,
                                                         ref if isinstance(ref, str) else None)
    except LinesBusy as exc:
        raise ApiError(503, str(exc)) from None
    except WebRtcError as exc:
        raise ApiError(400, str(exc)) from None
    return web.json_response({"sdp": answer, "type": answer_type, "call_id": call.id})


async def webrtc_config(request: web.Request) -> web.Response:
    """GET /api/webrtc/config: the ICE servers the caller page should use (public)."""
    servers = list(_state(request).config.http.ice_servers)
    return web.json_response({"ice_servers": [{"urls": servers}] if servers else []})


def _live_or_404(request: web.Request) -> Any:
    st = _state(request)
    call = st.live.get(request.match_info["call_id"]) if st.live is not None else None
    if call is None:
        raise ApiError(404, "no live call with that id (it may have ended)")
    return call


async def live_calls(request: web.Request) -> web.Response:
    """GET /api/live: calls in progress with their last caption (audited, one row per user and call a minute)."""
    user = require(request, "viewer")
    st = _state(request)
    calls = [c.summary() for c in st.live.calls.values()] if st.live is not None else []
    await st.read_audit.record(user.name, "read_live", [c["id"] for c in calls if c.get("last_caption")],
                               via=request.get(VIA_KEY, ""))
    return web.json_response({"calls": calls})


async def live_call(request: web.Request) -> web.Response:
    """GET /api/live/{id}: one live call with its recent events (captions), audited."""
    user = require(request, "viewer")
    call = _live_or_404(request)
    st = _state(request)
    # The console polls every second: one audit row per person and call a minute says who watched it.
    await st.read_audit.record(user.name, "read_live", [call.id], via=request.get(VIA_KEY, ""))
    return web.json_response({**call.summary(), "events": call.recent_events(), "assist": call.assist_view()})


async def live_hangup(request: web.Request) -> web.Response:
    """POST /api/live/{id}/hangup: end a live call."""
    user = require(request, "agent")
    call = _live_or_404(request)
    call.hang_up(f"ended by {user.name}")
    _state(request).users.audit(user.name, "hangup", call.id)
    return web.json_response({"id": call.id, "status": "ending"})


async def live_transfer(request: web.Request) -> web.Response:
    """POST /api/live/{id}/transfer: hold the caller for a human agent (the assistant goes quiet)."""
    user = require(request, "agent")
    call = _live_or_404(request)
    call.transfer(f"requested by {user.name}")
    _state(request).users.audit(user.name, "transfer", call.id)
    return web.json_response({"id": call.id, "status": call.status})


async def live_takeover(request: web.Request) -> web.Response:
    """POST /api/live/{id}/takeover: the agent's SDP offer in, the answer out; the agent talks to the caller."""
    user = require(request, "agent")
    st = _state(request)
    call = _live_or_404(request)
    data = await _json_body(request)
    sdp = _str_field(data, "sdp", 20_000)
    try:
        answer, answer_type = await st.live.take_over(call, sdp, str(data.get("type", "offer")), user.name)
    except AlreadyTaken as exc:
        raise ApiError(409, str(exc)) from None
    except WebRtcError as exc:
        raise ApiError(400, str(exc)) from None
    st.users.audit(user.name, "takeover", call.id)
    return web.json_response({"sdp": answer, "type": answer_type, "call_id": call.id})


async def live_release(request: web.Request) -> web.Response:
    """POST /api/live/{id}/release: the human agent hands the call back to the assistant."""
    user = require(request, "agent")
    call = _live_or_404(request)
    call.release()
    _state(request).users.audit(user.name, "release", call.id)
    return web.json_response({"id": call.id, "status": call.status})


# ---- transcription jobs ----------------------------------------------------------------
async def create_job(request: web.Request) -> web.Response:
    """POST /api/jobs: upload a recording (multipart field "file") to transcribe."""
    user = require(request, "agent")
    st = _state(request)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "upload the recording as multipart/form-data with a field named 'file'")
    if "boundary=" not in request.headers.get("Content-Type", ""):
        raise ApiError(400, "a multipart upload needs a boundary in its Content-Type")
    try:
        reader = await request.multipart()
        part = await reader.next()
        while part is not None and getattr(part, "name", None) != "file":
            part = await reader.next()
    except (ValueError, AssertionError, KeyError) as exc:
        raise ApiError(400, f"malformed multipart upload: {exc or type(exc).__name__}") from None
    if part is None or not hasattr(part, "read_chunk"):
        raise ApiError(400, "no field named 'file' in the upload")
    from asr.audio import SUPPORTED_EXTENSIONS

    filename = safe_filename(getattr(part, "filename", None))
    suffix = Path(filename).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        known = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise ApiError(415, f"{filename}: not an audio file this server reads ({known})")
    st.uploads.mkdir(parents=True, exist_ok=True)
    dest = st.uploads / f"{uuid.uuid4().hex[:12]}{suffix}"
    size, limit = 0, st.config.http.max_upload_mb * 1024 * 1024
    with open_upload(dest, st.store.cipher) as out:  # sealed as it arrives when a key is configured
        while chunk := await part.read_chunk(1 << 16):
            size += len(chunk)
            if size > limit:
                out.close()
                dest.unlink()
                raise ApiError(413, f"the upload is larger than {st.config.http.max_upload_mb} MB")
            out.write(chunk)
    if size == 0:
        dest.unlink()
        raise ApiError(400, "the uploaded file is empty")
    job = st.jobs.submit(filename, dest, user.name)
    st.users.audit(user.name, "create_job", job["id"], filename=filename)
    return web.json_response(job, status=201)


async def list_jobs(request: web.Request) -> web.Response:
    """GET /api/jobs: recent transcription jobs with progress."""
    require(request, "viewer")
    return web.json_response({"jobs": [_public_job(j) for j in _state(request).jobs.recent()]})


async def get_job(request: web.Request) -> web.Response:
    """GET /api/jobs/{id}: one job's status and progress."""
    require(request, "viewer")
    job = _state(request).jobs.get(request.match_info["job_id"])
    if job is None:
        raise ApiError(404, "no such job")
    return web.json_response(_public_job(job))


async def job_result(request: web.Request) -> web.Response:
    """GET /api/jobs/{id}/result?format=json|srt|vtt|txt: the transcript (audited)."""
    user = require(request, "viewer")
    st = _state(request)
    job_id = request.match_info["job_id"]
    fmt = request.query.get("format", "json")
    if fmt not in JOB_FORMATS:
        raise ApiError(400, f"format: one of {', '.join(JOB_FORMATS)}")
    job = st.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "no such job")
    data = st.jobs.result(job_id)
    if data is None:
        raise ApiError(409, f"job {job_id} is {job['status']}: no transcript yet")
    st.users.audit(user.name, "read_transcript", job.get("call_id") or job_id, job=job_id, format=fmt)
    text = render(data, fmt)
    stem = Path(safe_filename(job["filename"])).stem or job_id
    types = {"json": "application/json", "srt": "application/x-subrip", "vtt": "text/vtt", "txt": "text/plain"}
    return web.Response(text=text, content_type=types[fmt], charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})


# ---- knowledge base ---------------------------------------------------------------------
def _doc_path(request: web.Request, name: str) -> Path:
    if not _DOC_NAME.fullmatch(name) or "/" in name or ".." in name:
        raise ApiError(400, "a document name is letters, digits, spaces, '_', '-', '.' ending in .md or .yaml")
    return Path(_state(request).kb_dir) / name


async def list_kb(request: web.Request) -> web.Response:
    """GET /api/kb: the knowledge base documents."""
    require(request, "viewer")
    kb = Path(_state(request).kb_dir)
    docs = []
    if kb.is_dir():
        for p in sorted(kb.iterdir()):
            # The index skips READMEs (they describe the folder), so the list does too.
            if p.is_file() and p.suffix.lower() in (".md", ".yaml", ".yml") and not p.name.upper().startswith("README"):
                docs.append({"name": p.name, "size": p.stat().st_size, "modified": p.stat().st_mtime})
    index = dict(_state(request).kb_status)
    if isinstance(index.get("error"), str):
        index["error"] = hide_paths(index["error"])
    # The folder by name only: its place on the server is no viewer's business.
    return web.json_response({"documents": docs, "folder": kb.name, "index": index})


async def get_kb(request: web.Request) -> web.Response:
    """GET /api/kb/{name}: one document's text."""
    require(request, "viewer")
    path = _doc_path(request, request.match_info["name"])
    if not path.is_file():
        raise ApiError(404, f"no document {path.name}")
    return web.json_response({"name": path.name, "text": path.read_text(encoding="utf-8")})


async def put_kb(request: web.Request) -> web.Response:
    """PUT /api/kb/{name}: create or replace a document; the index rebuilds in the background."""
    user = require(request, "agent")
    st = _state(request)
    path = _doc_path(request, request.match_info["name"])
    data = await _json_body(request, KB_BYTES)
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "the field 'text' (the document, non-empty) is required")
    if len(text) > 1_000_000:
        raise ApiError(413, "a document is at most 1 MB")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ApiError(400, f"not valid YAML: {str(exc).splitlines()[0]}") from None
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    st.users.audit(user.name, "kb_write", path.name)
    st.rebuild_kb()
    return web.json_response({"name": path.name, "created": created, "index": st.kb_status},
                             status=201 if created else 200)


async def delete_kb(request: web.Request) -> web.Response:
    """DELETE /api/kb/{name}: remove a document (admins only)."""
    user = require(request, "admin")
    st = _state(request)
    path = _doc_path(request, request.match_info["name"])
    if not path.is_file():
        raise ApiError(404, f"no document {path.name}")
    path.unlink()
    st.users.audit(user.name, "kb_delete", path.name)
    st.rebuild_kb()
    return web.json_response({"deleted": path.name, "index": st.kb_status})


# ---- users and audit ----------------------------------------------------------------------
async def list_users(request: web.Request) -> web.Response:
    """GET /api/users: console users (admins only)."""
    require(request, "admin")
    users: Users = _state(request).users
    return web.json_response({"users": users.all()})


async def audit_log(request: web.Request) -> web.Response:
    """GET /api/audit: recent audit rows, optionally for one call (admins only)."""
    require(request, "admin")
    q = request.query
    rows = _state(request).users.audit_rows(_int(q.get("limit"), "limit", 100, 1, 1000), q.get("target") or None)
    return web.json_response({"audit": rows})


async def openapi(request: web.Request) -> web.Response:
    """GET /api/openapi.json: the OpenAPI 3 document of this API."""
    from voice_agent.web.openapi import document

    return web.json_response(document())


def whoever(request: web.Request) -> User | None:
    """The signed-in user or token holder, if any."""
    return request.get(USER_KEY)


def add_routes(app: web.Application) -> None:
    """Register every API route."""
    r = app.router
    r.add_get("/api/openapi.json", openapi)
    r.add_post("/api/session", sign_in)
    r.add_get("/api/session", whoami)
    r.add_delete("/api/session", sign_out)
    r.add_post("/api/webrtc/offer", offer)
    r.add_get("/api/webrtc/config", webrtc_config)
    r.add_get("/api/calls", list_calls)
    r.add_get("/api/calls/{call_id}", get_call)
    r.add_delete("/api/calls/{call_id}", remove_call)
    r.add_get("/api/calls/{call_id}/recording", get_recording)
    r.add_get("/api/live", live_calls)
    r.add_get("/api/live/{call_id}", live_call)
    r.add_post("/api/live/{call_id}/hangup", live_hangup)
    r.add_post("/api/live/{call_id}/transfer", live_transfer)
    r.add_post("/api/live/{call_id}/takeover", live_takeover)
    r.add_post("/api/live/{call_id}/release", live_release)
    r.add_get("/api/jobs", list_jobs)
    r.add_post("/api/jobs", create_job)
    r.add_get("/api/jobs/{job_id}", get_job)
    r.add_get("/api/jobs/{job_id}/result", job_result)
    r.add_get("/api/kb", list_kb)
    r.add_get("/api/kb/{name}", get_kb)
    r.add_put("/api/kb/{name}", put_kb)
    r.add_delete("/api/kb/{name}", delete_kb)
    r.add_get("/api/users", list_users)
    r.add_get("/api/audit", audit_log)
    add_protection_routes(app)
    from voice_agent.web.analytics import add_analytics_routes  # imports this module's helpers

    add_analytics_routes(app)
    from voice_agent.web.wrapup import add_wrapup_routes  # the agent's wrap-up after a call

    add_wrapup_routes(app)
    from voice_agent.web.forward import install  # live calls held by another worker of a cluster

    install(app, app[STATE])
