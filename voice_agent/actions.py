"""The HTTP side of actions: the dialog's ActionPort as a JSON call to the action's endpoint.

The request runs in a worker thread (never on the event loop) with the endpoint's timeout. Every failure
(timeout, connection refused, an HTTP error status, a body that is not a JSON object) comes back as a failed
``ActionResult``, never as an exception, so the dialog can say so and offer a person. Slot values are sent
to the endpoint and nowhere else: log lines name the action, the outcome and the time only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from dialog.actions import ActionResult, ActionSpec

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # an answer is a sentence or two and a few fields


class HttpActionPort:
    """Calls an action's endpoint: GET with the slots as query parameters, other methods with a JSON body."""

    def __init__(self, user_agent: str = "voice-agent") -> None:
        self.user_agent = user_agent
        # a proxy from the environment must never see the slots (and loopback endpoints must stay loopback)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    async def invoke(self, action: ActionSpec, slots: dict[str, str]) -> ActionResult:
        """Call the endpoint off the event loop; the result, or why it failed."""
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(self._request, action, slots)
        except Exception as exc:  # anything unexpected is a failed action, not a failed call
            result = ActionResult(False, error=f"error: {type(exc).__name__}")
        result.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info("action %s: %s", action.name, "ok" if result.ok else result.error,
                 extra={"fields": {"action": action.name, "ok": result.ok, "status": result.status,
                                   "latency_ms": result.latency_ms}})
        return result

    def _request(self, action: ActionSpec, slots: dict[str, str]) -> ActionResult:
        ep = action.endpoint
        url, body = ep.url, None
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if ep.method == "GET":
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(slots)
        else:
            body = json.dumps({"action": action.name, **slots}).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, method=ep.method, headers=headers)
        status: int | None = None
        try:
            with self._opener.open(request, timeout=ep.timeout_s) as response:
                status = int(response.status)
                raw = response.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                data = _json_object(exc.read(MAX_BODY + 1))
            except ValueError:
                data = {}
            finally:
                exc.close()
            return ActionResult(False, data, error=f"http {exc.code}", status=status)
        except TimeoutError:
            return ActionResult(False, error="timeout")
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                return ActionResult(False, error="timeout")
            if isinstance(reason, ConnectionRefusedError):
                return ActionResult(False, error="connection refused")
            return ActionResult(False, error=f"unreachable: {type(reason).__name__}")
        except (ConnectionError, OSError) as exc:
            return ActionResult(False, error=f"connection error: {type(exc).__name__}")
        if len(raw) > MAX_BODY:
            return ActionResult(False, error="response too large", status=status)
        try:
            data = _json_object(raw)
        except ValueError:
            return ActionResult(False, error="bad json", status=status)
        return ActionResult(True, data, status=status)


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
