"""The store's one error type: every driver failure becomes one line that names the store and what to do."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The call store could not be opened or written, or a record is missing."""


class StoreUnavailable(StoreError):
    """The database is locked, full, read-only or unreachable (the message says which and what to do)."""


class StoreKeyError(StoreError):
    """Encrypted data and the configured key do not match (no key, another key, an unfinished rotation)."""
