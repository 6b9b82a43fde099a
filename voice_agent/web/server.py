"""The web front end: browser calls over WebRTC, the support console and the REST API (aiohttp).

``WebFrontend`` is started and stopped by ``voice-agent serve`` next to the SIP
front end; it binds 127.0.0.1:8080 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from importlib import resources
from typing import Any

from aiohttp import web

from telephony.webrtc import allow_loopback_candidates
from voice_agent.auth import SessionSigner, Users, load_secret
from voice_agent.config import Config, ConfigError
from voice_agent.logs import log_event
from voice_agent.privacy import Privacy
from voice_agent.store import CallStore
from voice_agent.web.api import STATE, add_routes
from voice_agent.web.jobs import JobRunner
from voice_agent.web.live import LiveCalls
from voice_agent.web.reads import ReadAudit
from voice_agent.web.security import (
    PROXIES,
    Proxies,
    RateLimit,
    SigninThrottle,
    json_errors,
    make_identity,
    security_headers,
)

log = logging.getLogger("voice_agent.web")

PAGES = {"/": ("index.html", "text/html"), "/console": ("console.html", "text/html")}
ASSETS = {"caller.js": "application/javascript", "console.js": "application/javascript",
          "style.css": "text/css", "widget.js": "application/javascript", "common.js": "application/javascript",
          "assist.js": "application/javascript"}


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:8080) into its parts."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"http.listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class WebState:
    """What every handler needs: config, store, users, live calls, jobs, the knowledge base."""

    def __init__(self, config: Config, store: CallStore, engine: Any, live: LiveCalls | None,
                 jobs: JobRunner) -> None:
        from dialog import DialogOptions

        self.config = config
        self.store = store
        self.engine = engine
        self.live = live
        self.jobs = jobs
        self.users = Users(store)
        self.signer = SessionSigner(load_secret(config.http.session_secret, config.data_path),
                                    config.http.session_hours * 3600, store=store)
        self.signin_throttle = SigninThrottle(config.http.signin_per_minute)
        self.offer_limit = RateLimit(config.http.offers_per_minute)
        self.recordings = config.recordings_path
        self.uploads = config.data_path / "uploads"
        self.kb_dir = DialogOptions.from_mapping(dataclasses.asdict(config.dialog)).kb_path
        self.kb_status: dict[str, Any] = {"state": "ready" if engine is not None else "not loaded"}
        self._rebuild: asyncio.Future[Any] | None = None
        self.read_audit = ReadAudit(self.users)
        self.callers: Any = None  # voice_agent.customers.Callers when customers.directory is set
        self.privacy = Privacy.from_config(config)

    def rebuild_kb(self) -> None:
        """Re-index the knowledge base in a worker thread after a document changed."""
        if self.engine is None:
            self.kb_status = {"state": "not loaded", "detail": "no engine in this process; restart to re-index"}
            return
        self.kb_status = {"state": "rebuilding"}
        engine = self.engine

        def work() -> int:
            brain = engine.brain_factory().call.brain  # the shared dialog resources behind every call
            brain.kb.load()
            engine.refresh_asr_hints(brain.options.company, brain.kb)
            return len(brain.kb.passages)

        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            self.kb_status = ({"state": "error", "error": str(exc)} if exc is not None
                              else {"state": "ready", "passages": future.result()})

        # Indexing is sequential: a second edit while one runs waits for it.
        previous = self._rebuild
        loop = asyncio.get_running_loop()

        async def chain() -> int:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            return int(await loop.run_in_executor(engine.executor, work))

        self._rebuild = asyncio.ensure_future(chain())
        self._rebuild.add_done_callback(done)


def _asset(name: str) -> bytes:
    try:
        return resources.files("voice_agent.web").joinpath(name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise web.HTTPNotFound(text=f"no asset {name}") from None


async def _page(request: web.Request) -> web.Response:
    name, ctype = PAGES[request.path]
    return web.Response(body=_asset(name), content_type=ctype, charset="utf-8")


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound(text=f"no asset {name}")
    response = web.Response(body=_asset(name), content_type=ASSETS[name], charset="utf-8")
    if name == "widget.js":
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


async def _widget(request: web.Request) -> web.Response:
    response = web.Response(body=_asset("widget.js"), content_type="application/javascript", charset="utf-8")
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


async def _metrics(request: web.Request) -> web.Response:
    """Prometheus metrics: open to scrapers on this machine, a token or sign-in from elsewhere."""
    from voice_agent import metrics
    from voice_agent.web.security import client_address, require

    if not _is_loopback(client_address(request)):
        require(request, "viewer")
    body, content_type = metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def live_calls(config: Config, store: CallStore, engine: Any) -> LiveCalls:
    """The registry of live calls the console shows (browser calls, and phone calls when SIP runs beside it)."""
    return LiveCalls(engine, store, config.recordings_path, ice_servers=list(config.http.ice_servers),
                     max_calls=config.http.max_calls, hold_timeout_s=config.http.hold_timeout_s,
                     privacy=Privacy.from_config(config), load=engine.load)


def make_app(config: Config, store: CallStore, engine: Any = None, *, transcriber: Any = None,
             live: LiveCalls | None = None) -> web.Application:
    """The aiohttp application (pages, static assets, API); browser calls need an engine."""
    if live is None and engine is not None:
        live = live_calls(config, store, engine)
    jobs = JobRunner(config, store, config.data_path / "uploads", transcriber=transcriber)
    state = WebState(config, store, engine, live, jobs)
    if config.customers.directory:  # who is calling: signed widget references, the customer on call pages
        from voice_agent.customers import Callers

        state.callers = Callers(config.customers, store)
        if live is not None:
            live.callers = state.callers
    # security_headers is outermost, so error responses made by json_errors get the headers too.
    app = web.Application(middlewares=[security_headers, json_errors, make_identity(state.users, state.signer)],
                          client_max_size=config.http.max_upload_mb * 1024 * 1024 + 65536)
    app[STATE] = state
    app[PROXIES] = Proxies(config.http.trusted_proxies, config.http.allowed_origins)
    for path in PAGES:
        app.router.add_get(path, _page)
    app.router.add_get("/widget.js", _widget)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/static/{name}", _static)
    add_routes(app)

    async def on_cleanup(app: web.Application) -> None:
        if live is not None:
            await live.close()
        await jobs.close()

    app.on_cleanup.append(on_cleanup)
    return app


class WebFrontend:
    """The HTTP server: start() binds and serves, stop() hangs up live calls and closes."""

    def __init__(self, config: Config, engine: Any = None, store: CallStore | None = None,
                 listen: str | None = None) -> None:
        self.config = config
        self.engine = engine
        self.host, self.port = parse_listen(listen or config.http.listen)
        self._own_store = store is None
        self.store = store or CallStore.from_config(config)  # with the protection key, if one is configured
        # Made here, not at start, so that the SIP front end can list its calls in it too.
        self.live = live_calls(config, self.store, engine) if engine is not None else None
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where the server listens."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve."""
        if _is_loopback(self.host) and not self.config.http.ice_servers:
            # Browsers on this machine reach us over loopback, which aioice leaves out by default.
            allow_loopback_candidates(True)
        self.app = make_app(self.config, self.store, self.engine, live=self.live)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        log_event(log, "http_listening", url=self.url, calls=self.engine is not None)

    async def stop(self) -> None:
        """Hang up live calls, stop serving and close the store if we opened it."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_store:
            self.store.close()


__all__ = ["WebFrontend", "live_calls", "make_app", "parse_listen"]
