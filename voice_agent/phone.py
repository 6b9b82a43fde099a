"""Phone calls: the SIP user agent bridged to call sessions (``voice-agent serve`` / ``dial``).

``PhoneFrontend`` is one startable, stoppable piece of the server: it owns the SIP user agent,
trunk registrations and the calls in progress. Each answered call gets its own ``CallSession``
fed with the RTP leg's 20 ms frames; a session that ends in a transfer hands the caller to
``sip.human_queue`` (REFER, or a bridged second leg when REFER is refused or a warm transfer is
configured). A crash inside one call is logged with its id and ends only that call.

With a live-call registry (``live``, the web front end's ``LiveCalls``), every phone call is listed
in the console beside the browser calls, and a signed-in agent can take it over: the caller's RTP
frames go to the agent's browser, the agent's voice goes back over RTP through the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import re
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from telephony.sdp import SdpError, offer
from telephony.sip.digest import DigestClient
from telephony.sip.errors import SipError
from telephony.sip.registration import Registration
from telephony.sip.transaction import Timers
from telephony.sip.transport import TcpLimits
from telephony.sip.ua import Call, MediaFactory, Trunk, TrunkPolicy, UserAgent, rtp_media
from voice_agent import metrics
from voice_agent.admission import LoadMonitor
from voice_agent.config import Config, ConfigError, SipConfig
from voice_agent.guard import CallFault, GuardedBrain, GuardedRecognizer
from voice_agent.logs import call_id_var, log_event
from voice_agent.records import save_call, save_turn
from voice_agent.session import CallResult, CallSession
from voice_agent.store import StoreError

if TYPE_CHECKING:
    from voice_agent.customers import CallerLink, Callers
    from voice_agent.web.live import LiveCall, LiveCalls

log = logging.getLogger("voice_agent.phone")
RATE = 8000
FRAME = RATE // 50
REFUSED = {405, 501, 603, 403, 488, 420}  # peers that will not do a transfer for us


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) -> (host, port); ConfigError when malformed."""
    match = re.fullmatch(r"\[?([^\]]*?)\]?:(\d{1,5})", text.strip())
    if match is None or not match.group(1) or not 0 <= int(match.group(2)) < 65536:
        raise ConfigError(f"sip.listen: expected HOST:PORT, got {text!r}")
    return match.group(1), int(match.group(2))


def trunks_from_config(sip: SipConfig) -> list[Trunk]:
    """The configured trunks as telephony Trunks; ConfigError names the bad entry."""
    known = {f.name for f in fields(Trunk)}
    out: list[Trunk] = []
    for i, entry in enumerate(sip.trunks):
        if not isinstance(entry, dict):
            raise ConfigError(f"sip.trunks[{i}]: expected a table, got {entry!r}")
        data = {k.replace("-", "_"): v for k, v in entry.items()}
        if "allow-ips" in entry or "allow_ips" in data:
            ips = data.get("allow_ips")
            data["allow_ips"] = [ips] if isinstance(ips, str) else list(ips or [])
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"sip.trunks[{i}]: unknown setting(s) {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(known))})")
        trunk = Trunk(**data)
        if trunk.register and not trunk.host:
            raise ConfigError(f"sip.trunks[{i}] ({trunk.name}): register = true needs host")
        for ip in trunk.allow_ips:
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise ConfigError(f"sip.trunks[{i}] ({trunk.name}): bad allow_ips entry {ip!r}") from None
        out.append(trunk)
    return out


def session_call_id(sip_call_id: str) -> str:
    """A short, file-name-safe call id derived from the SIP Call-ID."""
    return "sip-" + hashlib.sha1(sip_call_id.encode("utf-8", "replace")).hexdigest()[:16]


SessionFactory = Callable[..., CallSession]


