"""The example company's action service (Brightline Telecom): what examples/kb/actions.yaml calls.

    python examples/action_server.py --port 8765 [--host 127.0.0.1] [--log actions.jsonl]

Endpoints (JSON in, JSON out; the standard library only):

- ``GET  /outage?postcode=SW1A+1AA``  the network status for a postcode (a made-up outage in the "SW" area)
- ``POST /technician/bookings``       ``{"date": "2026-12-08", "slot": "morning", "postcode": "SW1A 1AA"}``
                                       books a technician visit and answers with a reference
- ``POST /sms``                        ``{"mobile": "07700900123"}``: "sends" the status link by SMS, that
                                       is, logs the message it would send (no SMS gateway here)
- ``GET  /health``                     readiness
- ``GET  /records``                    everything received so far (for tests and demos)

It prints ``listening on http://HOST:PORT`` once it accepts connections. Every request is appended to
``--log`` as a JSON line when given. This is an example, not a product: it keeps its bookings in memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

STATUS_LINK = "https://brightline.example/status"
SLOTS = ("morning", "afternoon", "evening")
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")


class Records:
    """What the service received: bookings and messages, in order."""

    def __init__(self, log_path: Path | None) -> None:
        self.lock = threading.Lock()
        self.bookings: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.log_path = log_path

    def add(self, kind: str, item: dict[str, Any]) -> None:
        with self.lock:
            (self.bookings if kind == "booking" else self.messages).append(item)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"kind": kind, **item}) + "\n")


def make_handler(records: Records) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "BrightlineActions/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests carry postcodes and phone numbers: no access log

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any] | None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
                data = json.loads(self.rfile.read(min(length, 65536)) or b"{}")
            except (ValueError, UnicodeDecodeError):
                return None
            return data if isinstance(data, dict) else None

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/health":
                self._send(200, {"ok": True})
            elif url.path == "/records":
                with records.lock:
                    self._send(200, {"bookings": records.bookings, "messages": records.messages})
            elif url.path == "/outage":
                postcode = query.get("postcode", "").upper().strip()
                if not POSTCODE.match(postcode):
                    self._send(400, {"say": "That postcode doesn't look right."})
                elif postcode.startswith("SW"):
                    self._send(200, {"outage": True, "status": "Yes, there's a known outage in your area. "
                                     "Our engineers expect to fix it by 6 PM today."})
                else:
                    self._send(200, {"outage": False, "status": "There are no known problems in your area "
                                     "right now. Restarting your router is a good first step."})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            body = self._body()
            if body is None:
                self._send(400, {"error": "expected a JSON object"})
                return
            if path == "/technician/bookings":
                self._book(body)
            elif path == "/sms":
                mobile = re.sub(r"\D", "", str(body.get("mobile", "")))
                if not 10 <= len(mobile) <= 11:
                    self._send(400, {"say": "That phone number doesn't look right."})
                    return
                message = {"to": mobile, "text": f"Brightline network status: {STATUS_LINK}",
                           "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
                records.add("sms", message)
                print(f"SMS to ...{mobile[-3:]}: {message['text']}", flush=True)
                self._send(200, {"sent": True})
            else:
                self._send(404, {"error": "not found"})

        def _book(self, body: dict[str, Any]) -> None:
            try:
                day = dt.date.fromisoformat(str(body.get("date", "")))
            except ValueError:
                self._send(400, {"error": "date must be YYYY-MM-DD"})
                return
            slot, postcode = str(body.get("slot", "")), str(body.get("postcode", "")).upper()
            if slot not in SLOTS or not POSTCODE.match(postcode):
                self._send(400, {"error": "slot must be morning, afternoon or evening, and postcode a UK postcode"})
                return
            if day.weekday() == 6:
                self._send(409, {"say": "Sorry, technicians don't visit on Sundays. Please call again to choose "
                                        "another day."})
                return
            reference = "TB-" + uuid.uuid4().hex[:6].upper()
            records.add("booking", {"reference": reference, "date": day.isoformat(), "slot": slot,
                                    "postcode": postcode})
            self._send(201, {"reference": reference, "date": day.isoformat(), "slot": slot})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed at start)")
    parser.add_argument("--log", type=Path, help="append every booking and message here as a JSON line")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Records(args.log)))
    host, port = server.server_address[:2]
    print(f"listening on http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
