"""Live calls across workers: the console and API on any worker reach the worker that holds a call.

In a cluster (``http.cluster_secret`` set, the same on every worker) each browser call is recorded
in the shared store as active with its worker's internal HTTP address (``http.worker_url``).
A live-call request (``/api/live/{id}`` and its hangup, transfer, takeover, release) for a call
that another worker holds is sent there with the caller's own credentials (cookie or token, CSRF
header) plus the cluster secret header; that worker authenticates, authorises and audits it as
if it had come directly, and never forwards it again. ``GET /api/live`` lists the calls of every
worker. The worker addresses come from the store, written by the workers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from voice_agent.logs import log_event
from voice_agent.web.security import USER_KEY, error

log = logging.getLogger("voice_agent.web.forward")

CLUSTER_HEADER = "X-Voice-Agent-Cluster"
PASSED_HEADERS = ("Authorization", "Cookie", "X-CSRF-Token", "Content-Type", "Origin", "Referer")
LIVE_PATH = re.compile(r"^/api/live/([A-Za-z0-9_-]{1,64})(?:/(?:hangup|transfer|takeover|release))?$")
TIMEOUT_S = 10.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Forwarder:
    """This worker's view of the cluster: who it is, the shared secret, and the store."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.secret: str = state.config.http.cluster_secret
        self.worker_url: str = state.config.http.worker_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def on(self) -> bool:
        """Whether this worker is part of a cluster."""
        return bool(self.secret)

    def from_peer(self, request: web.Request) -> bool | None:
        """True for a request forwarded by another worker, False for a bad secret, None otherwise."""
        given = request.headers.get(CLUSTER_HEADER)
        if given is None:
            return None
        return bool(self.secret) and hmac.compare_digest(given.encode(), self.secret.encode())

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def owner(self, call_id: str) -> str | None:
        """The HTTP address of the other worker holding this live call (browser or phone), if any."""
        for row in await self._run(self.state.store.active_calls):
            if row["id"] == call_id:
                worker = console_of(row)
                return worker if worker.startswith("http") and worker != self.worker_url else None
        return None

    def session(self) -> aiohttp.ClientSession:
        """One HTTP client for the forwarded requests."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        return self._session

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = {h: request.headers[h] for h in PASSED_HEADERS if h in request.headers}
        headers[CLUSTER_HEADER] = self.secret
        return headers

    async def forward(self, request: web.Request, worker: str) -> web.Response:
        """Send the request to ``worker`` and hand its answer back unchanged."""
        body = await request.read()
        try:
            async with self.session().request(request.method, worker + request.path_qs, data=body or None,
                                              headers=self._headers(request), allow_redirects=False) as resp:
                data = await resp.read()
                log_event(log, "live_forwarded", method=request.method, path=request.path, worker=worker,
                          status=resp.status)
                return web.Response(status=resp.status, body=data,
                                    content_type=resp.content_type or "application/json")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log_event(log, "live_forward_failed", logging.WARNING, path=request.path, worker=worker,
                      error=f"{type(exc).__name__}: {exc}")
            return error(502, f"the worker holding this call ({worker}) does not answer; try again")

    async def remote_calls(self, request: web.Request) -> list[dict[str, Any]]:
        """Summaries of the live browser calls other workers hold (their own /api/live)."""
        rows = await self._run(self.state.store.active_calls)
        workers = sorted({console_of(r) for r in rows if console_of(r).startswith("http")} - {self.worker_url})

        async def one(worker: str) -> list[dict[str, Any]]:
            try:
                async with self.session().get(worker + "/api/live", headers=self._headers(request)) as resp:
                    if resp.status != 200:
                        raise aiohttp.ClientError(f"status {resp.status}")
                    calls = (await resp.json()).get("calls", [])
                return [{**c, "worker": worker} for c in calls if isinstance(c, dict)]
            except (aiohttp.ClientError, TimeoutError, ValueError):
                # Unreachable (e.g. just killed): what the store knows.
                return [{"id": r["id"], "remote": r["source"], "started_at": r["started_at"], "status": "unknown",
                         "worker": worker} for r in rows if console_of(r) == worker]

        found = await asyncio.gather(*(one(w) for w in workers))
        return [c for calls in found for c in calls]

    # ---- this worker's calls in the store ----------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def register(self, call_id: str, remote: str) -> None:
        """Record a new browser call of this worker as active (its worker address with it)."""
        store = self.state.store
        try:
            await self._run(lambda: store.start_call(call_id, "webrtc", f"browser {remote}", worker=self.worker_url))
        except Exception as exc:  # the call goes on; only other workers will not see it
            log_event(log, "live_register_failed", logging.WARNING, call_id=call_id, error=str(exc))
            return
        live = self.state.live
        if live is None or live.get(call_id) is None:
            await self.unregister(call_id)  # it ended while being registered

    async def unregister(self, call_id: str) -> None:
        """A call that ended without being saved (too short) leaves no active row behind."""
        store = self.state.store

        def work() -> None:
            if any(r["id"] == call_id for r in store.active_calls("webrtc")):
                store.delete_call(call_id)

        try:
            await self._run(work)
        except Exception as exc:
            log_event(log, "live_unregister_failed", logging.WARNING, call_id=call_id, error=str(exc))

    async def watch_finished(self) -> None:
        """Clean up after each finished browser call of this worker."""
        live = self.state.live
        if live is None:
            return
        while True:
            call_id = await live.finished.get()
            await self.unregister(call_id)

    async def start(self, app: web.Application) -> None:
        """On startup: close the calls this worker left active when it was killed, watch call ends."""
        if not self.on:
            return
        if not self.worker_url:
            raise web.HTTPInternalServerError(text="http.cluster_secret needs http.worker_url")
        recovered = await self._run(self.state.store.recover_calls, self.worker_url)
        for cid in recovered:
            log_event(log, "call_recovered", logging.WARNING, call_id=cid, worker=self.worker_url)
        self._spawn(self.watch_finished())

    async def close(self, app: web.Application) -> None:
        """On cleanup."""
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()


def console_of(row: dict[str, Any]) -> str:
    """The HTTP address that answers live-call requests for a stored active call: a browser call's worker, or
    the console a phone call's worker (a SIP address) named when it stored the call."""
    return str(row.get("console") or row.get("worker") or "")


