"""The HTTP action port against a loopback server: what it sends, and every failure as a result (never raised);
and the log filter keeping an action's personal data (postcodes, keys pressed) out of log lines."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from dialog.actions import ActionSpec, Endpoint
from voice_agent.actions import HttpActionPort
from voice_agent.logs import _JsonFormatter, log_event
from voice_agent.privacy import Privacy, RedactingFilter

RELEASE = threading.Event()  # the /slow handler waits for it (never a fixed sleep)


class Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append({"method": "GET", "path": self.path})
        routes = {"/ok": (200, b'{"say": "All good."}'), "/html": (200, b"<html>oops</html>"),
                  "/list": (200, b"[1, 2]"), "/fail": (503, b""), "/refuse": (409, b'{"say": "That day is full."}')}
        if self.path.startswith("/slow"):
            RELEASE.wait(10)
            self._reply(200, b"{}")
            return
        status, body = routes.get(self.path.split("?")[0], (404, b"{}"))
        self._reply(status, body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append({"method": "POST", "path": self.path, "body": json.loads(self.rfile.read(length)),
                          "ctype": self.headers.get("Content-Type")})
        self._reply(201, b'{"reference": "R-1"}')


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    RELEASE.set()
    server.shutdown()
    server.server_close()


def action(url: str, method: str = "GET", timeout: float = 2.0) -> ActionSpec:
    return ActionSpec("check", "Check it", ("check it",), (), "Go?", Endpoint(url, method, timeout))


async def test_get_sends_the_slots_as_query_parameters(base: str) -> None:
    result = await HttpActionPort().invoke(action(base + "/ok"), {"postcode": "SW1A 1AA", "day": "2026-12-08"})
    assert result.ok and result.data == {"say": "All good."} and result.status == 200 and result.latency_ms > 0
    assert Handler.seen[-1]["path"] == "/ok?postcode=SW1A+1AA&day=2026-12-08"


async def test_post_sends_a_json_body(base: str) -> None:
    result = await HttpActionPort().invoke(action(base + "/book", "POST"), {"slot": "morning"})
    assert result.ok and result.data == {"reference": "R-1"} and result.status == 201
    assert Handler.seen[-1]["body"] == {"action": "check", "slot": "morning"}
    assert Handler.seen[-1]["ctype"] == "application/json"


@pytest.mark.parametrize(("path", "error", "data"), [
    ("/html", "bad json", {}), ("/list", "bad json", {}), ("/fail", "http 503", {}),
    ("/refuse", "http 409", {"say": "That day is full."}), ("/nowhere", "http 404", {})])
async def test_failures_come_back_as_results(base: str, path: str, error: str, data: dict[str, Any]) -> None:
    result = await HttpActionPort().invoke(action(base + path), {})
    assert (result.ok, result.error, result.data) == (False, error, data)


async def test_a_slow_service_times_out(base: str) -> None:
    result = await HttpActionPort().invoke(action(base + "/slow", timeout=0.3), {})
    assert (result.ok, result.error) == (False, "timeout")
    assert result.latency_ms < 3000


async def test_nobody_listening_is_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await HttpActionPort().invoke(action(f"http://127.0.0.1:{port}/x"), {})
    assert (result.ok, result.error) == (False, "connection refused")


def test_log_lines_hold_no_postcode_and_no_key_pressed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JsonFormatter())
    handler.addFilter(RedactingFilter(Privacy(["card"]).redactor))
    logger = logging.getLogger("test.actions.privacy")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log_event(logger, "caller_turn", text="it's S W 1 A, 1 A A")
        log_event(logger, "partial", text="W1A1H")
        log_event(logger, "dtmf", digit="7")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line.get("text") for line in lines[:2]] == ["it's [POSTCODE]", "[POSTCODE]"]
    assert lines[2]["digit"] == "[KEY]"
