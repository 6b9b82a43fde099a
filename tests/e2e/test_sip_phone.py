"""The phone front end with fake dialog and voice: DTMF into the session, transfer fallbacks,
crash isolation, and ``voice-agent serve`` shutting down gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from asr.streaming import UtteranceRecognizer
from telephony.media import RtpSession
from telephony.sip.errors import CallFailed
from telephony.sip.transaction import Timers
from telephony.sip.ua import Call, UserAgent
from tests.telephony.sip.conftest import free_port
from tests.voice_agent.fakes import FakeBrain, FakeReply, FakeVoice
from voice_agent.config import Config, load_config
from voice_agent.phone import PhoneFrontend
from voice_agent.ports import TurnInput, TurnOutcome
from voice_agent.session import CallSession, SessionSettings
from voice_agent.store import CallStore

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


class MenuBrain(FakeBrain):
    """Escalates when the caller presses 0, like the real menu "0=agent"."""

    async def respond(self, turn: TurnInput) -> FakeReply:
        self.turns.append(turn)
        if turn.dtmf == "0":
            return FakeReply("Connecting you", TurnOutcome(escalate=True, reason="asked",
                                                           summary="Caller wants a human."), self.delay)
        return FakeReply(f"You pressed {turn.dtmf}", TurnOutcome(intent="menu"), self.delay)


@pytest.fixture(scope="module")
def recognizer() -> UtteranceRecognizer:
    return UtteranceRecognizer("whisper-tiny.en")


def make_config(tmp_path: Path, **sip: Any) -> Config:
    config = load_config(env={"VOICE_AGENT_HOME": str(tmp_path / "home")})
    config.sip.listen = "127.0.0.1:0"
    config.sip.t1_ms = 50
    for k, v in sip.items():
        setattr(config.sip, k, v)
    return config


def factory(recognizer: UtteranceRecognizer, brains: list[MenuBrain], crash_first: bool = False) -> Any:
    made = 0

    def make(rate: int, **kwargs: Any) -> CallSession:
        nonlocal made
        made += 1
        if crash_first and made == 1:
            raise RuntimeError("the session could not start")
        brain = MenuBrain()
        brains.append(brain)
        return CallSession(recognizer, brain, FakeVoice(), rate, settings=SessionSettings(), **kwargs)
    return make


async def rtp(host: str) -> RtpSession:
    return await RtpSession.open(host=host)


async def peer(handler: Any = None) -> UserAgent:
    async def idle(call: Call) -> None:
        await call.ended.wait()
    ua = UserAgent(handler or idle, port=0, media=rtp, timers=Timers(t1=0.05))
    await ua.start()
    return ua


async def frames_of(call: Call, seconds: float) -> AsyncIterator[np.ndarray]:
    media: Any = call.media
    n = 0
    async for f in media.frames():
        yield f
        n += 1
        if n >= seconds * 50 or call.state == "ended":
            return


async def test_dtmf_reaches_session_and_refused_refer_falls_back_to_a_bridge(
        recognizer: UtteranceRecognizer, tmp_path: Path) -> None:
    human_heard: list[float] = []

    async def human_answers(call: Call) -> None:
        async for f in frames_of(call, 1.5):
            human_heard.append(float(np.sqrt((f ** 2).mean())))
        await call.hangup()

    human = await peer(human_answers)
    brains: list[MenuBrain] = []
    config = make_config(tmp_path, human_queue=f"sip:humans@127.0.0.1:{human.port}", transfer="blind")
    phone = PhoneFrontend(config, factory(recognizer, brains), media=rtp)
    await phone.start()
    caller = await peer()
    try:
        call = await caller.invite(f"sip:agent@127.0.0.1:{phone.address[1]}", timeout=5)
        await asyncio.sleep(0.3)
        # The caller's UA answers REFER with 405 (it does not do transfers): the agent must bridge.
        resp = await caller._send_in_dialog(call, "INFO", body=b"Signal=0\r\nDuration=160\r\n",
                                            content_type="application/dtmf-relay")
        assert resp.status == 200
        await asyncio.wait_for(call.ended.wait(), 20)
        for _ in range(50):
            if phone.results:
                break
            await asyncio.sleep(0.1)
        result = phone.results[0]
        assert brains[0].turns[0].dtmf == "0" and brains[0].turns[0].text == ""
        assert result.outcome == "transferred"
        assert result.transfer["method"] == "bridge" and result.transfer["ok"] is True
        assert len(human_heard) > 20  # the human leg was up and carried frames
        assert phone.ua.calls == {}
    finally:
        await caller.stop(1)
        await phone.stop(1)
        await human.stop(1)


async def test_warm_transfer_says_the_summary_to_the_human_first(recognizer: UtteranceRecognizer,
                                                                 tmp_path: Path) -> None:
    human_heard: list[float] = []

    async def human_answers(call: Call) -> None:
        async for f in frames_of(call, 1.0):
            human_heard.append(float(np.sqrt((f ** 2).mean())))
        await call.hangup()

    human = await peer(human_answers)
    brains: list[MenuBrain] = []
    config = make_config(tmp_path, human_queue=f"sip:humans@127.0.0.1:{human.port}", transfer="warm")
    phone = PhoneFrontend(config, factory(recognizer, brains), media=rtp, voice=FakeVoice())
    await phone.start()
    caller = await peer()
    try:
        call = await caller.invite(f"sip:agent@127.0.0.1:{phone.address[1]}", timeout=5)
        await caller._send_in_dialog(call, "INFO", body=b"Signal=0\r\n", content_type="application/dtmf-relay")
        await asyncio.wait_for(call.ended.wait(), 20)
        # FakeVoice says the summary as 0.5 s of tone: the human's first second is mostly that tone.
        assert sum(1 for e in human_heard[:50] if e > 0.01) >= 15, human_heard[:50]
    finally:
        await caller.stop(1)
        await phone.stop(1)
        await human.stop(1)


async def test_other_digits_are_menu_turns(recognizer: UtteranceRecognizer, tmp_path: Path) -> None:
    brains: list[MenuBrain] = []
    phone = PhoneFrontend(make_config(tmp_path), factory(recognizer, brains), media=rtp)
    await phone.start()
    caller = await peer()
    try:
        call = await caller.invite(f"sip:agent@127.0.0.1:{phone.address[1]}", timeout=5)
        for d in "27":
            await caller._send_in_dialog(call, "INFO", body=f"Signal={d}\r\n".encode(),
                                         content_type="application/dtmf-relay")
            await asyncio.sleep(0.4)
        media: Any = call.media
        pace = asyncio.ensure_future(_keep_sending(media))  # RFC 4733 events ride on a running stream
        await media.send_dtmf("9")
        await asyncio.sleep(0.6)
        pace.cancel()
        await call.hangup()
        for _ in range(50):
            if phone.results:
                break
            await asyncio.sleep(0.1)
        assert [t.dtmf for t in brains[0].turns] == ["2", "7", "9"]
        assert any(e["type"] == "dtmf" for e in phone.results[0].events)
    finally:
        await caller.stop(1)
        await phone.stop(1)


async def _keep_sending(media: Any) -> None:
    silence = np.zeros(160, np.float32)
    while True:
        await media.send(silence)


async def test_dial_runs_the_session_on_an_outbound_call(recognizer: UtteranceRecognizer, tmp_path: Path) -> None:
    async def answer_then_hang_up(call: Call) -> None:
        media: Any = call.media
        for _ in range(50):  # one second of (quiet) audio toward the agent
            await media.send(np.zeros(160, np.float32))
        await call.hangup()

    callee = await peer(answer_then_hang_up)
    brains: list[MenuBrain] = []
    phone = PhoneFrontend(make_config(tmp_path), factory(recognizer, brains), media=rtp)
    await phone.start()
    try:
        received = REGISTRY.get_sample_value("voice_agent_rtp_packets_total", {"direction": "received"}) or 0.0
        result = await asyncio.wait_for(phone.dial(f"sip:alice@127.0.0.1:{callee.port}"), 15)
        assert result.call_id.startswith("sip-") and result.duration > 0.5
        assert any(e["type"] == "call_start" for e in result.events)
        assert phone.ua.calls == {} and callee.calls == {}
        # the leg's RTP counters go into the stored call and the Prometheus metrics
        store = CallStore(phone.config.store_url)
        media = store.get_call(result.call_id).meta["media"]
        store.close()
        assert media["packets_received"] >= 40 and media["lost"] == 0 and "jitter_ms" in media
        after = REGISTRY.get_sample_value("voice_agent_rtp_packets_total", {"direction": "received"}) or 0.0
        assert after - received == media["packets_received"]
    finally:
        await phone.stop(1)
        await callee.stop(1)


async def test_a_session_crash_ends_only_its_call(recognizer: UtteranceRecognizer, tmp_path: Path) -> None:
    brains: list[MenuBrain] = []
    phone = PhoneFrontend(make_config(tmp_path), factory(recognizer, brains, crash_first=True), media=rtp)
    await phone.start()
    caller = await peer()
    try:
        first = await caller.invite(f"sip:agent@127.0.0.1:{phone.address[1]}", timeout=5)
        await asyncio.wait_for(first.ended.wait(), 5)
        assert first.end_reason == "remote-bye" and phone.crashes == 1
        second = await caller.invite(f"sip:agent@127.0.0.1:{phone.address[1]}", timeout=5)
        await asyncio.sleep(0.5)
        assert second.state == "confirmed" and brains
        await second.hangup()
    finally:
        await caller.stop(1)
        await phone.stop(1)


async def test_serve_shuts_down_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, VOICE_AGENT_HOME=str(tmp_path / "home"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice_agent", "--log-format", "json", "--set", "sip.shutdown_timeout_s=1",
        "serve", "--echo", "--sip-listen", f"127.0.0.1:{port}", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "serve exited before it was ready: " + "".join(lines)
        lines.append(line)
        if "serve_ready" in line:
            break
    caller = await peer()
    try:
        call = await caller.invite(f"sip:agent@127.0.0.1:{port}", timeout=5)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        with pytest.raises(CallFailed) as info:
            await caller.invite(f"sip:agent@127.0.0.1:{port}", timeout=5)
        assert info.value.status == 503
        await asyncio.wait_for(call.ended.wait(), 5)  # BYE after the 1 s drain
        assert call.end_reason == "remote-bye"
        _, rest = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0
        log = "".join(lines) + rest.decode()
        assert '"event": "phone_call_start"' in log and '"call_id": "sip-' in log
        assert '"event": "sip_stopped"' in log
    finally:
        if proc.returncode is None:
            proc.kill()
        await caller.stop(1)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, VOICE_AGENT_HOME=str(tmp_path / "home"))
    for args, needle in ((["dial", "tel:+1555"], "not a SIP URI"),
                         (["serve", "--sip-listen", "localhost"], "expected HOST:PORT"),
                         (["--set", "sip.trunks=oops", "serve", "--echo"], "sip.trunks[0]"),
                         (["--set", "sip.codecs=G729", "serve", "--echo"], "sip.codecs")):
        proc = subprocess.run([sys.executable, "-m", "voice_agent", *args], capture_output=True, text=True,
                              cwd=ROOT, env=env, timeout=60, check=False)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


async def test_trunk_registration_from_config(recognizer: UtteranceRecognizer, tmp_path: Path) -> None:
    import shutil

    from tests.conftest import need
    from tests.telephony.sip.conftest import sipp_server

    need(shutil.which("sipp") is not None, "sipp (sip-tester) is not installed")
    proc, port = await sipp_server("uas_register_auth", cwd=tmp_path)
    trunk = {"name": "provider", "host": f"127.0.0.1:{port}", "username": "alice", "password": "s3cret",
             "register": True, "expires": 2}
    phone = PhoneFrontend(make_config(tmp_path, trunks=[trunk], t1_ms=20), factory(recognizer, []), media=rtp)
    await phone.start()
    try:
        reg = phone.registrations[0]
        await asyncio.wait_for(reg.registered.wait(), 5)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)  # challenge, answer, 200; then the refresh
        assert proc.returncode == 0, out.decode()[-2000:]
        assert reg.last_status == 200 and reg.expires == 2
        # The registering trunk's own address (loopback here) may call in.
        assert phone.ua.policy.allowed_ip("127.0.0.1")
    finally:
        await phone.stop(0.5)
