"""The console's call search and deletion; the SQL is the store's (``voice_agent.store.calls``)."""

from __future__ import annotations

from typing import Any

from voice_agent.store import CallFilter, CallStore

__all__ = ["CallFilter", "delete_call", "search_calls"]


def search_calls(store: CallStore, f: CallFilter) -> tuple[list[dict[str, Any]], int]:
    """Matching calls, most recent first, and how many match in all (blocking: run it in an executor)."""
    return store.search_calls(f)


def delete_call(store: CallStore, call_id: str) -> bool:
    """Delete a call with its transcript, turns and events; False when absent (blocking)."""
    return store.delete_call(call_id)
