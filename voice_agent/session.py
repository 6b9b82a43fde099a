"""One live call: caller audio in, VAD + endpointing + ASR -> dialog -> TTS -> agent audio out.

The session is driven by the caller's 20 ms frames: each frame in is one tick,
and each tick sends exactly one agent frame (speech or silence), so both sides
of the recording are aligned by construction and every timestamp is "line
time" (ticks x 20 ms). Model work runs in an executor or in its own tasks; the
tick loop never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
import wave
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asr.streaming import Endpointer, EndpointSettings, Event, Recognition, StreamingVad, UtteranceRecognizer
from voice_agent import metrics
from voice_agent.logs import call_id_var, log_event
from voice_agent.ports import Brain, Reply, Spoken, TurnInput, TurnOutcome, Voice
from voice_agent.store.files import private_file

log = logging.getLogger("voice_agent.session")

FRAME_S = 0.02
ASR_RATE = 16000
HUMAN_QUEUE_FRAMES = 10  # a person's audio arrives on another clock: keep at most 200 ms of it
# Short acknowledgements and noises that must not interrupt the agent.
BACKCHANNEL = {
    "uh-huh", "uh huh", "mm-hmm", "mm hmm", "mhm", "hmm", "mm", "okay", "ok", "yeah", "yes", "yep", "right",
    "sure", "uh", "um", "ah", "oh", "i see", "alright", "all right", "got it", "cool", "", "you", "thank you",
}
# Words that are not yet the answer: the same list as ../shared/peers/answer_latency.py, which measures the
# first *content* word on the recording ("Okay." and "Sure, let me check." are acknowledgements; an empathy
# opener such as "I'm sorry about the trouble." is content there, and so it is here).
ACK_WORDS = frozenset({
    "okay", "ok", "sure", "right", "alright", "all", "yes", "yeah", "well", "so", "um", "uh", "hmm", "got", "it",
    "thanks", "thank", "you", "let", "me", "check", "see", "one", "moment", "i", "a", "just"})
LOOP_TICK_S = 0.02  # the event-loop watch wakes this often and records how late it woke


def content_offset(text: str, complete: bool = True) -> int | None:
    """Character offset of the first word of ``text`` that is not an acknowledgement (None: none yet).

    ``complete=False``: the text is still streaming, so its last word counts only once whitespace follows it.
    """
    for m in re.finditer(r"\S+", text):
        if not complete and m.end() == len(text):
            return None
        if m.group(0).lower().strip(".,!?'\"") not in ACK_WORDS:
            return m.start()
    return None


@dataclass
class SessionSettings:
    """Behaviour of a call (times in seconds)."""

    reprompt_after_s: float = 8.0
    max_reprompts: int = 2
    max_call_s: float = 900.0
    barge_in_ms: int = 300
    merge_window_s: float = 1.5  # a fragment this soon after a turn joins it
    filler_after_s: float = 0.9  # say a short acknowledgement if the answer is not ready by then
    echo_residual: float = 0.35  # caller audio explained by the agent's echo below this ratio (0: no guard)
    echo_floor_db: float = -50.0  # caller audio left unexplained by the echo below this level is line noise
    asr_beam: int = 1
    partial_every_s: float = 1.0  # re-decode the growing turn for live captions
    reprompt_text: str = "Are you still there? How can I help you?"
    hangup_text: str = "I can't hear anything, so I'll end the call now. Please call back any time. Goodbye."
    transfer_text: str = "I'm transferring you to a colleague now. Please hold for a moment."
    max_call_text: str = "We have reached the time limit for this call. Thank you for calling, goodbye."
    fillers: tuple[str, ...] = ("Okay.", "Sure.", "Right.")
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    # Opens the recording (path, rate) -> writeframes/close; voice_agent.protection seals it when a key is set.
    recorder: Callable[[Path, int], Any] | None = None


@dataclass
class TurnRecord:
    """One exchange with its timestamps (line time, seconds) and latency."""

    index: int
    caller_text: str = ""
    agent_text: str = ""
    sentiment: str = ""
    sentiment_score: float = 0.0
    end_of_speech: float | None = None
    asr_final: float | None = None
    llm_first_token: float | None = None
    tts_first_audio: float | None = None
    first_audio_out: float | None = None
    voice_to_voice_ms: float | None = None  # kept for compatibility: the same figure as first_audio_ms
    # Latency as the caller hears it. first_audio: any agent sound after the caller's speech (a cached
    # "Okay." or a filler included), led by asr_final -> llm_first_token -> tts_first_audio -> first_audio_out.
    # answer_audio: the first content word (ACK_WORDS skipped), led by asr_final -> answer_first_text (the
    # reply's first content text) -> answer_tts_audio (its audio synthesized) -> answer_audio_out (played).
    first_audio_ms: float | None = None
    first_audio_kind: str = ""  # what it was: filler, ack (the reply's own acknowledgement) or answer
    answer_first_text: float | None = None
    answer_tts_audio: float | None = None
    answer_audio_out: float | None = None
    answer_audio_ms: float | None = None
    interrupted: bool = False
    intent: str = ""
    filler: bool = False  # a short acknowledgement went out before the answer was ready
    action: str = ""  # the brain's decision: answer, clarify, not_found, escalate...
    escalate: bool = False
    sources: list[dict[str, Any]] = field(default_factory=list)  # retrieved KB entries {id, score}, best first
    guard_rejections: int = 0  # generated sentences the grounding guard refused (the reply fell back to the KB text)


@dataclass
class CallResult:
    """Everything a call produced."""

    call_id: str
    outcome: str
    duration: float
    turns: list[TurnRecord]
    events: list[dict[str, Any]]
    transcript: list[dict[str, Any]]
    sentiment_timeline: list[dict[str, Any]]
    recording: str | None
    transfer: dict[str, Any] | None = None
    loop_lag: dict[str, float | None] = field(default_factory=dict)  # event-loop tick lateness (ms)

    def report(self) -> dict[str, Any]:
        """The JSON report of the call."""
        lat = [t.voice_to_voice_ms for t in self.turns if t.voice_to_voice_ms is not None]
        first = [t.first_audio_ms for t in self.turns if t.first_audio_ms is not None]
        answer = [t.answer_audio_ms for t in self.turns if t.answer_audio_ms is not None]
        return {
            "call_id": self.call_id,
            "turns": [asdict(t) for t in self.turns],
            "events": self.events,
            "transcript": self.transcript,
            "sentiment_timeline": self.sentiment_timeline,
            "summary": {
                "outcome": self.outcome,
                "duration_s": round(self.duration, 2),
                "turns": len(self.turns),
                "p50_voice_to_voice_ms": _pct(lat, 50),
                "p95_voice_to_voice_ms": _pct(lat, 95),
                "p50_first_audio_ms": _pct(first, 50),
                "p95_first_audio_ms": _pct(first, 95),
                "p50_answer_audio_ms": _pct(answer, 50),
                "p95_answer_audio_ms": _pct(answer, 95),
                "loop_lag_p99_ms": self.loop_lag.get("p99_ms"),
                "loop_lag_max_ms": self.loop_lag.get("max_ms"),
                "transfer": self.transfer,
            },
            "recording": self.recording,
        }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def trailing_silence(audio: np.ndarray, silence_s: float) -> float:
    """Seconds from the last clearly voiced 5 ms of a turn's 16 kHz audio to its end (``silence_s`` if unclear).

    Silero decides in 32 ms chunks and releases slowly, so its silence count starts 50-80 ms after the
    speech stops. The energy rule of ../shared/peers/v2v.py (which measures the recording) finds the edge:
    threshold = max(floor + 12 dB, peak - 45 dB, -65 dBFS) over the turn's 20 ms frames. Only an edge within
    0.3 s before (or one chunk after) Silero's estimate is believed.
    """
    block = ASR_RATE // 200
    n = (len(audio) // (4 * block)) * 4
    if n < 20:
        return silence_s
    x = audio[len(audio) - n * block :].astype(np.float64).reshape(n, block)
    energy = np.mean(x * x, axis=1)
    frames = 10 * np.log10(energy.reshape(-1, 4).mean(axis=1) + 1e-10)
    thr = max(float(np.percentile(frames, 10)) + 12, float(np.percentile(frames, 99)) - 45, -65.0)
    voiced = np.flatnonzero(10 * np.log10(energy + 1e-10) >= thr)
    if not len(voiced):
        return silence_s
    trailing = (n - 1 - int(voiced[-1])) * block / ASR_RATE
    return trailing if silence_s - 0.032 <= trailing <= silence_s + 0.3 else silence_s


class Resampler:
    """Stateful resampling of a stream of frames (no clicks at frame edges)."""

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self._r: Any = None
        if src != dst:
            import av

            self._r = av.AudioResampler(format="flt", layout="mono", rate=dst)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self._r is None:
            return frame.astype(np.float32, copy=False)
        import av

        f = av.AudioFrame.from_ndarray(frame.astype(np.float32)[np.newaxis, :], format="flt", layout="mono")
        f.sample_rate = self.src
        out = [o.to_ndarray().reshape(-1) for o in self._r.resample(f)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class Playout:
    """Agent audio waiting to go out, in 20 ms frames; can pause, resume and flush.

    Text put with audio is a mark at the audio's first sample: ``heard()`` hands back the texts
    whose audio has started playing, so transcripts say what the caller heard, not what was
    generated. ``limit`` (frames) drops the oldest audio when a producer on another clock runs ahead.
    """

    def __init__(self, rate: int, limit: int | None = None) -> None:
        self.rate = rate
        self.n = int(rate * FRAME_S)
        self.limit = limit
        self._frames: deque[np.ndarray] = deque()
        self._rest = np.zeros(0, np.float32)
        self.paused = False
        self._queued = 0  # samples put so far (frames and rest)
        self._played = 0  # samples sent so far
        self._marks: deque[tuple[int, str]] = deque()
        self._heard: list[str] = []

    def put(self, audio: np.ndarray, text: str = "") -> None:
        """Queue audio (any length); ``text`` is what it says (heard once its first frame plays)."""
        if text:
            self._marks.append((self._queued, text))
        self._queued += len(audio)
        data = np.concatenate([self._rest, audio.astype(np.float32, copy=False)])
        whole = len(data) // self.n
        for i in range(whole):
            self._frames.append(data[i * self.n : (i + 1) * self.n])
        self._rest = data[whole * self.n :]
        if self.limit is not None:
            while len(self._frames) > self.limit:
                self._frames.popleft()
                self._played += self.n
                self._reach()

    def mark(self, text: str) -> None:
        """Text with no audio of its own: heard with the last queued sample (now, when nothing is queued)."""
        if not text:
            return
        if self.pending:
            self._marks.append((self._queued - 1, text))
        else:
            self._heard.append(text)

    def flush_tail(self) -> None:
        """Pad and queue the last partial frame."""
        if len(self._rest):
            pad = self.n - len(self._rest)
            self._frames.append(np.concatenate([self._rest, np.zeros(pad, np.float32)]))
            self._queued += pad
            self._rest = np.zeros(0, np.float32)

    def next(self) -> np.ndarray | None:
        """The next frame to send, or None for silence."""
        if self.paused or not self._frames:
            return None
        self._played += self.n
        self._reach()
        return self._frames.popleft()

    def _reach(self) -> None:
        while self._marks and self._marks[0][0] < self._played:
            self._heard.append(self._marks.popleft()[1])

    def heard(self) -> list[str]:
        """Texts whose audio started playing since the last call."""
        out, self._heard = self._heard, []
        return out

    def clear(self) -> int:
        """Drop everything queued (and the texts not yet heard); returns the frames dropped."""
        dropped = len(self._frames)
        self._frames.clear()
        self._rest = np.zeros(0, np.float32)
        self._marks.clear()
        self._queued = self._played
        self.paused = False
        return dropped

    @property
    def pending(self) -> bool:
        """Whether audio is waiting (paused or not)."""
        return bool(self._frames) or bool(len(self._rest))

    @property
    def queued(self) -> int:
        """Samples put so far (less what ``clear`` dropped): the position the next ``put`` starts at."""
        return self._queued

    @property
    def played(self) -> int:
        """Samples sent so far (the last frame sent ends here)."""
        return self._played


class EchoGuard:
    """Tells the caller's voice from the agent's own voice coming back on the line.

    A phone's hybrid sends the agent's voice back delayed (40-250 ms), quieter (-6 to -20 dB), through
    G.711 and with line noise. Caller audio is echo when a delayed, scaled copy of what the agent sent
    explains all but ``threshold`` of its energy, or when what it leaves unexplained is quieter than
    ``floor_db`` (the line's noise, not a voice). ``gate`` applies that to each frame before the VAD hears
    it, so the agent's own voice never starts a caller turn; speech over the echo passes untouched.
    """

    def __init__(self, seconds: float = 3.0, threshold: float = 0.35, floor_db: float = -50.0,
                 window_s: float = 0.1) -> None:
        self.ref = np.zeros(int(ASR_RATE * seconds), np.float32)
        self.threshold = threshold  # 0 switches the guard off
        self.floor = 10 ** (floor_db / 20)
        self._recent: deque[np.ndarray] = deque()
        self._recent_n = 0
        self._window = int(ASR_RATE * window_s)

    def is_echo(self, caller16: np.ndarray, max_delay_s: float = 0.6) -> bool:
        """Whether this caller audio is the agent's echo (plus line noise) rather than the caller's voice."""
        if self.threshold <= 0 or not len(caller16):
            return False
        ratio, rest = self._unexplained(caller16, max_delay_s)
        return ratio < self.threshold or (ratio < 1.0 and rest < self.floor)

    def gate(self, caller16: np.ndarray) -> np.ndarray:
        """The caller frame, or silence when the last ``window_s`` of caller audio is the agent's echo."""
        self._recent.append(caller16)
        self._recent_n += len(caller16)
        while self._recent_n - len(self._recent[0]) >= self._window:
            self._recent_n -= len(self._recent.popleft())
        if self.threshold <= 0 or float(np.abs(self.ref[-int(0.7 * ASR_RATE) :]).max(initial=0.0)) < 1e-4:
            return caller16  # the agent has not spoken lately: nothing can be echo
        if self.is_echo(np.concatenate(self._recent)):
            return np.zeros_like(caller16)
        return caller16

    def push(self, agent16: np.ndarray) -> None:
        """Remember what the agent just sent (16 kHz)."""
        n = len(agent16)
        if n:
            self.ref = np.roll(self.ref, -n)
            self.ref[-n:] = agent16

    def residual(self, caller16: np.ndarray, max_delay_s: float = 0.6) -> float:
        """Energy of the caller audio not explained by a delayed, scaled copy of the agent (0..1)."""
        return self._unexplained(caller16, max_delay_s)[0]

    def _unexplained(self, caller16: np.ndarray, max_delay_s: float) -> tuple[float, float]:
        """(share of the caller energy left unexplained, 0..1; RMS of what is left)."""
        x = caller16.astype(np.float64)
        ex = float(np.dot(x, x))
        n = len(x)
        if ex < 1e-9:
            return 1.0, 0.0
        span = self.ref[-(n + int(max_delay_s * ASR_RATE)) :].astype(np.float64)
        if float(np.dot(span, span)) < 1e-9:
            return 1.0, float(np.sqrt(ex / n))
        # Cross-correlation by FFT over all delays; best least-squares gain at each.
        size = 1 << int(np.ceil(np.log2(len(span) + n)))
        corr = np.fft.irfft(np.fft.rfft(span, size) * np.conj(np.fft.rfft(x, size)), size)[: len(span) - n + 1]
        sums = np.concatenate([[0.0], np.cumsum(span**2)])
        energy = np.maximum(sums[n:] - sums[:-n], 1e-9)
        left = max(0.0, ex - float((corr**2 / energy).max()))
        return left / ex, float(np.sqrt(left / n))


class CallSession:
    """Runs one call from start to end."""

    def __init__(
        self,
        recognizer: UtteranceRecognizer,
        brain: Brain,
        voice: Voice,
        rate: int,
        *,
        settings: SessionSettings | None = None,
        executor: Executor | None = None,
        call_id: str | None = None,
        recording_path: Path | None = None,
        on_event: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
        outgoing: Callable[[np.ndarray], np.ndarray] | None = None,
        on_turn: Callable[[TurnRecord], None] | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.brain = brain
        self.voice = voice
        self.rate = rate
        self.s = settings or SessionSettings()
        self.executor = executor
        self.call_id = call_id or uuid.uuid4().hex[:16]
        self.recording_path = recording_path
        self.on_event = on_event
        self.on_turn = on_turn  # called with each answered turn as it finishes (to store it at once)
        self.outgoing = outgoing  # what the line does to agent audio (G.711 in simulations)
        self.busy = 0  # model work in flight: simulated sources pace in real time while > 0
        self.tick = 0
        self.turns: list[TurnRecord] = []
        self.events: list[dict[str, Any]] = []
        self.transcript: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.outcome = ""
        self.transfer: dict[str, Any] | None = None
        self._vad = StreamingVad()
        self._ep = Endpointer(self.s.endpoint)
        self._to16 = Resampler(rate, ASR_RATE)
        self._agent16 = Resampler(rate, ASR_RATE)
        self._playout = Playout(rate)
        self._echo = EchoGuard(threshold=self.s.echo_residual, floor_db=self.s.echo_floor_db)
        self._turn_audio: list[np.ndarray] = []
        self._preroll: deque[np.ndarray] = deque(maxlen=15)  # 300 ms before speech start
        self._spec: asyncio.Task[Recognition] | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._settling: asyncio.Future[Any] | None = None  # an interrupted reply still closing
        self._pending_text = ""  # caller text of the reply in progress (for merging)
        self._reply_started_audio = False
        self._last_turn_end = -1e9
        self._last_activity = 0.0
        self._reprompts = 0
        self._ending = False
        self._barge_check: asyncio.Task[None] | None = None
        self._agent_speaking_since: float | None = None
        self._current_turn: TurnRecord | None = None
        self._agent_segment_start: float | None = None
        self._agent_text_parts: list[str] = []  # what the caller heard of the open agent segment
        self._human_out = Playout(rate, limit=HUMAN_QUEUE_FRAMES)  # a person's voice after a takeover
        self._human_in: dict[int, Resampler] = {}
        self._held = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._partial: asyncio.Task[Any] | None = None
        self._partial_at = 0.0
        self._speech_start_t = 0.0
        self._answer_at: tuple[TurnRecord, int] | None = None  # where the answer's first content sample is queued
        self._unreported: list[TurnRecord] = []  # finished turns whose answer audio has not played yet
        self._lags: list[float] = []  # event-loop tick lateness (s)

    # ---- time and events -------------------------------------------------------------
    @property
    def now(self) -> float:
        """Line time in seconds."""
        return self.tick * FRAME_S

    def _event(self, kind: str, **data: Any) -> None:
        item = {"t": round(self.now, 3), "type": kind, **data}
        self.events.append(item)
        metrics.EVENTS.labels(kind).inc()
        log_event(log, kind, call_id=self.call_id, t=item["t"], **{k: v for k, v in data.items() if k != "summary"})
        if self.on_event is not None:
            result = self.on_event(item)
            if asyncio.iscoroutine(result):
                self._spawn(result)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run background work owned by this call (kept referenced, cancelled at the end)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _in_executor(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            self.busy -= 1

    # ---- main loop --------------------------------------------------------------------
    async def run(
        self, source: AsyncIterator[np.ndarray], sink: Callable[[np.ndarray], Awaitable[None]]
    ) -> CallResult:
        """Converse until hang-up, transfer, time limit or the end of the caller's audio."""
        call_id_var.set(self.call_id)
        wav = self._open_recording()
        metrics.ACTIVE_CALLS.inc()
        self._event("call_start", rate=self.rate)
        watch = asyncio.ensure_future(self._watch_loop())
        await self._say_prompt(self.brain.greeting(), kind="greeting")
        silence = np.zeros(self._playout.n, np.float32)
        try:
            async for frame in source:
                self.tick += 1
                agent = self._playout.next()
                out = silence if agent is None else agent
                if self.outgoing is not None and agent is not None:
                    out = self.outgoing(out)
                human = self._human_out.next()
                if human is not None:
                    out = human if agent is None else np.clip(out + human, -1.0, 1.0)
                await sink(out)
                self._on_agent_frame(out, agent is not None)
                if wav is not None:
                    _write_stereo(wav, frame, out)
                await self._on_caller_frame(frame)
                if self._ending and not self._playout.pending and not self._reply_running() and not self._tasks:
                    break
                self._timers()
        finally:
            watch.cancel()
            left = [t for t in (self._reply_task, self._spec, self._barge_check, *self._tasks) if t is not None]
            for task in left:
                if not task.done():
                    task.cancel()
            # Collected, so that no task's failure goes unseen ("exception was never retrieved").
            for outcome in await asyncio.gather(*left, return_exceptions=True):
                if isinstance(outcome, Exception):
                    log.warning("call task failed: %s: %s", type(outcome).__name__, outcome)
            if wav is not None:
                wav.close()
            metrics.ACTIVE_CALLS.dec()
        self._answer_at = None
        self._report_turns()  # turns whose answer never played (the caller hung up first)
        # A caller who hangs up while the agent speaks heard the agent up to here.
        self._agent_text_parts.extend(self._playout.heard())
        if self._agent_segment_start is not None:
            self._close_agent_segment(interrupted=self._playout.pending)
        if not self.outcome:
            answered = any(t.agent_text for t in self.turns)
            self.outcome = "resolved" if answered else "abandoned"
        metrics.CALLS.labels(self.outcome).inc()
        self._event("call_end", outcome=self.outcome)
        return CallResult(self.call_id, self.outcome, self.now, self.turns, self.events, self.transcript,
                          self.timeline, str(self.recording_path) if self.recording_path else None, self.transfer,
                          self.loop_lag())

    async def _watch_loop(self) -> None:
        """Wake every LOOP_TICK_S and record how late: the event loop's lag as the 20 ms pacing feels it."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LOOP_TICK_S
            await asyncio.sleep(LOOP_TICK_S)
            lag = max(0.0, loop.time() - due)
            self._lags.append(lag)
            metrics.LOOP_LAG.observe(lag)

    def loop_lag(self) -> dict[str, float | None]:
        """The event loop's tick lateness so far: p50, p99 and max in ms, and how many ticks were measured."""
        lags = self._lags
        if not lags:
            return {"p50_ms": None, "p99_ms": None, "max_ms": None, "ticks": 0}
        ms = np.asarray(lags) * 1000
        return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
                "max_ms": round(float(ms.max()), 2), "ticks": len(lags)}

    # ---- public API: what a front end (console takeover, phone leg, tests) may do to a live call ----
    async def say(self, text: str) -> None:
        """Speak ``text`` to the caller now (after anything already queued); returns once it is queued."""
        if not text.strip():
            return

        async def once() -> AsyncIterator[str]:
            yield text

        self.busy += 1
        try:
            async for item in self.voice.speak(once(), self.rate):
                self._playout.put(item.audio if isinstance(item, Spoken) else item)
            self._playout.flush_tail()
            self._playout.mark(text)
        finally:
            self.busy -= 1
        self._event("say", text=text)

    async def interrupt(self) -> None:
        """Stop the assistant now: queued agent audio is dropped and the running reply is closed and awaited.

        The agent's transcript segment ends at the audio actually played, with only the text heard.
        """
        dropped = self._playout.clear()
        task = self._reply_task
        self._cancel_reply(merge=False)
        if self._barge_check is not None and not self._barge_check.done():
            self._barge_check.cancel()
        if task is not None and not task.done():
            await asyncio.wait([task])  # its CancelledError handler closes the reply (Reply.aclose)
        self._agent_text_parts.extend(self._playout.heard())
        if self._agent_segment_start is not None:
            self._close_agent_segment(interrupted=True)
        self._event("interrupted", dropped_ms=dropped * 20)

    def hold_assistant(self, reason: str = "") -> None:
        """The assistant goes quiet: caller turns are still transcribed but not answered; silence timers hold."""
        if self._held:
            return
        self._held = True
        self._event("assistant_held", reason=reason)

    def resume_assistant(self) -> None:
        """The assistant answers again; its silence timers start from now."""
        if not self._held:
            return
        self._held = False
        self._human_out.clear()
        self.note_activity()
        self._reprompts = 0
        self._event("assistant_resumed")

    @property
    def agent_speaking_s(self) -> float:
        """How long (line time) the agent has been speaking without a pause; 0 while it is quiet."""
        return 0.0 if self._agent_speaking_since is None else self.now - self._agent_speaking_since

    @property
    def held(self) -> bool:
        """Whether the assistant is quiet (``hold_assistant``)."""
        return self._held

    def note_activity(self) -> None:
        """Something happened on the call: the silence timer (re-prompt, hang-up) starts again."""
        self._last_activity = self.now

    def play_human(self, audio: np.ndarray, rate: int) -> None:
        """A person's voice (float32 mono at ``rate``) for the caller, mixed into the agent side and recorded.

        The producer runs on its own clock: at most 200 ms wait, older audio is dropped.
        """
        if rate != self.rate:
            resampler = self._human_in.get(rate)
            if resampler is None:
                resampler = self._human_in[rate] = Resampler(rate, self.rate)
            audio = resampler(audio)
        self._human_out.put(audio)

    def record_human(self, text: str, start: float, end: float, who: str) -> None:
        """A person's words on the agent side (start/end in line time) join the transcript and the events."""
        text = text.strip()
        if not text:
            return
        self.transcript.append({"speaker": "agent", "start": round(start, 3), "end": round(end, 3),
                                "text": text, "human": who})
        self._event("human_text", text=text, agent=who)

    def holding_line(self) -> bool:
        """Whether the agent still has something to say or compute."""
        return self.busy > 0 or self._playout.pending or self._reply_running() or bool(self._tasks)

    def _reply_running(self) -> bool:
        return self._reply_task is not None and not self._reply_task.done()

    def _open_recording(self) -> wave.Wave_write | None:
        if self.recording_path is None:
            return None
        if self.s.recorder is not None:
            return self.s.recorder(self.recording_path, self.rate)
        private_file(self.recording_path)  # call audio: owner-only file in an owner-only directory
        w = wave.open(str(self.recording_path), "wb")
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(self.rate)
        return w

    # ---- agent side -------------------------------------------------------------------
    def _on_agent_frame(self, frame: np.ndarray, speaking: bool) -> None:
        self._echo.push(self._agent16(frame))
        heard = self._playout.heard()
        if heard:
            self._agent_text_parts.extend(heard)
        if speaking:
            self._last_activity = self.now
            if self._agent_speaking_since is None:
                self._agent_speaking_since = self.now
                self._agent_segment_start = self.now - FRAME_S
            self._answer_played()
            turn = self._current_turn
            if turn is not None and turn.first_audio_out is None and self._reply_started_audio:
                turn.first_audio_out = self.now - FRAME_S
                turn.first_audio_kind = "filler" if turn.filler else \
                    "answer" if turn.answer_audio_out is not None else "ack"
                if turn.end_of_speech is not None:
                    turn.voice_to_voice_ms = round((turn.first_audio_out - turn.end_of_speech) * 1000, 1)
                    turn.first_audio_ms = turn.voice_to_voice_ms
                    _observe_latency(turn)
        elif self._answer_at is not None:
            self._answer_played()  # a cleared queue drops the answer's place
        if self._agent_speaking_since is not None and not speaking and not self._playout.pending:
            self._agent_speaking_since = None
            self._close_agent_segment()

    def _answer_played(self) -> None:
        """Stamp the answer's first content word when the frame holding it has gone out."""
        if self._answer_at is None:
            return
        turn, at = self._answer_at
        if at >= self._playout.queued:  # cleared (barge-in, a key, interrupt): that answer is never heard
            self._answer_at = None
        elif at < self._playout.played:
            start = self.now - FRAME_S + (at - (self._playout.played - self._playout.n)) / self.rate
            turn.answer_audio_out = round(max(start, self.now - FRAME_S), 3)
            if turn.end_of_speech is not None:
                turn.answer_audio_ms = round((turn.answer_audio_out - turn.end_of_speech) * 1000, 1)
                metrics.ANSWER_AUDIO.observe(turn.answer_audio_ms / 1000)
            self._answer_at = None
        if self._answer_at is None and self._unreported:
            self._report_turns()

    def _close_agent_segment(self, interrupted: bool = False) -> None:
        """End the agent's segment at the audio actually played, with the text the caller heard."""
        text = " ".join(p.strip() for p in self._agent_text_parts if p.strip()).strip()
        if self._agent_segment_start is not None and text:
            segment: dict[str, Any] = {"speaker": "agent", "start": round(self._agent_segment_start, 3),
                                       "end": round(self.now, 3), "text": text}
            if interrupted:
                segment["interrupted"] = True
            self.transcript.append(segment)
        self._agent_text_parts = []
        self._agent_segment_start = None
        self._agent_speaking_since = None

    async def _say_prompt(self, text: str, kind: str) -> None:
        audio = await self._voice_prompt(text)
        self._playout.put(audio, text)
        self._playout.flush_tail()
        self._event(kind, text=text)

    async def _voice_prompt(self, text: str) -> np.ndarray:
        self.busy += 1
        try:
            return await self.voice.prompt(text, self.rate)
        finally:
            self.busy -= 1

    # ---- caller side ------------------------------------------------------------------
    async def _on_caller_frame(self, frame: np.ndarray) -> None:
        # The echo gate's correlation and Silero run in a thread: the loop is free meanwhile (other calls'
        # frames, replies, the web), and this call's next frame waits for them, so events stay in frame order.
        audio16, probs = await asyncio.get_running_loop().run_in_executor(_vad_pool(), self._listen, frame)
        if self._ep.in_turn:
            self._turn_audio.append(audio16)
        else:
            self._preroll.append(audio16)
        for prob in probs:
            self._on_vad(self._ep.feed(prob))

    def _listen(self, frame: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """Blocking: one caller frame at 16 kHz with the agent's echo gated out, and the VAD's new probabilities."""
        audio16 = self._echo.gate(self._to16(frame))  # the agent's own voice coming back is not the caller
        return audio16, self._vad.feed(audio16)

    def _maybe_partial(self) -> None:
        """Re-decode the growing turn for live captions, one decode at a time."""
        if self._partial is not None or self._ep.silence_ms > 0:
            return
        heard = sum(len(a) for a in self._turn_audio) / ASR_RATE
        if heard - self._partial_at < self.s.partial_every_s:
            return
        self._partial_at = heard
        self._partial = self._spawn(self._run_partial(self._speech()))

    async def _run_partial(self, audio: np.ndarray) -> None:
        try:
            rec: Recognition = await self._in_executor(self.recognizer.recognize, audio, 1)
            if rec.text and self._ep.in_turn:
                self._ep.hint = rec.text
                self._event("partial", text=rec.text)
        finally:
            self._partial = None

    def _on_vad(self, ev: Event) -> None:
        if ev is Event.NONE:
            if self._ep.in_turn and self.s.partial_every_s > 0:
                self._maybe_partial()
            if self._ep.in_turn and self._playout.pending and not self._playout.paused:
                self._maybe_barge_in()
            return
        if ev is Event.SPEECH_START:
            self._partial_at = 0.0
            self._speech_start_t = self.now
            self._turn_audio = list(self._preroll)
            self._preroll.clear()
            self._last_activity = self.now
            if self._playout.pending:
                self._maybe_barge_in()
            elif self._reply_running() and not self._reply_started_audio \
                    and self.now - self._last_turn_end < self.s.merge_window_s:
                # The caller goes on after a short pause: answer both fragments together.
                self._cancel_reply(merge=True)
        elif ev is Event.PAUSE:
            self._start_speculative()
        elif ev is Event.RESUME:
            self._drop_speculative()
        elif ev is Event.TURN_END:
            self._on_turn_end()

    def _speech(self) -> np.ndarray:
        return np.concatenate(self._turn_audio) if self._turn_audio else np.zeros(0, np.float32)

    def _start_speculative(self) -> None:
        """Transcribe during the pause so the final text is ready when the turn ends."""
        if self._playout.pending and not self._playout.paused:
            return
        audio = self._speech()
        self._spec = asyncio.ensure_future(self._in_executor(self.recognizer.recognize_final, audio, self.s.asr_beam))
        self._spec.add_done_callback(self._hint_from_spec)

    def _hint_from_spec(self, task: asyncio.Task[Recognition]) -> None:
        if not task.cancelled() and task.exception() is None and self._ep.in_turn:
            self._ep.hint = task.result().text

    def _drop_speculative(self) -> None:
        if self._spec is not None and not self._spec.done():
            self._spec.cancel()
        self._spec = None

    def _on_turn_end(self) -> None:
        audio = self._speech()
        self._turn_audio = []
        self._ep.hint = ""
        if self._playout.pending and not self._playout.paused:
            return  # the agent kept the floor: this was echo or a backchannel
        # Speech really ended about one end-of-turn silence ago: where exactly, the energy says.
        end_of_speech = self.now - trailing_silence(audio, self._ep.silence_ms / 1000)
        # A speculative decode still alive covers all the speech: a RESUME would have dropped it.
        spec, self._spec = self._spec, None
        self._last_turn_end = self.now
        self._start_reply(self._respond(audio, end_of_speech, spec))

    # ---- barge-in ---------------------------------------------------------------------
    def _maybe_barge_in(self) -> None:
        if self._ep.speech_ms < self.s.barge_in_ms or self._barge_check is not None:
            return
        recent = self._speech()[-int(ASR_RATE * self.s.barge_in_ms / 1000) :]
        if self._echo.is_echo(recent):
            return  # the agent hearing itself
        residual = self._echo.residual(recent)
        # Stop talking now; confirm with ASR that the caller said words, else resume.
        self._playout.paused = True
        self._event("barge_in_candidate", residual=round(residual, 2))
        self._barge_check = asyncio.ensure_future(self._confirm_barge_in())

    async def _confirm_barge_in(self) -> None:
        try:
            rec: Recognition = await self._in_executor(self.recognizer.recognize, self._speech(), 1)
            words = re.sub(r"[^a-z' -]", "", rec.text.lower()).strip()
            if words in BACKCHANNEL or len(words.split()) < 1:
                self._playout.paused = False
                self._event("barge_in_ignored", text=rec.text)
                return
            dropped = self._playout.clear()
            self._cancel_reply(merge=False)
            self._close_agent_segment(interrupted=True)
            self._event("barge_in", text=rec.text, dropped_ms=dropped * 20)
            turn = self._current_turn
            if turn is not None and self._speech_start_t - self._last_turn_end < self.s.merge_window_s:
                # The caller only paused: their next words finish the same request. The closed reply
                # records its text in the dialog first, so the retraction removes the whole turn.
                await self._settled()
                self.brain.retract()
                self._pending_text = turn.caller_text
                self.turns = [t for t in self.turns if t is not turn]
                self.transcript = [t for t in self.transcript
                                   if not (t["speaker"] == "caller" and t.get("turn") == turn.index)]
                self._current_turn = None
                self._event("turn_merged", text=turn.caller_text)
            elif turn is not None:
                turn.interrupted = True
        finally:
            self._barge_check = None

    def _cancel_reply(self, merge: bool) -> None:
        if self._reply_running():
            task = self._reply_task
            assert task is not None
            task.cancel()  # its CancelledError handler closes the reply (Reply.aclose)
            self._settling = task
            if merge:
                self._settling = self._spawn(self._retract_after(task))
                self._event("turn_merged", text=self._pending_text)
            else:
                self._pending_text = ""
        self._reply_task = None

    async def _retract_after(self, task: asyncio.Task[None]) -> None:
        await asyncio.wait([task])
        self.brain.retract()

    async def _settled(self) -> None:
        """Wait until an interrupted reply has closed (and its turn been retracted when merging)."""
        settling = self._settling
        if settling is not None and not settling.done():
            await asyncio.wait([settling])

    # ---- one reply --------------------------------------------------------------------
    def press(self, digit: str) -> None:
        """A DTMF key from the line: a caller turn of its own (``TurnInput(text="", dtmf=digit)``)."""
        if self._ending:
            return
        self._playout.clear()  # a key press interrupts the agent like speech does
        self._cancel_reply(merge=False)
        self._event("dtmf", digit=digit)
        self._start_reply(self._respond(np.zeros(0, np.float32), self.now, None, dtmf=digit))

    def _start_reply(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(self._reply_done)
        self._reply_task = task

    def _reply_done(self, task: asyncio.Task[None]) -> None:
        """A reply that failed is logged and recorded, never left as an unretrieved exception."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("reply failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
            self._event("reply_failed", error=f"{type(exc).__name__}: {exc}")

    async def _respond(self, audio: np.ndarray, end_of_speech: float, spec: asyncio.Task[Recognition] | None,
                       dtmf: str | None = None) -> None:
        rec: Recognition | None = None
        if spec is not None:
            try:
                rec = await spec
            except (asyncio.CancelledError, Exception):  # fall back to a fresh decode
                rec = None
        if rec is None and dtmf is None:
            rec = await self._in_executor(self.recognizer.recognize_final, audio, self.s.asr_beam)
        text = rec.text.strip() if rec is not None else ""
        if not text and dtmf is None:
            return  # VAD heard something but there were no words: invent nothing
        merged = self._pending_text if dtmf is None else ""
        if merged:
            text = f"{merged} {text}"
            if self.turns and self.turns[-1].agent_text == "" and self.turns[-1].caller_text == merged:
                old = self.turns.pop()  # the fragment's unanswered turn becomes part of this one
                self.transcript = [t for t in self.transcript
                                   if not (t["speaker"] == "caller" and t.get("turn") == old.index)]
        self._pending_text = text
        turn = TurnRecord(index=len(self.turns), caller_text=text, end_of_speech=round(end_of_speech, 3),
                          asr_final=round(self.now, 3))
        self.turns.append(turn)
        self._current_turn = turn
        self._reply_started_audio = False
        start = max(0.0, end_of_speech - len(audio) / ASR_RATE)
        self.transcript.append({"speaker": "caller", "start": round(start, 3), "end": round(end_of_speech, 3),
                                "text": text if dtmf is None else f"[DTMF {dtmf}]", "turn": turn.index})
        self._event("caller_turn", text=text)
        self._reprompts = 0
        if self._held:
            # A person has the call (or it waits for one): the caller is transcribed, not answered.
            turn.action = "held"
            self._pending_text = ""
            if self.on_turn is not None:
                self.on_turn(turn)
            return
        filler = asyncio.ensure_future(self._filler_later(turn))
        self.busy += 1
        reply: Reply | None = None
        try:
            await self._settled()  # the dialog state of an interrupted reply is final before the next turn
            reply = await self.brain.respond(TurnInput(text=text, audio=audio if dtmf is None else None,
                                                       dtmf=dtmf))
            replying: Reply = reply
            parts: list[str] = []
            said = 0  # parts already tied to queued audio

            async def tokens() -> AsyncIterator[str]:
                async for chunk in replying.stream():
                    if turn.llm_first_token is None:
                        turn.llm_first_token = round(self.now, 3)
                    parts.append(chunk)
                    if turn.answer_first_text is None and content_offset("".join(parts), complete=False) is not None:
                        turn.answer_first_text = round(self.now, 3)
                    yield chunk
                if turn.answer_first_text is None and content_offset("".join(parts)) is not None:
                    turn.answer_first_text = round(self.now, 3)

            async for item in self.voice.speak(tokens(), self.rate):
                pcm = item.audio if isinstance(item, Spoken) else item
                if turn.tts_first_audio is None:
                    turn.tts_first_audio = round(self.now, 3)
                    filler.cancel()
                self._reply_started_audio = True
                self._pending_text = ""
                # The text read so far is what this audio says (the voice speaks sentence by sentence).
                text = "".join(parts[said:])
                if turn.answer_tts_audio is None:
                    self._find_answer(turn, pcm, item.text if isinstance(item, Spoken) else text)
                self._playout.put(pcm, text)
                said = len(parts)
            self._playout.flush_tail()
            self._playout.mark("".join(parts[said:]))
            outcome: TurnOutcome = await reply.outcome()
        except asyncio.CancelledError:
            # Interrupted (barge-in, a key, a takeover): stop the generation now, not when collected.
            if reply is not None:
                await _close_reply(reply)
            raise
        finally:
            self.busy -= 1
            filler.cancel()
        turn.agent_text = "".join(parts).strip()
        turn.sentiment, turn.sentiment_score, turn.intent = outcome.sentiment, outcome.sentiment_score, outcome.intent
        turn.action, turn.escalate = outcome.action, outcome.escalate
        sources = outcome.extra.get("sources")
        turn.sources = [dict(s) for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []
        grounding = outcome.extra.get("grounding")
        rejected = grounding.get("rejected") if isinstance(grounding, dict) else None
        turn.guard_rejections = len(rejected) if isinstance(rejected, list) else 0
        audits = outcome.extra.get("actions")  # actions carried out (or dropped): slots already masked
        for audit in audits if isinstance(audits, list) else []:
            if isinstance(audit, dict):
                self._event("action", **{k: v for k, v in audit.items() if k not in ("t", "type")})
        self.timeline.append({"t": turn.end_of_speech, "turn": turn.index, "label": outcome.sentiment,
                              "score": outcome.sentiment_score, "mood": outcome.mood})
        self._pending_text = ""
        self._unreported.append(turn)
        self._report_turns()  # now, or once its answer has played (its latency is known then)
        if outcome.escalate:
            self.transfer = {"reason": outcome.reason, "summary": outcome.summary}
            self._event("transfer", reason=outcome.reason, summary=outcome.summary)
            await self._say_prompt(self.s.transfer_text, kind="transfer_message")
            self.outcome = "transferred"
            self._ending = True
        elif outcome.hangup:
            self._event("hangup", reason=outcome.intent or "goodbye")
            self.outcome = "resolved"
            self._ending = True

    def _find_answer(self, turn: TurnRecord, audio: np.ndarray, text: str) -> None:
        """Where in the queued agent audio the answer's first content word starts (the text's share of it)."""
        offset = content_offset(text)
        if offset is None or not len(audio):
            return
        turn.answer_tts_audio = round(self.now, 3)
        self._answer_at = (turn, self._playout.queued + int(len(audio) * offset / max(1, len(text.rstrip()))))

    def _report_turns(self) -> None:
        """Hand finished turns to ``on_turn`` once their answer's first word has played (or never will)."""
        waiting = self._answer_at[0] if self._answer_at is not None else None
        ready = [t for t in self._unreported if t is not waiting]
        self._unreported = [t for t in self._unreported if t is waiting]
        for turn in ready:
            if self.on_turn is not None:
                self.on_turn(turn)

    async def _filler_later(self, turn: TurnRecord) -> None:
        """A short acknowledgement when the answer is slow, so the line is never dead."""
        await asyncio.sleep(0)
        deadline = (turn.end_of_speech or self.now) + self.s.filler_after_s
        while self.now < deadline:
            await asyncio.sleep(0.01)
        if turn.tts_first_audio is None and not self._playout.pending:
            text = self.s.fillers[turn.index % len(self.s.fillers)]
            audio = await self._voice_prompt(text)
            # Not for a reply that was interrupted (or a call taken over) while the prompt was made.
            if turn.tts_first_audio is None and turn is self._current_turn and self._reply_running() \
                    and not self._held:
                self._reply_started_audio = True
                turn.filler = True
                self._playout.put(audio, text)
                self._event("filler", text=text)

    # ---- timers -----------------------------------------------------------------------
    def _timers(self) -> None:
        if self._ending:
            return
        if self.now >= self.s.max_call_s:
            self._event("max_call_length")
            self.outcome = self.outcome or "resolved"
            self._ending = True
            self._spawn(self._say_prompt(self.s.max_call_text, kind="goodbye"))
            return
        if self._held:
            self._last_activity = self.now  # silence is the person's business while they have the call
            return
        quiet = not self._ep.in_turn and not self._playout.pending and not self._reply_running()
        if quiet and self.now - self._last_activity >= self.s.reprompt_after_s:
            self._last_activity = self.now
            if self._reprompts >= self.s.max_reprompts:
                self._event("hangup", reason="silence")
                self.outcome = "abandoned" if not any(t.agent_text for t in self.turns) else "resolved"
                self._ending = True
                self._spawn(self._say_prompt(self.s.hangup_text, kind="goodbye"))
            else:
                self._reprompts += 1
                self._event("reprompt", count=self._reprompts)
                self._spawn(self._say_prompt(self.s.reprompt_text, kind="reprompt_message"))


async def _close_reply(reply: Reply) -> None:
    """``Reply.aclose()`` when the reply has one (it stops the generation); its errors are only logged."""
    closer = getattr(reply, "aclose", None)
    if closer is None:
        return
    try:
        await closer()
    except Exception as exc:  # closing must never hide the interruption that caused it
        log.warning("closing a reply failed: %s: %s", type(exc).__name__, exc)


def _write_stereo(wav: wave.Wave_write, caller: np.ndarray, agent: np.ndarray) -> None:
    n = min(len(caller), len(agent))
    stereo = np.empty((n, 2), np.float32)
    stereo[:, 0] = caller[:n]
    stereo[:, 1] = agent[:n]
    wav.writeframes((np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes())


_VAD_POOL: ThreadPoolExecutor | None = None


def _vad_pool() -> ThreadPoolExecutor:
    """Threads for listening (resampling, echo gate, Silero), shared by the calls of this process."""
    global _VAD_POOL
    if _VAD_POOL is None:
        _VAD_POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="vad")
    return _VAD_POOL


def _observe_latency(turn: TurnRecord) -> None:
    if turn.voice_to_voice_ms is not None:
        metrics.VOICE_TO_VOICE.observe(turn.voice_to_voice_ms / 1000)
        metrics.FIRST_AUDIO.observe(turn.voice_to_voice_ms / 1000)
    if turn.asr_final is not None and turn.end_of_speech is not None:
        metrics.ASR_FINAL.observe(max(0.0, turn.asr_final - turn.end_of_speech))
    if turn.llm_first_token is not None and turn.asr_final is not None:
        metrics.LLM_FIRST_TOKEN.observe(max(0.0, turn.llm_first_token - turn.asr_final))
    if turn.tts_first_audio is not None and turn.llm_first_token is not None:
        metrics.TTS_FIRST_AUDIO.observe(max(0.0, turn.tts_first_audio - turn.llm_first_token))


__all__ = ["CallResult", "CallSession", "SessionSettings", "TurnRecord"]
