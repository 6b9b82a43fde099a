"""Request security for the web front end: JSON errors, who is asking, CSRF, roles and rate limits."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from voice_agent.auth import SessionSigner, User, Users

log = logging.getLogger("voice_agent.web")

COOKIE = "va_session"
CSRF_HEADER = "X-CSRF-Token"
USER_KEY: web.RequestKey[User | None] = web.RequestKey("user", User)
VIA_KEY: web.RequestKey[str] = web.RequestKey("via", str)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Public endpoints act on no one's authority, so a cookie sent along needs no CSRF token there.
_CSRF_EXEMPT = {("POST", "/api/session"), ("POST", "/api/webrtc/offer")}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error response."""
    return web.json_response({"error": message, **extra}, status=status)


class ApiError(Exception):
    """An error told to the client as JSON with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RateLimit:
    """At most ``limit`` events per key in a sliding window."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def full(self, key: str) -> bool:
        """Whether the key has used up its events in the window (counts nothing)."""
        hits = self._hits.get(key) or deque()
        now = self.clock()
        return len([t for t in hits if now - t <= self.window_s]) >= self.limit

    def allow(self, key: str) -> bool:
        """Count one event for the key; False when over the limit."""
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] > self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > 10000:  # forget idle keys so an address scan cannot grow memory
            for k in [k for k, v in self._hits.items() if not v or now - v[-1] > self.window_s]:
                del self._hits[k]
        return True

    def retry_after(self, key: str) -> int:
        """Seconds until the key may try again."""
        hits = self._hits.get(key)
        if not hits:
            return 0
        return max(1, int(self.window_s - (self.clock() - hits[0])) + 1)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON body with a clear message, never a traceback page."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        response = error(exc.status, message)
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except json.JSONDecodeError:
        return error(400, "the request body is not valid JSON")
    except HttpProcessingError as exc:  # malformed multipart parts and headers inside bodies
        status = exc.code if 400 <= exc.code < 500 else 400
        return error(status, f"malformed request: {exc.message or type(exc).__name__}")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(500, "internal error (details are in the server log)")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Conservative browser security headers, on errors too; the widget script may be embedded by other sites."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and anything json_errors let through
        _secure(request, exc)
        raise
    return _secure(request, response)


def _secure(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    # The caller page is what the widget frames on other sites; everything else stays unframeable.
    framable = request.path == "/"
    ancestors = "*" if framable else "'self'"
    if request.path != "/widget.js":
        if not framable:
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
            f"connect-src 'self'; frame-ancestors {ancestors}")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def make_identity(users: Users, signer: SessionSigner) -> Any:
    """A middleware that finds the user (Bearer token or session cookie) and enforces CSRF for cookies."""

    @web.middleware
    async def identity(request: web.Request, handler: Handler) -> web.StreamResponse:
        user: User | None = None
        via = ""
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            user = users.token_user(header[7:].strip())
            if user is None:
                return _unauthorized("the API token is unknown or revoked")
            via = "token"
        elif COOKIE in request.cookies:
            cookie = request.cookies[COOKIE]
            signed = signer.read(cookie)
            # The cookie carries the role at sign-in; the store has the final word (disabled, role changed).
            user = users.get(signed.name) if signed is not None else None
            if user is not None:
                via = "cookie"
                if request.method in _UNSAFE and (request.method, request.path) not in _CSRF_EXEMPT \
                        and not signer.check_csrf(cookie, request.headers.get(CSRF_HEADER, "")):
                    return error(403, f"missing or wrong {CSRF_HEADER} header (CSRF protection)")
        request[USER_KEY] = user
        request[VIA_KEY] = via
        return await handler(request)

    return identity