class SipLeg:
    """A SIP call as the live-call registry sees it: no screen for events, hang up with a BYE."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self._tasks: set[asyncio.Task[None]] = set()

    def send_event(self, event: dict[str, Any]) -> None:
        """A phone shows nothing."""

    def hang_up(self) -> None:
        """BYE from the console."""
        if self.call.state != "ended":
            task = asyncio.ensure_future(self.call.hangup("console"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class PhoneFrontend:
    """The SIP front end: answers calls, runs a session per call, transfers to humans."""

    def __init__(
        self,
        config: Config,
        session_factory: SessionFactory | None,
        *,
        listen: str | None = None,
        media: MediaFactory = rtp_media,
        store: Any = None,
        voice: Any = None,
        echo: bool = False,
        live: LiveCalls | None = None,
        load: LoadMonitor | None = None,
        callers: Callers | None = None,
    ) -> None:
        self.config = config
        self.callers = callers  # who is calling (customers.directory); opened at start when not given
        self.live = live  # the console's registry of live calls, when the web front end runs beside us
        self.load = load  # measured load: new calls get 503 when the box cannot answer them in time
        self.sip = config.sip
        self.session_factory = session_factory
        self.voice = voice  # the engine's Voice port, for the warm-transfer summary
        self.echo = echo or session_factory is None
        self.store = store
        host, port = parse_listen(listen or self.sip.listen)
        self.trunks = trunks_from_config(self.sip)
        if self.sip.transfer not in ("blind", "warm"):
            raise ConfigError(f"sip.transfer: expected blind or warm, got {self.sip.transfer!r}")
        if self.sip.max_calls < 1:
            raise ConfigError("sip.max_calls must be at least 1")
        if self.sip.t1_ms <= 0:
            raise ConfigError("sip.t1_ms must be positive")
        bad = [t for t in self.sip.transports if t.upper() not in ("UDP", "TCP")]
        if bad or not self.sip.transports:
            raise ConfigError(f"sip.transports: expected udp and/or tcp, got {self.sip.transports!r}")
        try:
            offer("127.0.0.1", 0, [*self.sip.codecs, "telephone-event"])
        except SdpError as exc:
            raise ConfigError(f"sip.codecs: {exc}") from None
        self.ua = UserAgent(
            self._on_call, host=host, port=port, transports=tuple(t.upper() for t in self.sip.transports),
            timers=Timers(t1=self.sip.t1_ms / 1000), policy=TrunkPolicy(self.trunks), max_calls=self.sip.max_calls,
            codecs=list(self.sip.codecs), media=media, media_host=self.sip.media_address or None,
            user=self.sip.user, answer_delay=self.sip.answer_delay_ms / 1000,
            tcp_limits=TcpLimits(self.sip.tcp_idle_timeout_s, self.sip.tcp_header_timeout_s,
                                 self.sip.tcp_body_timeout_s, self.sip.tcp_max_per_source),
            admit=self._admit,
        )
        self.registrations: list[Registration] = []
        self.results: deque[CallResult] = deque(maxlen=100)  # the latest calls, for tests and status pages
        self._own_store = False
        self.crashes = 0

    def _admit(self) -> tuple[str, int] | None:
        """None when a new call can be answered in time; else why not and when to retry (SIP 503)."""
        active = self.live.active_calls() if self.live is not None else self.ua.active_calls
        refusal = self.load.refusal(active) if self.load is not None else None
        return (refusal.reason, refusal.retry_after_s) if refusal is not None else None

    @property
    def address(self) -> tuple[str, int]:
        """Where the UA listens (the port is real after start)."""
        return self.ua.host, self.ua.port

    async def start(self) -> None:
        """Bind the SIP transports and register with the trunks that want it."""
        await self.ua.start()
        if self.load is not None:
            await self.load.start()
        await asyncio.to_thread(self._open_store)
        if self.callers is None and self.config.customers.directory and not self.echo:
            from voice_agent.customers import Callers

            self.callers = Callers(self.config.customers, self.store, trunks=self.trunks)
            await self.callers.open()
        for trunk in self.trunks:
            if trunk.register:
                reg = Registration(self.ua, trunk)
                reg.start()
                self.registrations.append(reg)
        log_event(log, "sip_listening", host=self.ua.host, port=self.ua.port,
                  transports=",".join(self.ua.transports), max_calls=self.sip.max_calls)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting (503), let calls finish up to the timeout, BYE the rest, unregister."""
        wait = self.sip.shutdown_timeout_s if timeout is None else timeout
        log_event(log, "sip_stopping", active_calls=self.ua.active_calls, timeout_s=wait)
        self.ua.accepting = False
        if self.load is not None:
            await self.load.stop()
        for reg in self.registrations:
            await reg.stop()
        await self.ua.stop(wait)
        log_event(log, "sip_stopped", calls=len(self.results), crashes=self.crashes)
        if self._own_store and self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None
            self._own_store = False

    @property
    def worker(self) -> str:
        """This worker in the store: its SIP address (a restart on the same address recovers its calls).

        A wildcard address is the same on every machine, so the host name stands in for it.
        """
        host = self.ua.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        return f"sip:{host}:{self.ua.port}"

    def _console(self) -> dict[str, str]:
        """In a cluster, the console address of this process, stored with each live phone call so that the
        console of any worker can send hang-up, transfer and takeover here."""
        http = self.config.http
        if self.live is not None and http.cluster_secret and http.worker_url:
            return {"console": http.worker_url.rstrip("/")}
        return {}

    def _open_store(self) -> None:
        """Open the call store (unless given one) and close the calls this worker left active when killed."""
        if self.echo:
            return
        if self.store is None:
            from voice_agent.store import CallStore

            self.store = CallStore.from_config(self.config)
            self._own_store = True
        recovered = self.store.recover_calls(self.worker)
        for cid in recovered:
            log_event(log, "call_recovered", logging.WARNING, call_id=cid, outcome="error", worker=self.worker)

    # ---- one call -----------------------------------------------------------------------------
    async def _on_call(self, call: Call) -> None:
        cid = session_call_id(call.call_id)
        token = call_id_var.set(cid)
        try:
            log_event(log, "phone_call_start", call_id=cid, sip_call_id=call.call_id, direction=call.direction,
                      remote=call.remote_party, codec=getattr(call.negotiated.codec, "name", ""))
            if self.echo:
                await self._echo(call)
                return
            result = await self.run_session(call, cid)
            self.results.append(result)
            log_event(log, "phone_call_end", call_id=cid, outcome=result.outcome,
                      duration_s=round(result.duration, 2), turns=len(result.turns),
                      reason=call.end_reason or "session")
        except Exception as exc:
            self.crashes += 1
            log_event(log, "phone_call_crashed", logging.ERROR, call_id=cid, error=f"{type(exc).__name__}: {exc}")
            log.debug("call crash", exc_info=True)
        finally:
            call_id_var.reset(token)

    async def _echo(self, call: Call) -> None:
        """A model-free session: send back what arrives (benchmarks and wiring tests)."""
        media: Any = call.media
        async for frame in _until_ended(media.frames(), call):
            await media.send(frame)

    async def run_session(self, call: Call, cid: str) -> CallResult:
        """Run a CallSession on the call's RTP leg, store it, and transfer when it asks to."""
        assert self.session_factory is not None
        media: Any = call.media
        started = time.time()
        transfer: dict[str, Any] = {}

        live = self.live
        listed: LiveCall | None = None
        if live is not None:
            listed = live.register(SipLeg(call), cid, call.remote_party or call.call_id, RATE, "phone")

        def on_event(event: dict[str, Any]) -> None:
            if event.get("type") == "transfer":
                transfer.update(event)
            if listed is not None:
                listed.on_session_event(event)

        link = await self.callers.for_sip(call) if self.callers is not None else None  # who is calling
        recording = self.config.recordings_path / f"{cid}.wav" if link is None or link.may_record else None
        on_turn = await self._live_record(call, cid, started, link)
        try:
            session = self.session_factory(RATE, call_id=cid, recording_path=recording, on_event=on_event,
                                           on_turn=on_turn)
        except BaseException:
            if live is not None and listed is not None:
                await live.unregister(listed)
            raise
        if link is not None:
            link.attach(session.brain, cid)  # greets by name, knows the plan and last calls, verifies when asked
            if listed is not None:
                listed.caller_link = link
        # A model that raises ends this call (BYE, stored as error with the reason), never the others.
        fault = CallFault(asyncio.get_running_loop())
        session.brain = GuardedBrain(session.brain, fault)
        session.recognizer = cast(Any, GuardedRecognizer(session.recognizer, fault))  # same recognize() for the session
        if live is not None and listed is not None:
            live.watch(listed, session)  # captions in the console; a takeover quietens this session
        pumps = [asyncio.ensure_future(_pump_dtmf(q, session)) for q in (media.dtmf, call.dtmf)]
        pumps.append(asyncio.ensure_future(_hang_up_on_fault(call, fault, cid)))

        async def sink(frame: np.ndarray) -> None:
            if call.state != "ended":
                await media.send(frame)

        frames: AsyncIterator[np.ndarray] = _until_ended(media.frames(), call)
        if listed is not None and live is not None:
            frames = listed.caller_frames(frames, live.hold_timeout_s)  # a human agent hears the caller
        try:
            result = await session.run(frames, sink)
        except Exception as exc:  # e.g. the greeting failed before the conversation began
            fault.set("session", exc)
            if call.state != "ended":
                await call.hangup("error")
            result = CallResult(cid, "error", time.time() - started, [], [], [], [], None)
        finally:
            for p in pumps:
                p.cancel()
            if live is not None and listed is not None:
                await live.unregister(listed)  # the human agent's last words are transcribed by now
        meta: dict[str, Any] = link.meta() if link is not None else {}
        if listed is not None and listed.human_agents:
            result.transcript = session.transcript
            meta["human_agents"] = listed.human_agents
        if fault.reason is not None:
            result.outcome = "error"
            result.events.append({"type": "error", "t": round(time.time() - started, 3), "reason": fault.reason})
        if call.state != "ended" and (result.outcome == "transferred" or transfer):
            summary = str((result.transfer or {}).get("summary") or transfer.get("summary") or "")
            result.transfer = {**(result.transfer or {}), **await self.transfer(call, summary)}
        stats: dict[str, float] = media.stats() if hasattr(media, "stats") else {}
        if stats:
            metrics.observe_media(stats)
        await asyncio.to_thread(self._store, result, call, started, stats, meta)  # the store must not stall the media
        return result

    async def _live_record(self, call: Call, cid: str, started: float,
                           link: CallerLink | None = None) -> Callable[[Any], None] | None:
        """Store the call as active now and each turn as it finishes (kill -9 loses no finished turn)."""
        store = self.store
        if store is None:
            return None
        try:
            meta = {**(link.meta() if link else {}), **self._console()}
            await asyncio.to_thread(store.start_call, cid, "phone", call.remote_party or call.call_id,
                                    worker=self.worker, started_at=started, meta=meta or None)
        except StoreError as exc:  # the call goes on; it is stored at its end if the store is back
            log_event(log, "store_failed", logging.ERROR, call_id=cid, error=str(exc))
            return None
        loop = asyncio.get_running_loop()

        def write(turn: dict[str, Any]) -> None:
            try:
                save_turn(store, cid, turn)  # redacted as save_call redacts the whole call
            except StoreError as exc:
                log_event(log, "store_failed", logging.ERROR, call_id=cid, error=str(exc))

        def on_turn(turn: Any) -> None:
            loop.run_in_executor(None, write, asdict(turn))

        return on_turn

    def _store(self, result: CallResult, call: Call, started: float, media: dict[str, float] | None = None,
               meta: dict[str, Any] | None = None) -> None:
        store = self.store
        if store is None:
            from voice_agent.store import CallStore

            store = CallStore.from_config(self.config)
        try:
            save_call(store, result, "phone", call.remote_party or call.call_id, started_at=started, media=media)
            if meta:
                store.update_call(result.call_id, meta=meta)
        finally:
            if self.store is None:
                store.close()

    # ---- transfer -------------------------------------------------------------------------------
    async def transfer(self, call: Call, summary: str) -> dict[str, Any]:
        """Hand the caller to the human queue: REFER first (blind), or a bridged leg (warm/refused)."""
        target = self.sip.human_queue
        if not target:
            log_event(log, "transfer_skipped", reason="sip.human_queue is not configured")
            return {"method": "none", "ok": False}
        if self.sip.transfer == "blind":
            res = await call.refer(target, timeout=max(5.0, 64 * self.sip.t1_ms / 1000))
            log_event(log, "transfer_refer", target=target, ok=res.ok, status=res.status, reason=res.reason)
            if res.ok:
                await call.hangup("transferred")
                return {"method": "refer", "ok": True, "status": res.status, "target": target}
            # Refused (405/501/603), or the transfer failed later (NOTIFY with an error, or none):
            # the caller is still with us, so we dial the humans ourselves and bridge.
            log_event(log, "transfer_fallback_bridge", status=res.status, refused=res.status in REFUSED)
        return await self._bridge(call, target, summary)

    async def _bridge(self, call: Call, target: str, summary: str) -> dict[str, Any]:
        """B2BUA: dial the human queue, say the summary to the human (warm), then bridge both legs."""
        trunk = next((t for t in self.trunks if t.username and t.host and t.host in target), None)
        creds = DigestClient(trunk.username, trunk.password) if trunk is not None else None
        try:
            human = await self.ua.invite(target, credentials=creds, timeout=30.0)
        except SipError as exc:
            log_event(log, "transfer_dial_failed", logging.WARNING, target=target, error=str(exc))
            await call.hangup("transfer-failed")
            return {"method": "bridge", "ok": False, "error": str(exc), "target": target}
        log_event(log, "transfer_bridged", target=target, human_call=human.call_id, warm=bool(summary))
        hmedia: Any = human.media
        if self.sip.transfer == "warm" and summary and self.voice is not None:
            try:
                audio = await self.voice.prompt(f"Transferred call. {summary}", RATE)
                for i in range(0, len(audio), FRAME):
                    if human.state == "ended":
                        break
                    await hmedia.send(audio[i:i + FRAME])
            except Exception as exc:
                log_event(log, "transfer_summary_failed", logging.WARNING, error=str(exc))
        cmedia: Any = call.media
        legs = [asyncio.ensure_future(_copy(cmedia, hmedia, call, human)),
                asyncio.ensure_future(_copy(hmedia, cmedia, human, call))]
        await asyncio.wait(legs, return_when=asyncio.FIRST_COMPLETED)
        for leg in legs:
            leg.cancel()
        await asyncio.gather(call.hangup("bridge-ended"), human.hangup("bridge-ended"), return_exceptions=True)
        return {"method": "bridge", "ok": True, "target": target, "human_call": human.call_id}

    # ---- outbound ------------------------------------------------------------------------------------
    async def dial(self, target: str) -> CallResult:
        """Place a call to ``target`` and run the session on it (``voice-agent dial``)."""
        trunk = next((t for t in self.trunks if t.username and t.host and t.host in target), None)
        creds = DigestClient(trunk.username, trunk.password) if trunk is not None else None
        call = await self.ua.invite(target, credentials=creds)
        cid = session_call_id(call.call_id)
        token = call_id_var.set(cid)
        try:
            log_event(log, "phone_call_start", call_id=cid, sip_call_id=call.call_id, direction="outbound",
                      remote=target)
            result = await self.run_session(call, cid)
        finally:
            call_id_var.reset(token)
        if call.state != "ended":
            await call.hangup("local-bye")
        return result


async def _until_ended(frames: AsyncIterator[np.ndarray], call: Call) -> AsyncIterator[np.ndarray]:
    """The leg's frames until either side hangs up (BYE) or the media closes."""
    async for frame in frames:
        if call.state == "ended":
            return
        yield frame


async def _hang_up_on_fault(call: Call, fault: CallFault, cid: str) -> None:
    reason = await fault.wait()
    log_event(log, "phone_call_fault", logging.ERROR, call_id=cid, reason=reason)
    if call.state != "ended":
        await call.hangup("error")


async def _pump_dtmf(queue: asyncio.Queue[str], session: CallSession) -> None:
    while True:
        session.press(await queue.get())  # the session logs the dtmf event with its line time


async def _copy(src: Any, dst: Any, a: Call, b: Call) -> None:
    async for frame in _until_ended(src.frames(), a):
        if b.state == "ended":
            return
        with contextlib.suppress(Exception):
            await dst.send(frame)


def engine_factory(engine: Any) -> SessionFactory:
    """Sessions from a loaded Engine."""
    def make(rate: int, **kwargs: Any) -> CallSession:
        session: CallSession = engine.session(rate, **kwargs)
        return session
    return make

