"""Live calls: the registry the console sees, browser calls' sessions, and human takeover of any call.

Every call in progress, browser (WebRTC) or phone (SIP), is a ``LiveCall`` in ``LiveCalls``: the
console lists it, watches its captions and can take it over. A call reaches the registry through
a small ``CallerLeg`` (events to the caller, hang up); the caller's frames pass through
``LiveCall.caller_frames`` so that a human agent hears them, at whatever rate the leg runs.
Takeover uses only the session's public API: ``interrupt()`` and ``hold_assistant()`` quieten the
assistant (the caller is still transcribed), ``play_human()`` puts the person's voice into the call
and its recording, ``record_human()`` their words into the transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from asr.streaming import Endpointer, EndpointSettings, Event, Recognition, StreamingVad
from telephony.webrtc import RATE, PeerCall, WebRtcError
from voice_agent.admission import LoadMonitor
from voice_agent.assist import AgentAssist, live_summary
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


class CallerLeg(Protocol):
    """What the registry needs from a call's transport (a WebRTC peer, a SIP dialog)."""

    def send_event(self, event: dict[str, Any]) -> None:
        """Show an event to the caller (a phone has no screen: nothing)."""
        ...

    def hang_up(self) -> None:
        """End the call from our side."""
        ...


class ReportingReply:
    """A dialog reply whose text and decision are also sent to the caller page and console.

    ``hold_on_escalate``: an escalation holds the caller on this line for a console agent (browser
    calls); otherwise (phone calls) the session's own transfer goes ahead unchanged.
    """

    def __init__(self, inner: Reply, call: LiveCall, hold_on_escalate: bool = True) -> None:
        self.inner = inner
        self.call = call
        self.hold_on_escalate = hold_on_escalate
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
        if outcome.escalate and self.hold_on_escalate and not self.call.human_joined:
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
            if o.escalate and self.hold_on_escalate:
                self.call.escalate(o.reason, o.summary)
        return self._decided

    async def outcome(self) -> TurnOutcome:
        """The decision, with escalation turned into 'wait for a human on this line' when asked to."""
        outcome = await self._outcome()
        return replace(outcome, escalate=False) if outcome.escalate and self.hold_on_escalate else outcome

    async def aclose(self) -> None:
        """Stop the wrapped generation early (barge-in), when it supports that."""
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()


