"""Adaptive jitter buffer: reorders RTP payloads by sequence number and releases one per 20 ms slot."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class JitterStats:
    """Counters of a jitter buffer."""

    pushed: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    reordered: int = 0
    underruns: int = 0
    trimmed: int = 0
    resets: int = 0


class JitterBuffer:
    """Holds payloads until their slot; the target depth follows measured jitter (fast up, slow down)."""

    def __init__(self, frame_ms: int = 20, min_delay_ms: int = 40, max_delay_ms: int = 400,
                 clock_rate: int = 8000) -> None:
        self.frame_ms = frame_ms
        self.clock_rate = clock_rate
        self.min_frames = max(1, math.ceil(min_delay_ms / frame_ms))
        self.max_frames = max(self.min_frames, math.ceil(max_delay_ms / frame_ms))
        self.target_frames = self.min_frames
        self.stats = JitterStats()
        self.jitter_ms = 0.0
        self._packets: dict[int, bytes] = {}
        self._highest: int | None = None  # extended sequence number of the newest packet
        self._next: int | None = None  # extended sequence number of the next slot to play
        self._playing = False
        self._transit: float | None = None
        self._excess_slots = 0

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def delay_ms(self) -> int:
        """Current target playout delay."""
        return self.target_frames * self.frame_ms

    def _extend(self, sequence: int) -> int:
        if self._highest is None:
            return sequence
        delta = (sequence - self._highest) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        return self._highest + delta

    def reset(self) -> None:
        """Forget every packet and the sequence state (a new source or a sequence jump)."""
        self._packets.clear()
        self._highest = self._next = None
        self._playing = False
        self._transit = None
        self.stats.resets += 1

    def push(self, sequence: int, payload: bytes, timestamp: int | None = None, arrival: float | None = None) -> bool:
        """Store one packet; False when it was dropped as late or duplicate."""
        ext = self._extend(sequence & 0xFFFF)
        if self._highest is not None and abs(ext - self._highest) > 4 * self.max_frames + 100:
            # Far outside any sane window: the sender restarted its sequence, start over.
            self.reset()
            ext = sequence & 0xFFFF
        if self._next is not None and ext < self._next:
            self.stats.late += 1
            return False
        if ext in self._packets:
            self.stats.duplicate += 1
            return False
        if self._highest is not None and ext < self._highest:
            self.stats.reordered += 1
        self._packets[ext] = payload
        self.stats.pushed += 1
        if self._highest is None or ext > self._highest:
            self._highest = ext
        if timestamp is not None and arrival is not None:
            self._measure(timestamp, arrival)
        return True

    def _measure(self, timestamp: int, arrival: float) -> None:
        # RFC 3550 interarrival jitter, in ms; timestamps unwrapped against the previous transit.
        transit = arrival * 1000.0 - timestamp * 1000.0 / self.clock_rate
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 10_000:
                self.jitter_ms += (d - self.jitter_ms) / 16
        self._transit = transit
        # Enough depth for about three jitter deviations plus one frame of scheduling slack.
        wanted = math.ceil((3 * self.jitter_ms + self.frame_ms) / self.frame_ms)
        wanted = max(self.min_frames, min(self.max_frames, wanted))
        if wanted > self.target_frames:
            self.target_frames = wanted  # grow at once: losing audio is worse than adding delay
        elif wanted < self.target_frames:
            self._excess_slots += 1
            if self._excess_slots >= 250:  # shrink one frame per 5 s of calm
                self.target_frames -= 1
                self._excess_slots = 0

    def pop(self) -> bytes | None:
        """The payload of the next 20 ms slot, or None (still buffering, a lost packet, or nothing sent)."""
        if not self._playing:
            if not self._packets or self._highest is None:
                return None
            first = min(self._packets)
            if self._next is None:
                self._next = first
            elif first > self._next:
                # Packets missing across an underrun were lost; skip them rather than replay the gap.
                self.stats.lost += first - self._next
                self._next = first
            if self._highest - self._next + 1 < self.target_frames:
                return None
            self._playing = True
        assert self._next is not None
        if not self._packets:
            # Nothing queued: the peer is late or silent (hold, DTX); rebuild depth before playing again.
            self._playing = False
            self.stats.underruns += 1
            return None
        self._trim()
        payload = self._packets.pop(self._next, None)
        self._next += 1
        if payload is None:
            self.stats.lost += 1
        else:
            self.stats.played += 1
        return payload

    def _trim(self) -> None:
        # Too deep for the current target (jitter calmed down, or a burst arrived): drop the oldest frame
        # now and then so that latency comes back down without audible gaps every slot.
        assert self._next is not None and self._highest is not None
        depth = self._highest - self._next + 1
        if depth > self.target_frames + 2:
            self.stats.trimmed += 1
            if self._packets.pop(self._next, None) is None:
                self.stats.lost += 1
            self._next += 1
