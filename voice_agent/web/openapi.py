"""The OpenAPI 3 document of the REST API (kept beside the routes in api.py; a test checks they match)."""

from __future__ import annotations

from typing import Any

from voice_agent import __version__


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERR = {"$ref": "#/components/responses/Error"}
_OBJ: dict[str, Any] = {"type": "object"}
_ID = {"name": "call_id", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
_JOB = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_DOC = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_SDP_IN = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["sdp"],
    "properties": {"sdp": {"type": "string"}, "type": {"type": "string", "enum": ["offer"]}}}}}}
# A caller's offer may carry the widget's signed customer reference (customers.reference_secret); unsigned or
# badly signed ones are ignored.
_OFFER_IN = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["sdp"],
    "properties": {"sdp": {"type": "string"}, "type": {"type": "string", "enum": ["offer"]},
                   "customer_ref": {"type": "string", "description": "<customer id>.<hex HMAC-SHA256 of the id>"}}}}}}
_SDP_OUT = _json({"type": "object", "properties": {"sdp": {"type": "string"}, "type": {"type": "string"},
                                                    "call_id": {"type": "string"}}}, "SDP answer")


def _op(summary: str, ok: dict[str, Any], *errors: int, params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, public: bool = False, ok_code: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {ok_code: ok, **{str(e): _ERR for e in errors}}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    if public:
        op["security"] = []
    return op


def document() -> dict[str, Any]:
    """The OpenAPI 3.0 document."""
    q = [{"name": n, "in": "query", "required": False, "schema": s} for n, s in [
        ("q", {"type": "string", "description": "words in the transcript: parts of words match, except when "
                                                "transcripts are encrypted at rest (a protection key is configured), "
                                                "where whole words are looked up in a keyed index (the answer's "
                                                "search_mode says which)"}),
        ("since", {"type": "string"}), ("until", {"type": "string"}),
        ("outcome", {"type": "string", "enum": ["resolved", "transferred", "abandoned", "transcribed", "failed"]}),
        ("sentiment", {"type": "string", "enum": ["positive", "neutral", "negative"]}),
        ("kind", {"type": "string"}), ("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
        ("offset", {"type": "integer", "minimum": 0})]]
    fmt = [{"name": "format", "in": "query", "required": False,
            "schema": {"type": "string", "enum": ["json", "srt", "vtt", "txt"]}}]
    live_action = {"post": _op("Act on a live call", _json(_OBJ), 401, 403, 404, params=[_ID])}
    return {
        "openapi": "3.0.3",
        "info": {"title": "voice-agent API", "version": __version__,
                 "description": "Calls, live calls, transcription jobs and the knowledge base. Authenticate with "
                                "`Authorization: Bearer <token>` (voice-agent users token NAME) or the console "
                                "session cookie plus the X-CSRF-Token header on state-changing requests."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"cookie": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "cookie": {"type": "apiKey", "in": "cookie", "name": "va_session"}},
            "responses": {"Error": _json({"type": "object", "required": ["error"],
                                          "properties": {"error": {"type": "string"}}}, "Error")},
        },
        "paths": {
            "/api/session": {
                # 403: an Origin other than this server's or http.allowed_origins; 415: not JSON (login CSRF)
                "post": _op("Sign in to the console", _json(_OBJ), 400, 401, 403, 413, 415, 429, public=True, body={
                    "required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["username", "password"],
                        "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}}}}),
                "get": _op("The signed-in user and CSRF token", _json(_OBJ), 401),
                "delete": _op("Sign out", _json(_OBJ), public=True),
            },
            "/api/webrtc/offer": {"post": _op("Start a browser call (SDP offer in, answer out)", _SDP_OUT,
                                              400, 429, 503, body=_OFFER_IN, public=True)},
            "/api/webrtc/config": {"get": _op("ICE servers for browser calls", _json({
                "type": "object", "properties": {"ice_servers": {"type": "array", "items": _OBJ}}}), public=True)},
            "/api/calls": {"get": _op("Search past calls", _json({"type": "object", "properties": {
                "calls": {"type": "array", "items": _OBJ}, "total": {"type": "integer"}}}), 400, 401, params=q)},
            "/api/calls/{call_id}": {
                "get": _op("A call's transcript, turns, timeline and events (audited)", _json(_OBJ), 401, 404,
                           params=[_ID]),
                "delete": _op("Delete a call (admin)", _json(_OBJ), 401, 403, 404, params=[_ID]),
            },
            "/api/calls/{call_id}/recording": {"get": _op(
                "The stereo recording (agent or admin; audited)",
                {"description": "WAV audio",
                 "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                401, 403, 404, params=[_ID])},
            "/api/calls/{call_id}/wrapup": {
                "get": _op("The agent's wrap-up: drafted from the call record, and the saved one (agent; audited)",
                           _json({"type": "object", "properties": {"draft": _OBJ, "saved": _OBJ}}), 401, 403, 404,
                           params=[_ID]),
                "put": _op("Save the agent's wrap-up with the call (agent; audited)", _json(_OBJ), 400, 401, 403,
                           404, params=[_ID], body={"required": True, "content": {"application/json": {"schema": {
                               "type": "object", "required": ["summary"],
                               "properties": {k: {"type": "string", "maxLength": 4000}
                                              for k in ("summary", "outcome", "follow_ups")}}}}}),
            },
            "/api/live": {"get": _op("Calls in progress", _json(_OBJ), 401)},
            "/api/live/{call_id}": {"get": _op("One live call with recent captions", _json(_OBJ), 401, 404,
                                               params=[_ID])},
            "/api/live/{call_id}/hangup": live_action,
            "/api/live/{call_id}/transfer": live_action,
            "/api/live/{call_id}/release": live_action,
            "/api/live/{call_id}/takeover": {"post": _op("A human agent joins the call (SDP offer in, answer out)",
                                                         _SDP_OUT, 400, 401, 403, 404, 409, params=[_ID],
                                                         body=_SDP_IN)},
            "/api/jobs": {
                "get": _op("Transcription jobs", _json(_OBJ), 401),
                "post": _op("Upload a recording to transcribe", _json(_OBJ, "Created"), 400, 401, 403, 413, 415,
                            ok_code="201", body={"required": True, "content": {"multipart/form-data": {"schema": {
                                "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}}),
            },
            "/api/jobs/{job_id}": {"get": _op("A job's status and progress", _json(_OBJ), 401, 404, params=[_JOB])},
            "/api/jobs/{job_id}/result": {"get": _op(
                "A finished job's transcript as JSON, SRT, VTT or text",
                {"description": "Transcript", "content": {"application/json": {"schema": _OBJ},
                                                          "text/vtt": {"schema": {"type": "string"}}}},
                400, 401, 404, 409, params=[_JOB, *fmt])},
            "/api/kb": {"get": _op("Knowledge base documents", _json(_OBJ), 401)},
            "/api/kb/{name}": {
                "get": _op("A document", _json(_OBJ), 400, 401, 404, params=[_DOC]),
                "put": _op("Create or replace a document (the index rebuilds)", _json(_OBJ), 400, 401, 403, 413,
                           params=[_DOC], body={"required": True, "content": {"application/json": {"schema": {
                               "type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}}}}),
                "delete": _op("Delete a document (admin)", _json(_OBJ), 400, 401, 403, 404, params=[_DOC]),
            },
            "/api/kb/entries": {"post": _op(
                "A new KB entry from a question the KB could not answer (checked by the KB loader; the index "
                "rebuilds)", _json(_OBJ, "Created"), 400, 401, 403, 413, ok_code="201", body={
                    "required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["question", "answer"],
                        "properties": {"question": {"type": "string"}, "answer": {"type": "string"},
                                       "topic": {"type": "string"},
                                       "also": {"type": "array", "items": {"type": "string"}},
                                       "covers": {"type": "array", "items": {"type": "string"}}}}}}})},
            "/api/analytics": {"get": _op(
                "Calls per hour and day, containment, transfer reasons, handle time, sentiment, latency, QA and the "
                "questions the KB could not answer, grouped (audited); CSV with format=csv",
                {"description": "Analytics", "content": {"application/json": {"schema": _OBJ},
                                                         "text/csv": {"schema": {"type": "string"}}}},
                400, 401, params=[{"name": n, "in": "query", "required": False, "schema": s} for n, s in [
                    ("since", {"type": "string"}), ("until", {"type": "string"}),
                    ("tz", {"type": "integer", "minimum": -840, "maximum": 840}),
                    ("format", {"type": "string", "enum": ["json", "csv"]}),
                    ("table", {"type": "string", "enum": ["calls", "days", "gaps"]})]])},
            "/api/users": {"get": _op("Console users (admin)", _json(_OBJ), 401, 403)},
            "/api/erasure": {"post": _op(
                "Erase one caller's (phone) or customer's data: calls, transcripts, recordings, uploads, jobs and "
                "analytics; answers with the receipt (admin, audited)", _json(_OBJ, "Erasure receipt"), 400, 401,
                403, body={"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"phone": {"type": "string"},
                                                     "customer_id": {"type": "string"}}}}}})},
            "/api/audit": {"get": _op("Audit log (admin)", _json(_OBJ), 400, 401, 403, params=[
                {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                                "maximum": 1000}},
                {"name": "target", "in": "query", "required": False, "schema": {"type": "string"}}])},
            "/api/openapi.json": {"get": _op("This document", _json(_OBJ), public=True)},
        },
    }
