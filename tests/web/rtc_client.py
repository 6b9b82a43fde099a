"""A Python WebRTC peer (aiortc) that calls the server like a browser: audio out, audio and events in."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from typing import Any

import av
import numpy as np
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 48000
FRAME = 960


class SpeechTrack(MediaStreamTrack):
    """Plays a mono float32 48 kHz array in real time, then silence."""

    kind = "audio"

    def __init__(self, audio: np.ndarray) -> None:
        super().__init__()
        self.audio = audio.astype(np.float32)
        self.n = 0
        self.t0: float | None = None

    def play(self, audio: np.ndarray) -> None:
        """Replace what is played from now on."""
        played = self.audio[: self.n * FRAME]
        gap = np.zeros(self.n * FRAME - len(played), np.float32)  # silence already sent past the old end
        self.audio = np.concatenate([played, gap, audio.astype(np.float32)])

    async def recv(self) -> av.AudioFrame:
        if self.t0 is None:
            self.t0 = time.monotonic()
        wait = self.t0 + self.n * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self.audio[self.n * FRAME : (self.n + 1) * FRAME]
        chunk = np.pad(chunk, (0, FRAME - len(chunk)))
        frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.n * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self.n += 1
        return frame


class RtcPeer:
    """One side of a call from Python: what it sends, what it hears, the events it gets."""

    def __init__(self, audio: np.ndarray) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = SpeechTrack(audio)
        self.pc.addTrack(self.track)
        self.channel = self.pc.createDataChannel("events")
        self.events: list[dict[str, Any]] = []
        self.heard: list[np.ndarray] = []
        self.channel.on("message", lambda m: self.events.append(json.loads(m)))
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                pcm = frame.to_ndarray().reshape(-1).astype(np.float32) / 32768
                if frame.layout.name == "stereo":
                    pcm = pcm[::2]
                self.heard.append(pcm)
        except MediaStreamError:
            return

    async def connect(self, client: TestClient[Any, Any], path: str, headers: dict[str, str] | None = None,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Offer, post it (with ``extra`` fields, e.g. a customer_ref), apply the answer; the server's JSON answer."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        r = await client.post(path, json={"sdp": self.pc.localDescription.sdp, "type": "offer", **(extra or {})},
                              headers=headers)
        body: dict[str, Any] = await r.json()
        assert r.status == 200, body
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        return body

    def send(self, message: dict[str, Any]) -> None:
        """A JSON message on the data channel."""
        self.channel.send(json.dumps(message))

    def types(self) -> list[str]:
        """The event types received so far."""
        return [e["type"] for e in self.events]

    async def wait_for(self, kind: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        """The first event of a type (with matching fields), waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e["type"] == kind and all(e.get(k) == v for k, v in match.items()):
                    return e
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind} event {match or ''} in {timeout} s; got {self.types()}")

    def heard_rms(self, last_s: float | None = None) -> float:
        """Loudness of what this peer received (all of it, or the last seconds)."""
        if not self.heard:
            return 0.0
        audio = np.concatenate(self.heard)
        if last_s is not None:
            audio = audio[-int(last_s * RATE) :]
        return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))

    async def close(self) -> None:
        """Hang up."""
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
