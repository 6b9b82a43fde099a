"""Structured logs: one JSON (or key=value) line per event, call id on every line."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

call_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "call_id": getattr(record, "call_id", None) or call_id_var.get(),
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            data.update(fields)
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(data, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        cid = getattr(record, "call_id", None) or call_id_var.get()
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{stamp} {record.levelname.lower():7} call={cid} {record.getMessage()} {extra}".rstrip()


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send structured log lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("faster_whisper", "httpx", "urllib3", "aioice", "aiortc", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with structured fields (the current call id is added)."""
    logger.log(level, event, extra={"fields": fields})
