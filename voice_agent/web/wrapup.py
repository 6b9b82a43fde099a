"""The human agent's wrap-up of a call: a draft from the call record, edited in the console, saved with the call.

GET /api/calls/{id}/wrapup gives the draft and what was saved; PUT saves the edited fields (agents, audited).
The wrap-up lives in the call's sealed details (encrypted at rest like the transcript), redacted as transcripts are.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from voice_agent.assist import clean_wrapup, draft_wrapup
from voice_agent.web.api import STATE, _call_or_404, _json_body
from voice_agent.web.security import VIA_KEY, ApiError, require


async def get_wrapup(request: web.Request) -> web.Response:
    """GET /api/calls/{id}/wrapup: the drafted wrap-up (summary, outcome, follow-ups) and the saved one, if any."""
    user = require(request, "agent")
    st: Any = request.app[STATE]
    rec = _call_or_404(request)

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return st.store.turns(rec.id), st.store.events(rec.id)

    turns, events = await asyncio.get_running_loop().run_in_executor(None, read)
    st.users.audit(user.name, "read_wrapup", rec.id, via=request.get(VIA_KEY, ""))
    draft = draft_wrapup(rec.outcome, rec.meta, turns, events)
    return web.json_response({"id": rec.id, "draft": st.privacy.record(draft), "saved": rec.meta.get("wrapup")})


async def put_wrapup(request: web.Request) -> web.Response:
    """PUT /api/calls/{id}/wrapup: save the agent's wrap-up with the call (audited)."""
    user = require(request, "agent")
    st: Any = request.app[STATE]
    rec = _call_or_404(request)
    try:
        wrapup = clean_wrapup(await _json_body(request))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if not wrapup["summary"]:
        raise ApiError(400, "the wrap-up needs a summary")
    if st.privacy.store:  # the agent's words are redacted like the transcript they sit beside
        wrapup = {k: st.privacy.text(v) for k, v in wrapup.items()}
    saved = await asyncio.get_running_loop().run_in_executor(None, st.store.save_wrapup, rec.id, wrapup, user.name)
    st.users.audit(user.name, "save_wrapup", rec.id, via=request.get(VIA_KEY, ""))
    return web.json_response({"id": rec.id, "saved": saved})


def add_wrapup_routes(app: web.Application) -> None:
    """Register the wrap-up routes."""
    app.router.add_get("/api/calls/{call_id}/wrapup", get_wrapup)
    app.router.add_put("/api/calls/{call_id}/wrapup", put_wrapup)
