"""Live browser calls: a CallSession per WebRTC peer, its events on the data channel, and human takeover.

The session is driven by the caller's frames, so everything that changes what the
caller hears happens in this module's source and sink around it: while a human
agent has the call, the sink plays the agent's microphone instead of the
assistant, and the brain wrapper answers nothing (the caller's turns are still
transcribed and stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from asr.streaming import Endpointer, EndpointSettings, Event, Recognition, StreamingVad
from telephony.webrtc import FRAME, RATE, PeerCall, WebRtcError
from voice_agent.engine import Engine
from voice_agent.logs import log_event
from voice_agent.ports import Brain, Reply, TurnInput, TurnOutcome
from voice_agent.privacy import Privacy
from voice_agent.records import save_call
from voice_agent.session import ASR_RATE, CallResult, CallSession, Resampler
from voice_agent.store import CallStore

log = logging.getLogger("voice_agent.web.live")

# What the caller page and the console show; everything else stays server-side.
PUBLIC_EVENTS = {"call_start", "greeting", "partial", "caller_turn", "agent_partial", "agent_text", "sentiment",
                 "filler", "transfer", "transfer_message", "hangup", "barge_in", "reprompt_message", "goodbye",
                 "takeover", "released", "waiting", "dtmf", "human_text", "call_end"}


class LinesBusy(WebRtcError):
    """Every line is taken: the caller should try again later."""


class AlreadyTaken(WebRtcError):
    """Another agent already has the call."""


class QuietReply:
    """The assistant's reply while a human has the call: nothing to say."""

    def __init__(self, sentiment: TurnOutcome) -> None:
        self._outcome = sentiment

    async def stream(self) -> AsyncIterator[str]:
        """No text."""
        return
        yield  # an async generator that yields nothing

    async def outcome(self) -> TurnOutcome:
        """A neutral decision: no escalation, no hang-up."""
        return self._outcome


class ReportingReply:
    """A dialog reply whose text and decision are also sent to the caller page and console."""

    def __init__(self, inner: Reply, call: LiveCall) -> None:
        self.inner = inner
        self.call = call
        self._decided: TurnOutcome | None = None

    async def stream(self) -> AsyncIterator[str]:
        """The reply text; an escalation adds the hold message and keeps the line open for a human."""
        text = ""
        async for chunk in self.inner.stream():
            if self.call.status == "human":
                break  # a person took the call mid-answer: the rest is neither said nor transcribed
            text += chunk
            self.call.emit({"type": "agent_partial", "text": text.strip()})
            yield chunk
        outcome = await self._outcome()
        if outcome.escalate and not self.call.human_joined:
            message = self.call.transfer_text
            text = f"{text.rstrip()} {message}"
            yield " " + message
        if text.strip():
            self.call.emit({"type": "agent_text", "text": text.strip()})

    async def _outcome(self) -> TurnOutcome:
        if self._decided is None:
            self._decided = await self.inner.outcome()
            o = self._decided
            self.call.emit({"type": "sentiment", "label": o.sentiment, "score": round(o.sentiment_score, 3),
                            "mood": round(o.mood, 3)})
            if o.escalate:
                self.call.escalate(o.reason, o.summary)
        return self._decided

    async def outcome(self) -> TurnOutcome:
        """The decision, with escalation turned into 'wait for a human on this line'."""
        outcome = await self._outcome()
        return replace(outcome, escalate=False) if outcome.escalate else outcome

    async def aclose(self) -> None:
        """Stop the wrapped generation early (barge-in), when it supports that."""
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()


class ListeningBrain:
    """Wraps the per-call brain: reports replies, and goes quiet while the call waits for or has a human."""

    def __init__(self, inner: Brain, call: LiveCall) -> None:
        self.inner = inner
        self.call = call

    def greeting(self) -> str:
        """The brain's greeting."""
        return self.inner.greeting()

    async def respond(self, turn: TurnInput) -> Reply:
        """The brain's reply, or silence while a human handles the call."""
        if self.call.quiet:
            return QuietReply(TurnOutcome())
        return ReportingReply(await self.inner.respond(turn), self.call)

    def retract(self) -> None:
        """Forget the last turn."""
        self.inner.retract()


