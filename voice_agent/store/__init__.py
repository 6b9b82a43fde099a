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
from voice_agent.store.errors import StoreError, StoreKeyError, StoreUnavailable
from voice_agent.store.files import private_dir, private_file
from voice_agent.store.jobs import JobTables
from voice_agent.store.migrations import MIGRATIONS
from voice_agent.store.protection import ProtectionTables

if TYPE_CHECKING:
    from voice_agent.config import Config
    from voice_agent.protection.cipher import Cipher


class CallStore(ProtectionTables, CallTables, AccountTables, JobTables, AnalyticsTables):
    """Thread-safe access to the call store; one connection per store object.

    With a ``cipher`` (a key is configured) transcript text is sealed at rest and opened on reading; a key
    that does not match the store's is refused at once with a StoreKeyError saying what to do.
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 5.0, cipher: Cipher | None = None,
                 check_key: bool = True) -> None:
        super().__init__(url, busy_timeout_s=busy_timeout_s, cipher=cipher)
        if check_key:
            try:
                self.check_key()
            except BaseException:
                self.close()
                raise

    @classmethod
    def from_config(cls, config: Config, *, check_key: bool = True) -> CallStore:
        """The store the configuration names (``store.url``, ``store.busy_timeout_s``, ``protection.*``)."""
        from voice_agent.protection.keys import cipher_from_config

        return cls(config.store_url, busy_timeout_s=config.store.busy_timeout_s, cipher=cipher_from_config(config),
                   check_key=check_key)


__all__ = ["MIGRATIONS", "CallFilter", "CallRecord", "CallStore", "StoreError", "StoreKeyError", "StoreUnavailable",
           "private_dir", "private_file", "redact_url"]
