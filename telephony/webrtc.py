"""WebRTC transport (aiortc): one peer connection carrying Opus audio both ways and a data channel.

The remote audio track comes out as 20 ms float32 mono frames at 48 kHz; audio
pushed in goes out on a paced ``MediaStreamTrack``. A JSON data channel carries
events to the peer and messages (DTMF, hang-up) back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aioice.ice
import av
import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger("telephony.webrtc")

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
FRAME_S = 0.02
_TIME_BASE = fractions.Fraction(1, RATE)

_original_host_addresses = aioice.ice.get_host_addresses


def _host_addresses_with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    found: list[str] = _original_host_addresses(use_ipv4, use_ipv6)
    if use_ipv4 and "127.0.0.1" not in found:
        found.append("127.0.0.1")
    return found


def allow_loopback_candidates(enabled: bool = True) -> None:
    """Offer 127.0.0.1 as an ICE host candidate (aioice skips it), for servers and tests on loopback only.

    aioice reads the module function at gathering time and has no option for it,
    so the switch replaces that function process-wide.
    """
    aioice.ice.get_host_addresses = _host_addresses_with_loopback if enabled else _original_host_addresses


class WebRtcError(RuntimeError):
    """The offer could not be answered or the connection failed."""


class OutgoingAudio(MediaStreamTrack):
    """An audio track that plays the 20 ms frames pushed into it, silence when there are none."""

    kind = "audio"

    def __init__(self, max_queue_s: float = 1.0) -> None:
        super().__init__()
        self._queue: deque[np.ndarray] = deque()
        self._max = int(max_queue_s / FRAME_S)
        self._start: float | None = None
        self._rest = np.zeros(0, np.float32)
        self.frames_sent = 0
        self.frames_voiced = 0

    def push(self, audio: np.ndarray) -> None:
        """Queue float32 mono audio at 48 kHz (any length; cut into 20 ms frames)."""
        data = np.concatenate([self._rest, audio.astype(np.float32, copy=False)])
        whole = len(data) // FRAME
        for i in range(whole):
            self._queue.append(data[i * FRAME : (i + 1) * FRAME])
        self._rest = data[whole * FRAME :]
        # The producer's clock (the caller's frames) and ours drift apart; drop the oldest
        # audio rather than let the delay grow without bound.
        while len(self._queue) > self._max:
            self._queue.popleft()

    def clear(self) -> None:
        """Drop queued audio."""
        self._queue.clear()
        self._rest = np.zeros(0, np.float32)

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame, paced in real time."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        wait = self._start + self.frames_sent * FRAME_S - now
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.2:
            # Far behind (a stalled loop): restart the clock instead of sending a burst.
            self._start = now - self.frames_sent * FRAME_S
        samples = self._queue.popleft() if self._queue else None
        if samples is not None:
            self.frames_voiced += 1
        pcm = np.zeros(FRAME, np.int16) if samples is None else (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.frames_sent * FRAME
        frame.time_base = _TIME_BASE
        self.frames_sent += 1
        return frame


class FrameReader:
    """Turns decoded frames of any layout and size into 20 ms float32 mono frames at 48 kHz."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        self._rest = np.zeros(0, np.float32)

    def feed(self, frame: av.AudioFrame) -> list[np.ndarray]:
        """The whole 20 ms frames now available."""
        parts = [self._rest] + [f.to_ndarray().reshape(-1).astype(np.float32) for f in self._resampler.resample(frame)]
        data = np.concatenate(parts)
        whole = len(data) // FRAME
        out = [data[i * FRAME : (i + 1) * FRAME] for i in range(whole)]
        self._rest = data[whole * FRAME :]
        return out


def ice_configuration(urls: Sequence[str]) -> RTCConfiguration:
    """An RTCConfiguration from STUN/TURN URLs; none means host candidates only (no network lookups)."""
    return RTCConfiguration(iceServers=[RTCIceServer(urls=list(urls))] if urls else [])


