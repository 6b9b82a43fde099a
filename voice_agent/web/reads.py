"""Audit rows for reads of transcript text, aggregated so that a console polling every second writes few rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from voice_agent.auth import Users


class ReadAudit:
    """One audit row per (user, action, call) per window; repeats inside the window are only counted in memory."""

    def __init__(self, users: Users, window_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.users = users
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, str, str], float] = {}

    def due(self, user: str, action: str, targets: Iterable[str]) -> list[str]:
        """The targets not yet audited for this user and action in the current window (marks them audited)."""
        now = self.clock()
        if len(self._seen) > 20000:  # forget old windows so memory stays bounded
            self._seen = {k: t for k, t in self._seen.items() if now - t < self.window_s}
        fresh = []
        for target in targets:
            key = (user, action, target)
            last = self._seen.get(key)
            if last is None or now - last >= self.window_s:
                self._seen[key] = now
                fresh.append(target)
        return fresh

    async def record(self, user: str, action: str, targets: Iterable[str], **detail: Any) -> int:
        """Write the rows that are due (in a worker thread, never on the event loop); returns how many."""
        fresh = self.due(user, action, targets)
        if fresh:
            def write() -> None:
                for target in fresh:
                    self.users.audit(user, action, target, **detail)

            await asyncio.get_running_loop().run_in_executor(None, write)
        return len(fresh)