class ListeningBrain:
    """Wraps the per-call brain so that its replies reach the caller page and the console.

    It never answers for a quiet assistant: the session itself does not ask while held.
    """

    def __init__(self, inner: Brain, call: LiveCall, hold_on_escalate: bool = True) -> None:
        self.inner = inner
        self.call = call
        self.hold_on_escalate = hold_on_escalate

    def greeting(self) -> str:
        """The brain's greeting."""
        return self.inner.greeting()

    async def respond(self, turn: TurnInput) -> Reply:
        """The brain's reply, reported as it streams."""
        return ReportingReply(await self.inner.respond(turn), self.call, self.hold_on_escalate)

    def retract(self) -> None:
        """Forget the last turn."""
        self.inner.retract()

    def summary(self) -> str:
        """The dialog's summary of the call so far, or '' when the brain keeps none."""
        summary = getattr(self.inner, "summary", None)
        return str(summary()) if callable(summary) else ""


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
        if not text:
            return
        session = self.call.session
        if session is not None:
            session.record_human(text, start, end, self.user)  # transcript and the human_text event
        else:
            self.call.emit({"type": "human_text", "text": text, "agent": self.user})

    async def drain(self) -> None:
        """Wait for utterances still being recognised."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)


class LiveCall:
    """One call in progress (browser or phone), as the console sees and handles it."""

    def __init__(self, leg: CallerLeg, remote: str, transfer_text: str, privacy: Privacy | None = None, *,
                 kind: str = "webrtc", rate: int = RATE, call_id: str | None = None) -> None:
        self.id = call_id or uuid.uuid4().hex[:16]
        self.privacy = privacy
        self.leg = leg
        self.kind = kind  # webrtc | phone
        self.rate = rate  # of the caller's frames
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
        self._to_agent = Resampler(rate, RATE)  # the caller as the agent's browser hears it (48 kHz)
        self._agent_task: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.human_agents: list[str] = []
        self.human_side: HumanSide | None = None
        self.caller_link: Any = None  # voice_agent.customers.CallerLink: the customer, when known
        self.assist: AgentAssist | None = None  # KB suggestions for the human agent, from the takeover on
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
        self.leg.send_event(shown)
        if self.agent is not None:
            self.agent.send_event(shown)
        if kind in ("partial", "caller_turn") and self.assist is not None:
            self.assist.heard(str(event.get("text", "")), kind == "caller_turn")

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
        if event.get("type") == "call_end":
            self.status = "ended"

    def escalate(self, reason: str, summary: str) -> None:
        """The dialog wants a human: hold the caller and show the call as waiting in the console."""
        self.escalation = {"reason": reason, "summary": summary}
        if self.status != "human":
            self.status = "waiting"
            self.waiting_since = time.time()
        if self.session is not None:
            self.session.hold_assistant("waiting for a human")  # the hold message already playing goes on
        self.emit({"type": "transfer", "reason": reason, "summary": summary})
        self.emit({"type": "waiting"})

    def summary(self) -> dict[str, Any]:
        """What the console's live list shows."""
        return {"id": self.id, "kind": self.kind, "remote": self.remote, "started_at": self.started_at,
                "duration": round(time.time() - self.started_at, 1), "status": self.status,
                "sentiment": self.sentiment, "mood": round(self.mood, 3),
                "last_caption": self.redacted(self.last_caption), "agent": self.agent_user,
                "escalation": self.redacted(self.escalation),
                "customer": self.caller_link.card() if self.caller_link is not None else None}

    # ---- audio around the session -------------------------------------------------------
    async def caller_frames(self, frames: AsyncIterator[np.ndarray], hold_timeout_s: float | None = None
                            ) -> AsyncIterator[np.ndarray]:
        """The caller's frames for the session; a human agent hears them too."""
        async for frame in frames:
            agent = self.agent
            if agent is not None and self.status == "human":
                agent.send_audio(self._to_agent(frame))
            if hold_timeout_s is not None and self.status == "waiting" and self.waiting_since is not None \
                    and time.time() - self.waiting_since > hold_timeout_s:
                self.emit({"type": "hangup", "reason": "no agent available"})
                self.outcome = "abandoned"
                break
            yield frame

    # ---- human takeover ---------------------------------------------------------------
    async def take_over(self, agent: PeerCall, user: str, engine: Engine | None = None) -> None:
        """A signed-in agent joins from the browser; the assistant goes quiet but keeps transcribing."""
        if self.agent is not None:
            raise AlreadyTaken(f"{self.agent_user} already has this call")
        self.agent, self.agent_user, self.human_joined = agent, user, True
        self.human_agents.append(user)
        self.status = "human"
        session = self.session
        if session is not None:
            session.hold_assistant(f"takeover by {user}")
            # Whatever the assistant was saying or about to say is dropped: the caller hears only the person.
            await session.interrupt()
        self.emit({"type": "takeover", "agent": user})
        self.human_side = HumanSide(self, engine, user) if engine is not None else None
        if engine is not None:
            self._start_assist(engine)
        self._agent_task = asyncio.ensure_future(self._agent_audio(agent, self.human_side))

    async def _agent_audio(self, agent: PeerCall, side: HumanSide | None) -> None:
        try:
            async for frame in agent.frames():
                session = self.session
                if session is not None and self.agent is agent:
                    session.play_human(frame, RATE)  # to the caller, and into the call's recording
                if side is not None:
                    side.feed(frame)
        except WebRtcError as exc:
            log.info("agent audio ended: %s", exc)
        finally:
            if self.agent is agent:
                self.release()

    def _start_assist(self, engine: Engine) -> None:
        """KB suggestions and the summary for the agent, for the caller's last question and each one after."""
        self.assist = AgentAssist(engine.suggest, self._to_agent_console, engine.executor)
        self._to_agent_console(self.assist.latest)
        asked = [e for e in self.recent if e.get("type") == "caller_turn"]
        if asked:
            self.assist.heard(str(asked[-1].get("text", "")), True)

    def assist_view(self) -> dict[str, Any] | None:
        """What the agent's console shows beside the captions: the summary so far and the latest suggestions."""
        if self.assist is None:
            return None
        brain = self.session.brain if self.session is not None else None
        dialog_summary = brain.summary() if isinstance(brain, ListeningBrain) else ""
        summary = live_summary(dialog_summary, list(self.recent), self.escalation)
        return dict(self.redacted({**self.assist.latest, "summary": summary}))

    def _to_agent_console(self, event: dict[str, Any]) -> None:
        # Suggestions are for the agent only: never on the caller's page.
        view = self.assist_view()
        if self.agent is not None and view is not None:
            self.agent.send_event(view)

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
            if self.session is not None:
                self.session.resume_assistant()
            self.emit({"type": "released", "agent": user})

    async def finish(self) -> None:
        """The call ended: let the human agent go and wait for their last words to be transcribed."""
        self.status = "ended"
        self.release()
        if self.human_side is not None:
            await self.human_side.drain()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)

    def hang_up(self, reason: str) -> None:
        """End the call from the server side."""
        self.emit({"type": "hangup", "reason": reason})
        self.leg.hang_up()

    def transfer(self, reason: str) -> None:
        """Put the caller on hold for a human agent."""
        if self.status in ("active", "connecting"):
            self.escalate(reason, "transfer requested from the console")

    def press(self, digit: str) -> None:
        """A DTMF digit from the caller's keypad: a caller turn of its own."""
        session = self.session
        if session is None:
            self.emit({"type": "dtmf", "digit": digit})  # the session reports it itself otherwise
        else:
            session.press(digit)