class HumanSide:
    """Transcribes the human agent's microphone after a takeover (the session only hears the caller)."""

    def __init__(self, call: LiveCall, engine: Engine, user: str) -> None:
        self.call = call
        self.engine = engine
        self.user = user
        self._vad = StreamingVad()
        self._ep = Endpointer(EndpointSettings())
        self._to16 = Resampler(RATE, ASR_RATE)
        self._audio: list[np.ndarray] = []
        self._preroll: deque[np.ndarray] = deque(maxlen=15)  # 300 ms before speech starts
        self._start = 0.0
        self._tasks: set[asyncio.Future[Any]] = set()

    def _now(self) -> float:
        session = self.call.session
        return session.now if session is not None else time.time() - self.call.started_at

    def feed(self, frame: np.ndarray) -> None:
        """One 20 ms frame of the agent's microphone (48 kHz)."""
        audio16 = self._to16(frame)
        (self._audio if self._ep.in_turn else self._preroll).append(audio16)
        for prob in self._vad.feed(audio16):
            event = self._ep.feed(prob)
            if event is Event.SPEECH_START:
                self._audio = list(self._preroll)
                self._preroll.clear()
                self._start = self._now() - len(self._audio) * 0.02
            elif event is Event.TURN_END:
                audio, self._audio = np.concatenate(self._audio), []
                task = asyncio.ensure_future(self._recognize(audio, self._start, self._now()))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _recognize(self, audio: np.ndarray, start: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        rec: Recognition = await loop.run_in_executor(self.engine.executor, self.engine.recognizer.recognize, audio, 1)
        text = rec.text.strip()
        if text:
            segment = {"speaker": "agent", "start": round(start, 3), "end": round(end, 3), "text": text,
                       "human": self.user}
            self.call.human_segments.append(segment)
            self.call.emit({"type": "human_text", "text": text, "agent": self.user})

    async def drain(self) -> None:
        """Wait for utterances still being recognised."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)


class LiveCall:
    """One browser call in progress."""

    def __init__(self, peer: PeerCall, remote: str, transfer_text: str, privacy: Privacy | None = None) -> None:
        self.id = uuid.uuid4().hex[:16]
        self.privacy = privacy
        self.peer = peer
        self.remote = remote
        self.transfer_text = transfer_text
        self.started_at = time.time()
        self.status = "connecting"  # connecting | active | waiting | human | ended
        self.sentiment = "neutral"
        self.mood = 0.0
        self.last_caption: dict[str, Any] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)
        self.session: CallSession | None = None
        self.agent: PeerCall | None = None
        self.agent_user: str | None = None
        self.human_joined = False
        self.escalation: dict[str, Any] | None = None
        self.waiting_since: float | None = None
        self.outcome: str | None = None
        self._human_audio: deque[np.ndarray] = deque(maxlen=10)
        self._agent_task: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.human_agents: list[str] = []
        self.human_segments: list[dict[str, Any]] = []
        self.human_side: HumanSide | None = None
        self._background: set[asyncio.Future[Any]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def quiet(self) -> bool:
        """Whether the assistant must not answer (waiting for, or talking with, a human)."""
        return self.status in ("waiting", "human")

    def emit(self, event: dict[str, Any]) -> None:
        """Record an event and send it to the caller page and to a human agent on the call."""
        if event.get("type") not in PUBLIC_EVENTS:
            return
        item = {"t": round(time.time() - self.started_at, 2), **event}
        self.recent.append(item)
        kind = item["type"]
        if kind in ("partial", "caller_turn"):
            self.last_caption = {"speaker": "caller", "text": item.get("text", "")}
        elif kind in ("agent_partial", "agent_text", "greeting", "transfer_message"):
            self.last_caption = {"speaker": "agent", "text": item.get("text", "")}
        elif kind == "sentiment":
            self.sentiment = str(item.get("label", "neutral"))
            self.mood = float(item.get("mood", 0.0))
        # Redacted for the caller's page too: a caption of a card number would sit in the page,
        # in screen recordings and on a shared screen.
        shown = self.redacted(item)
        self.peer.send_event(shown)
        if self.agent is not None:
            self.agent.send_event(shown)

    def redacted(self, value: Any) -> Any:
        """What the support team may see: PII in captions replaced by placeholders."""
        return self.privacy.record(value) if self.privacy is not None else value

    def recent_events(self) -> list[dict[str, Any]]:
        """Recent events for the console (redacted)."""
        return list(self.redacted(list(self.recent)))

    def on_session_event(self, event: dict[str, Any]) -> None:
        """The CallSession's on_event callback."""
        if event.get("type") == "call_start":
            self.status = "active"
        self.emit({k: v for k, v in event.items() if k != "t"})

    def escalate(self, reason: str, summary: str) -> None:
        """The dialog wants a human: hold the caller and show the call as waiting in the console."""
        self.escalation = {"reason": reason, "summary": summary}
        if self.status != "human":
            self.status = "waiting"
            self.waiting_since = time.time()
        self.emit({"type": "transfer", "reason": reason, "summary": summary})
        self.emit({"type": "waiting"})

    def summary(self) -> dict[str, Any]:
        """What the console's live list shows."""
        return {"id": self.id, "remote": self.remote, "started_at": self.started_at,
                "duration": round(time.time() - self.started_at, 1), "status": self.status,
                "sentiment": self.sentiment, "mood": round(self.mood, 3),
                "last_caption": self.redacted(self.last_caption), "agent": self.agent_user,
                "escalation": self.redacted(self.escalation)}

    # ---- audio around the session -------------------------------------------------------
    async def caller_frames(self, hold_timeout_s: float) -> AsyncIterator[np.ndarray]:
        """The caller's frames for the session; a human agent hears them too."""
        async for frame in self.peer.frames():
            if self.agent is not None and self.status == "human":
                self.agent.send_audio(frame)
            if self.status == "waiting" and self.waiting_since is not None \
                    and time.time() - self.waiting_since > hold_timeout_s:
                self.emit({"type": "hangup", "reason": "no agent available"})
                self.outcome = "abandoned"
                break
            yield frame

    async def sink(self, frame: np.ndarray) -> None:
        """What the caller hears each tick: the assistant, or the human agent after a takeover."""
        session = self.session
        if session is not None and self.quiet:
            # The session's own silence timers would re-prompt and hang up on a caller who is
            # on hold or talking to a person; its clock only knows the assistant's activity.
            session._last_activity = session.now
        if self.status == "human":
            self.peer.send_audio(self._human_audio.popleft() if self._human_audio else np.zeros(FRAME, np.float32))
        else:
            self.peer.send_audio(frame)

    # ---- human takeover ---------------------------------------------------------------
    async def take_over(self, agent: PeerCall, user: str, engine: Engine | None = None) -> None:
        """A signed-in agent joins from the browser; the assistant goes quiet."""
        if self.agent is not None:
            raise AlreadyTaken(f"{self.agent_user} already has this call")
        self.agent, self.agent_user, self.human_joined = agent, user, True
        self.human_agents.append(user)
        self.status = "human"
        session = self.session
        if session is not None:
            # Whatever the assistant was about to say is dropped, so the caller hears only the person.
            session._playout.clear()
        self.emit({"type": "takeover", "agent": user})
        self.human_side = HumanSide(self, engine, user) if engine is not None else None
        self._agent_task = asyncio.ensure_future(self._agent_audio(agent, self.human_side))

    async def _agent_audio(self, agent: PeerCall, side: HumanSide | None) -> None:
        try:
            async for frame in agent.frames():
                self._human_audio.append(frame)
                if side is not None:
                    side.feed(frame)
        except WebRtcError as exc:
            log.info("agent audio ended: %s", exc)
        finally:
            if self.agent is agent:
                self.release()

    def release(self) -> None:
        """The human agent left: the assistant takes the call back."""
        agent, self.agent = self.agent, None
        user, self.agent_user = self.agent_user, None
        if agent is not None:
            agent.hang_up()
            self._spawn(agent.close())
        if self.status == "human":
            self.status = "active"
            self.waiting_since = None
            self.emit({"type": "released", "agent": user})

    def hang_up(self, reason: str) -> None:
        """End the call from the server side."""
        self.emit({"type": "hangup", "reason": reason})
        self.peer.hang_up()

    def transfer(self, reason: str) -> None:
        """Put the caller on hold for a human agent."""
        if self.status in ("active", "connecting"):
            self.escalate(reason, "transfer requested from the console")

    def press(self, digit: str) -> None:
        """A DTMF digit from the caller's keypad: a caller turn of its own when the session takes keys."""
        session = self.session
        press: Callable[[str], Any] | None = getattr(session, "press", None)
        if press is None:
            self.emit({"type": "dtmf", "digit": digit})  # the session reports it itself otherwise
        else:
            result = press(digit)
            if asyncio.iscoroutine(result):
                self._spawn(result)


class LiveCalls:
    """Every browser call of this process."""

    def __init__(self, engine: Engine, store: CallStore, recordings: Path, *, ice_servers: list[str],
                 max_calls: int = 8, hold_timeout_s: float = 120.0, privacy: Privacy | None = None) -> None:
        self.engine = engine
        self.privacy = privacy
        self.store = store
        self.recordings = recordings
        self.ice_servers = ice_servers
        self.max_calls = max_calls
        self.hold_timeout_s = hold_timeout_s
        self.calls: dict[str, LiveCall] = {}
        self.finished: asyncio.Queue[str] = asyncio.Queue()

    def get(self, call_id: str) -> LiveCall | None:
        """A live call by id."""
        return self.calls.get(call_id)

    async def answer(self, sdp: str, kind: str, remote: str) -> tuple[LiveCall, str, str]:
        """Accept a caller's offer and start the call; returns (call, answer sdp, answer type)."""
        if len(self.calls) >= self.max_calls:
            raise LinesBusy("all lines are busy, please try again in a minute")
        peer = PeerCall(self.ice_servers, label="caller")
        try:
            answer = await peer.answer(sdp, kind)
        except Exception:
            await peer.close()
            raise
        call = LiveCall(peer, remote, self.engine.settings.transfer_text, self.privacy)
        peer.on_message = lambda message: self._on_message(call, message)
        self.calls[call.id] = call
        call.task = asyncio.ensure_future(self._run(call))
        return call, answer.sdp, answer.type

    def _on_message(self, call: LiveCall, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "hangup":
            call.peer.hang_up()
        elif kind == "dtmf":
            digit = str(message.get("digit", ""))
            if len(digit) == 1 and digit in "0123456789*#ABCD":
                call.press(digit)

    async def take_over(self, call: LiveCall, sdp: str, kind: str, user: str) -> tuple[str, str]:
        """Connect a human agent's browser to the call."""
        if call.agent is not None:
            raise AlreadyTaken(f"{call.agent_user} already has this call")
        peer = PeerCall(self.ice_servers, label="agent")
        try:
            answer = await peer.answer(sdp, kind)
        except Exception:
            await peer.close()
            raise
        await call.take_over(peer, user, self.engine)
        return answer.sdp, answer.type

    async def _run(self, call: LiveCall) -> None:
        e = self.engine
        recording = self.recordings / f"web-{call.id}.wav"
        session = CallSession(e.recognizer, ListeningBrain(e.brain_factory(), call), e.voice, RATE,
                              settings=e.settings, executor=e.executor, call_id=call.id, recording_path=recording,
                              on_event=call.on_session_event)
        call.session = session
        log_event(log, "web_call_start", call_id=call.id)
        result: CallResult | None = None
        try:
            result = await session.run(call.caller_frames(self.hold_timeout_s), call.sink)
            # A caller who hangs up while the agent speaks leaves that answer out of the transcript:
            # the session closes an agent segment only when its audio has finished playing.
            close_segment = getattr(session, "_close_agent_segment", None)
            if close_segment is not None and getattr(session, "_agent_text_parts", None):
                close_segment()
                result.transcript = session.transcript
        except WebRtcError as exc:
            log_event(log, "web_call_failed", call_id=call.id, error=str(exc))
        except Exception:
            log.exception("browser call %s failed", call.id)
        finally:
            call.status = "ended"
            call.emit({"type": "call_end", "outcome": result.outcome if result else "failed"})
            call.release()
            # Let the last events reach the page before the connection goes.
            await asyncio.sleep(0.2)
            with contextlib.suppress(Exception):
                await call.peer.close()
        try:
            if result is not None and (session.turns or session.tick > 50):
                await self._save(call, result)
        finally:
            # Listed until saved, so a console that sees it gone finds it among past calls.
            self.calls.pop(call.id, None)
            self.finished.put_nowait(call.id)

    async def _save(self, call: LiveCall, result: CallResult) -> None:
        if call.human_side is not None:
            await call.human_side.drain()
        if call.escalation is not None:
            result.outcome = "transferred"
            result.transfer = call.escalation
        if call.outcome:
            result.outcome = call.outcome
        loop = asyncio.get_running_loop()

        def write() -> None:
            save_call(self.store, result, "webrtc", f"browser {call.remote}", started_at=call.started_at,
                      privacy=self.privacy)
            meta: dict[str, Any] = {"human_agents": call.human_agents, "sentiment": call.sentiment}
            if call.human_segments:
                # Added beside the session's transcript, keeping who spoke (save_call keeps only the side).
                human = [{**s, "channel": 1} for s in call.human_segments]
                if self.privacy is not None and self.privacy.store:
                    human = self.privacy.record(human)
                self.store.add_segments(result.call_id, human)
                text = " ".join(s["text"] for s in self.store.segments(result.call_id))
                self.store.update_call(result.call_id, text=text)
            self.store.update_call(result.call_id, meta=meta)

        await loop.run_in_executor(None, write)
        log_event(log, "web_call_saved", call_id=call.id, outcome=result.outcome)

    async def close(self) -> None:
        """Hang up every call and wait for them to be saved."""
        for call in list(self.calls.values()):
            call.hang_up("server stopping")
        tasks = [c.task for c in list(self.calls.values()) if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
