"""The call store: plain SQL over SQLite (default) or PostgreSQL, with numbered migrations.

``CallStore(url)`` opens ``sqlite:///path/calls.db`` (``sqlite://`` for memory) or
``postgresql://user@host:port/db``. Every SQL statement of the application lives in this package;
``dialect.py`` holds what differs between the two databases. Methods block: call them from a
worker thread, never on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voice_agent.store.accounts import AccountTables
from voice_agent.store.analytics import AnalyticsTables
from voice_agent.store.calls import CallFilter, CallRecord, CallTables
from voice_agent.store.dialect import redact_url
from voice_agent.store.errors import StoreError, StoreUnavailable
from voice_agent.store.files import private_dir, private_file
from voice_agent.store.jobs import JobTables
from voice_agent.store.migrations import MIGRATIONS

if TYPE_CHECKING:
    from voice_agent.config import Config


class CallStore(CallTables, AccountTables, JobTables, AnalyticsTables):
    """Thread-safe access to the call store; one connection per store object."""

    @classmethod
    def from_config(cls, config: Config) -> CallStore:
        """The store the configuration names (``store.url``, ``store.busy_timeout_s``)."""
        return cls(config.store_url, busy_timeout_s=config.store.busy_timeout_s)


__all__ = ["MIGRATIONS", "CallFilter", "CallRecord", "CallStore", "StoreError", "StoreUnavailable", "private_dir",
           "private_file", "redact_url"]