class LiveCalls:
    """Every live call of this process: browser calls it runs, and phone calls the SIP front end registers."""

    def __init__(self, engine: Engine, store: CallStore, recordings: Path, *, ice_servers: list[str],
                 max_calls: int = 8, hold_timeout_s: float = 120.0, privacy: Privacy | None = None,
                 load: LoadMonitor | None = None) -> None:
        self.load = load  # measured load: a new browser call is turned away when it cannot be answered in time
        self.engine = engine
        self.privacy = privacy
        self.store = store
        self.recordings = recordings
        self.ice_servers = ice_servers
        self.max_calls = max_calls
        self.hold_timeout_s = hold_timeout_s
        self.calls: dict[str, LiveCall] = {}
        self.finished: asyncio.Queue[str] = asyncio.Queue()  # browser calls that ended (cluster bookkeeping)
        self.callers: Any = None  # voice_agent.customers.Callers: who is calling (signed widget references)

    def get(self, call_id: str) -> LiveCall | None:
        """A live call by id."""
        return self.calls.get(call_id)

    def active_calls(self) -> int:
        """Calls in progress in this process, browser and phone (what the engine's load is made of)."""
        return len(self.calls)

    def browser_calls(self) -> int:
        """Browser calls in progress (the ones ``max_calls`` limits)."""
        return sum(1 for c in self.calls.values() if c.kind == "webrtc")

    # ---- calls of other front ends ------------------------------------------------------
    def register(self, leg: CallerLeg, call_id: str, remote: str, rate: int, kind: str) -> LiveCall:
        """List a call another front end runs (a phone call), so the console can watch and take it over.

        The front end wires its session with ``watch``, passes the caller's frames through
        ``LiveCall.caller_frames``, and calls ``unregister`` when the call is over.
        """
        call = LiveCall(leg, remote, self.engine.settings.transfer_text, self.privacy, kind=kind, rate=rate,
                        call_id=call_id)
        self.calls[call.id] = call
        return call

    def watch(self, call: LiveCall, session: CallSession) -> None:
        """Attach the call's session: its events and replies reach the console, takeover can quieten it."""
        call.session = session
        session.brain = ListeningBrain(session.brain, call, hold_on_escalate=False)

    async def unregister(self, call: LiveCall) -> None:
        """The registered call is over: the human agent is told and let go, and their last words transcribed."""
        try:
            if call.status != "ended":  # the session reports its own end; a session that failed did not
                call.emit({"type": "call_end", "outcome": call.outcome or "ended"})
            await call.finish()
        finally:
            self.calls.pop(call.id, None)

    # ---- browser calls ----------------------------------------------------------------------
    async def answer(self, sdp: str, kind: str, remote: str,
                     customer_ref: str | None = None) -> tuple[LiveCall, str, str]:
        """Accept a caller's offer and start the call; returns (call, answer sdp, answer type)."""
        if self.browser_calls() >= self.max_calls:
            raise LinesBusy("all lines are busy, please try again in a minute")
        refusal = self.load.refusal(self.active_calls()) if self.load is not None else None
        if refusal is not None:
            log.warning("webrtc_call_refused_overloaded", extra={"fields": {"why": refusal.reason}})
            raise LinesBusy("we are answering a lot of calls right now, please try again in a minute")
        peer = PeerCall(self.ice_servers, label="caller")
        try:
            answer = await peer.answer(sdp, kind)
        except Exception:
            await peer.close()
            raise
        call = LiveCall(peer, remote, self.engine.settings.transfer_text, self.privacy)
        if self.callers is not None:
            call.caller_link = await self.callers.for_reference(customer_ref)
        peer.on_message = lambda message: self._on_message(call, message)
        self.calls[call.id] = call
        call.task = asyncio.ensure_future(self._run(call, peer))
        return call, answer.sdp, answer.type

    def _on_message(self, call: LiveCall, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "hangup":
            call.leg.hang_up()
        elif kind == "dtmf":
            digit = str(message.get("digit", ""))
            if len(digit) == 1 and digit in "0123456789*#ABCD":
                call.press(digit)

    async def take_over(self, call: LiveCall, sdp: str, kind: str, user: str) -> tuple[str, str]:
        """Connect a human agent's browser to the call (browser or phone)."""
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

    async def _run(self, call: LiveCall, peer: PeerCall) -> None:
        e = self.engine
        link = call.caller_link
        recording = self.recordings / f"web-{call.id}.wav" if link is None or link.may_record else None
        session = CallSession(e.recognizer, ListeningBrain(e.brain_factory(), call), e.voice, RATE,
                              settings=e.settings, executor=e.executor, call_id=call.id, recording_path=recording,
                              on_event=call.on_session_event)
        call.session = session
        if link is not None:
            link.attach(session.brain, call.id)  # greets by name, knows the plan and last calls
        log_event(log, "web_call_start", call_id=call.id)
        result: CallResult | None = None

        async def sink(frame: np.ndarray) -> None:
            peer.send_audio(frame)

        try:
            result = await session.run(call.caller_frames(peer.frames(), self.hold_timeout_s), sink)
        except WebRtcError as exc:
            log_event(log, "web_call_failed", call_id=call.id, error=str(exc))
        except Exception:
            log.exception("browser call %s failed", call.id)
        finally:
            call.status = "ended"
            call.emit({"type": "call_end", "outcome": result.outcome if result else "failed"})
            await call.finish()
            # Let the last events reach the page before the connection goes.
            await asyncio.sleep(0.2)
            with contextlib.suppress(Exception):
                await peer.close()
        try:
            if result is not None and (session.turns or session.tick > 50):
                result.transcript = session.transcript  # with the human agent's last words
                await self._save(call, result)
        finally:
            # Listed until saved, so a console that sees it gone finds it among past calls.
            self.calls.pop(call.id, None)
            self.finished.put_nowait(call.id)

    async def _save(self, call: LiveCall, result: CallResult) -> None:
        if call.escalation is not None:
            result.outcome = "transferred"
            result.transfer = call.escalation
        if call.outcome:
            result.outcome = call.outcome
        loop = asyncio.get_running_loop()

        def write() -> None:
            save_call(self.store, result, "webrtc", f"browser {call.remote}", started_at=call.started_at,
                      privacy=self.privacy)
            self.store.update_call(result.call_id, meta={"human_agents": call.human_agents,
                                                          "sentiment": call.sentiment,
                                                          **(call.caller_link.meta() if call.caller_link else {})})

        await loop.run_in_executor(None, write)
        log_event(log, "web_call_saved", call_id=call.id, outcome=result.outcome)

    async def close(self) -> None:
        """Hang up every browser call and wait for them to be saved (phone calls end with their front end)."""
        mine = [c for c in list(self.calls.values()) if c.task is not None]
        for call in mine:
            call.hang_up("server stopping")
        tasks = [c.task for c in mine if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