class PeerCall:
    """One browser (or aiortc) peer: answer its offer, read its audio, play ours, exchange JSON events."""

    def __init__(self, ice_servers: Sequence[str] = (), *, label: str = "peer") -> None:
        self.label = label
        self.pc = RTCPeerConnection(ice_configuration(ice_servers))
        self.outgoing = OutgoingAudio()
        self.on_message: Callable[[dict[str, Any]], None] | None = None
        self.closed = asyncio.Event()
        self._incoming: asyncio.Queue[MediaStreamTrack] = asyncio.Queue(maxsize=1)
        self._channel: Any = None
        self._pending: list[str] = []
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._incoming.empty():
            self._incoming.put_nowait(track)

    def _on_datachannel(self, channel: Any) -> None:
        self._channel = channel
        for text in self._pending:
            channel.send(text)
        self._pending.clear()

        @channel.on("message")
        def _message(message: Any) -> None:
            if self.on_message is None or not isinstance(message, str):
                return
            try:
                data = json.loads(message)
            except ValueError:
                log.info("%s: ignored a data channel message that is not JSON", self.label)
                return
            if isinstance(data, dict):
                self.on_message(data)

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("%s: connection %s", self.label, state)
        if state in ("failed", "closed"):
            self.closed.set()

    async def answer(self, sdp: str, kind: str = "offer") -> RTCSessionDescription:
        """Accept the peer's SDP offer and return our answer (ICE candidates gathered, no trickle)."""
        if kind != "offer":
            raise WebRtcError(f"expected an SDP offer, got type {kind!r}")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except (ValueError, KeyError, IndexError) as exc:
            raise WebRtcError(f"invalid SDP offer: {exc}") from None
        if not any(t.kind == "audio" for t in self.pc.getTransceivers()):
            raise WebRtcError("the offer has no audio: add a microphone track (or an audio transceiver)")
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio":
                transceiver.sender.replaceTrack(self.outgoing)
                transceiver.direction = "sendrecv"
                # Opus at 48 kHz first; G.711 only for a peer that offers nothing better.
                codecs = RTCRtpSender.getCapabilities("audio").codecs
                transceiver.setCodecPreferences(sorted(codecs, key=lambda c: c.mimeType.lower() != "audio/opus"))
                break
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        local = self.pc.localDescription
        return RTCSessionDescription(sdp=local.sdp, type=local.type)

    async def frames(self, connect_timeout_s: float = 20.0) -> AsyncIterator[np.ndarray]:
        """The peer's audio as 20 ms float32 mono frames at 48 kHz, until it hangs up."""
        try:
            track = await asyncio.wait_for(self._incoming.get(), connect_timeout_s)
        except TimeoutError:
            raise WebRtcError("the peer sent no audio track") from None
        reader = FrameReader()
        while not self.closed.is_set():
            recv = asyncio.ensure_future(track.recv())
            closed = asyncio.ensure_future(self.closed.wait())
            done, _ = await asyncio.wait({recv, closed}, return_when=asyncio.FIRST_COMPLETED)
            if recv not in done:
                recv.cancel()
                with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                    await recv
                break
            closed.cancel()
            try:
                frame = recv.result()
            except MediaStreamError:
                break
            if isinstance(frame, av.AudioFrame):
                for out in reader.feed(frame):
                    yield out

    def send_audio(self, frame: np.ndarray) -> None:
        """Queue audio for the peer (float32 mono, 48 kHz)."""
        self.outgoing.push(frame)

    def send_event(self, event: dict[str, Any]) -> None:
        """Send one JSON event on the data channel (queued until the peer opens it)."""
        text = json.dumps(event)
        channel = self._channel
        if channel is None:
            self._pending.append(text)
        elif channel.readyState == "open":
            channel.send(text)

    def hang_up(self) -> None:
        """Stop reading audio; ``close`` releases the connection."""
        self.closed.set()

    async def close(self) -> None:
        """Close the connection."""
        self.closed.set()
        self.outgoing.stop()
        await self.pc.close()


__all__ = ["FRAME", "RATE", "FrameReader", "OutgoingAudio", "PeerCall", "WebRtcError", "allow_loopback_candidates",
           "ice_configuration"]