def _unauthorized(message: str) -> web.Response:
    response = error(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="voice-agent"'
    return response


def require(request: web.Request, role: str = "viewer") -> User:
    """The request's user if it has at least ``role``; else a 401 or 403 JSON error."""
    user: User | None = request.get(USER_KEY)
    if user is None:
        raise web.HTTPUnauthorized(text="sign in or send an API token (Authorization: Bearer ...)",
                                   headers={"WWW-Authenticate": 'Bearer realm="voice-agent"'})
    if not user.can(role):
        raise web.HTTPForbidden(text=f"this needs the {role} role; {user.name} is {user.role}")
    return user


class Proxies:
    """The reverse proxies whose X-Forwarded-For and X-Forwarded-Proto headers are believed (none by default)."""

    def __init__(self, networks: Iterable[str] = (), allowed_origins: Iterable[str] = ()) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self.allowed_origins = frozenset(o.lower().rstrip("/") for o in allowed_origins)

    def trusted(self, address: str) -> bool:
        """Whether the address is one of the configured proxies."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


PROXIES: web.AppKey[Proxies] = web.AppKey("proxies", Proxies)


def _proxies(request: web.Request) -> Proxies:
    return request.app.get(PROXIES) or Proxies()


def client_address(request: web.Request) -> str:
    """The client's address: the peer, or behind a trusted proxy the last untrusted X-Forwarded-For hop."""
    peer = request.remote or "unknown"
    proxies = _proxies(request)
    if not proxies.trusted(peer):
        return peer  # anyone can send X-Forwarded-For: only a configured proxy is believed
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops):
        if not proxies.trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from the client: count it against the proxy's address
    return hops[0] if hops else peer


def is_https(request: web.Request) -> bool:
    """Whether the browser reached us over TLS: directly, or through a trusted proxy that says so."""
    if request.secure:
        return True
    if not _proxies(request).trusted(request.remote or ""):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https"


def own_origin(request: web.Request) -> str:
    """This server's origin as the browser sees it (scheme://host[:port])."""
    return f"{'https' if is_https(request) else 'http'}://{request.host}".lower()


def origin_allowed(request: web.Request) -> bool:
    """Whether a browser request comes from this site or a configured one (login CSRF)."""
    origin = request.headers.get("Origin")
    if origin is None:
        # Browsers send Origin on every cross-site POST; without one this is a script or CLI,
        # unless the fetch metadata says the request is cross-site.
        return request.headers.get("Sec-Fetch-Site", "same-origin").lower() in ("same-origin", "none")
    origin = origin.strip().lower().rstrip("/")
    return origin == own_origin(request) or origin in _proxies(request).allowed_origins


class SigninThrottle:
    """Failed sign-ins per (client address, user name) with exponential backoff.

    Only failures count, and per address: a stranger guessing one user's password from
    elsewhere never locks that user out of their own machine. After ``free`` failures
    each further one doubles the wait (``base_s`` up to ``max_s``); a success clears the
    pair. An address that fails against many names is slowed down as a whole too.
    """

    def __init__(self, free: int = 5, base_s: float = 1.0, max_s: float = 900.0, per_address: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free = max(1, free)
        self.base_s = base_s
        self.max_s = max_s
        self.per_address = per_address or 4 * self.free
        self.clock = clock
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # (address, name) -> (count, blocked until)
        self._address = RateLimit(self.per_address, 60.0, clock)

    def retry_after(self, address: str, name: str) -> int:
        """Seconds until this address may try this name again (0: now)."""
        now = self.clock()
        _, until = self._failures.get((address, name.lower()), (0, 0.0))
        wait = max(until - now, float(self._address.retry_after(address)) if self._address.full(address) else 0.0)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, address: str, name: str) -> None:
        """Count a wrong password (or unknown user) from this address for this name."""
        now = self.clock()
        key = (address, name.lower())
        count = self._failures.get(key, (0, 0.0))[0] + 1
        until = now + min(self.max_s, self.base_s * 2 ** (count - self.free)) if count >= self.free else 0.0
        self._failures[key] = (count, until)
        self._address.allow(address)
        if len(self._failures) > 10000:  # forget pairs whose backoff is long over
            self._failures = {k: v for k, v in self._failures.items() if now - v[1] < self.max_s}

    def succeeded(self, address: str, name: str) -> None:
        """A right password: this pair starts afresh."""
        self._failures.pop((address, name.lower()), None)
