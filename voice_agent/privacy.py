"""PII redaction where data leaves a call: transcript outputs, the call store and log lines.

Which kinds are redacted and where is configured in the ``dialog`` section
(``redact``, ``redact_transcripts``, ``redact_store``, ``redact_logs``).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from dialog.actions import mask_postcodes
from dialog.analysis import redact_segment
from dialog.pii import Redactor
from voice_agent.config import Config

# keys whose string values hold what someone said (turn records, events, segments)
_TEXT_KEYS = frozenset({"text", "caller_text", "agent_text", "summary", "partial", "message"})


class Privacy:
    """Redacts configured PII kinds in each place that is switched on."""

    def __init__(self, kinds: Iterable[str], *, transcripts: bool = True, store: bool = True,
                 logs: bool = True) -> None:
        self.redactor = Redactor(kinds)
        self.transcripts = transcripts
        self.store = store
        self.logs = logs

    @classmethod
    def from_config(cls, config: Config) -> Privacy:
        """The redaction settings of the dialog section."""
        d = config.dialog
        return cls(d.redact, transcripts=d.redact_transcripts, store=d.redact_store, logs=d.redact_logs)

    def text(self, text: str) -> str:
        """The text with PII replaced by placeholders such as [CARD]."""
        return self.redactor.redact(text) if text else text

    def segments(self, segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Transcript segments with redacted text and word timings (copies)."""
        return [redact_segment(seg, self.redactor)[0] for seg in segments]

    def transcript(self, data: dict[str, Any]) -> dict[str, Any]:
        """A transcript document (the JSON of `transcribe`) with every text field redacted."""
        new = dict(data)
        new["segments"] = self.segments(data.get("segments", []))
        new["text"] = " ".join(s["text"] for s in new["segments"] if s.get("text"))
        if isinstance(new.get("summary"), str):
            new["summary"] = self.text(new["summary"])
        return new

    def record(self, value: Any) -> Any:
        """Any JSON-like value (turns, events, reports) with the text under known keys redacted."""
        if isinstance(value, dict):
            return {k: (self.text(v) if k in _TEXT_KEYS and isinstance(v, str) else self.record(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.record(v) for v in value]
        return value


# Words of one call that never reach a log line (the name of the customer the call was linked to); the
# latest calls only, so the registry stays small without anyone having to forget.
_PRIVATE: OrderedDict[str, re.Pattern[str]] = OrderedDict()


def private_words(call_id: str, words: Iterable[str]) -> None:
    """Keep these words of a call (e.g. the customer's name the agent says) out of its log lines: ``[NAME]``."""
    clean = sorted({w for w in words if len(w) >= 2}, key=len, reverse=True)
    if not call_id or not clean:
        return
    _PRIVATE[call_id] = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in clean) + r")\b", re.IGNORECASE)
    _PRIVATE.move_to_end(call_id)
    while len(_PRIVATE) > 2000:
        _PRIVATE.popitem(last=False)


def _call_of(record: logging.LogRecord) -> str:
    fields = getattr(record, "fields", None)
    cid = fields.get("call_id") if isinstance(fields, dict) else None
    if not cid:
        from voice_agent.logs import call_id_var

        cid = getattr(record, "call_id", None) or call_id_var.get()
    return str(cid)


class RedactingFilter(logging.Filter):
    """Rewrites every log record so that no configured PII reaches a log line."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message and the structured fields in place; never drops a record."""
        private = _PRIVATE.get(_call_of(record)) if _PRIVATE else None
        message = record.getMessage()
        redacted = self._text(message, private)
        if redacted != message:
            record.msg, record.args = redacted, None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            # a key pressed may be one digit of a number typed on the keypad (an account, a phone number)
            record.fields = {k: "[KEY]" if k == "digit" else self._value(v, private) for k, v in fields.items()}
        return True

    def _text(self, text: str, private: re.Pattern[str] | None) -> str:
        text = mask_postcodes(self.redactor.redact(text))  # an action's postcode slot, said by the caller
        return private.sub("[NAME]", text) if private is not None else text

    def _value(self, value: Any, private: re.Pattern[str] | None = None) -> Any:
        if isinstance(value, str):
            return self._text(value, private)
        if isinstance(value, dict):
            return {k: self._value(v, private) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(v, private) for v in value]
        return value


def install_log_redaction(config: Config) -> None:
    """Attach the redacting filter to every root handler when `dialog.redact_logs` is on."""
    if not config.dialog.redact_logs:
        return
    filt = RedactingFilter(Redactor(config.dialog.redact))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(filt)