def middleware(fwd: Forwarder) -> Any:
    """Forward live-call requests for calls held elsewhere; answer forwarded ones here."""

    @web.middleware
    async def forward_live(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = fwd.from_peer(request)
        if peer is False:
            return error(403, f"wrong {CLUSTER_HEADER} header")
        if peer or not fwd.on or not request.path.startswith("/api/"):
            return await handler(request)  # forwarded requests are answered here, never sent on
        if request.path == "/api/webrtc/offer" and request.method == "POST":
            response = await handler(request)
            if isinstance(response, web.Response) and response.status == 200 and response.body:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    call_id = json.loads(bytes(response.body))["call_id"]  # type: ignore[arg-type]
                    fwd._spawn(fwd.register(str(call_id), request.remote or ""))
            return response
        if request.path == "/api/live" and request.method == "GET":
            response = await handler(request)
            if isinstance(response, web.Response) and response.status == 200 and response.body:
                data = json.loads(bytes(response.body))  # type: ignore[arg-type]
                mine = [{**c, "worker": fwd.worker_url} for c in data.get("calls", [])]
                return web.json_response({"calls": mine + await fwd.remote_calls(request)})
            return response
        match = LIVE_PATH.match(request.path)
        if match is None or request.get(USER_KEY) is None:
            return await handler(request)  # not a live call, or not signed in: the handler says so
        live = fwd.state.live
        if live is not None and live.get(match.group(1)) is not None:
            return await handler(request)
        worker = await fwd.owner(match.group(1))
        if worker is None:
            return await handler(request)  # 404 from the handler
        return await fwd.forward(request, worker)

    return forward_live


def install(app: web.Application, state: Any) -> None:
    """Add the forwarding middleware and its startup/cleanup to the app."""
    fwd = Forwarder(state)
    app.middlewares.append(middleware(fwd))
    app.on_startup.append(fwd.start)
    app.on_cleanup.append(fwd.close)
