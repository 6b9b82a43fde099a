"""Actions end to end against the example action server, started as a real HTTP service on a loopback port.

- A whole simulated call through the real engine (`voice-agent call --fast`, Whisper, the dialog, hibari): an
  espeak-ng caller books a technician by voice; the server receives exactly one booking with the right slots,
  the report holds the audited action event (postcode masked), and the postcode is in no log line of ours.
- The same call with the server down: the caller hears the fallback and the offer of a person.
- A phone call over SIP (sipp, G.711): the request said, the mobile number keyed as SIP INFO ending with #,
  1 to confirm; and the same keys through a CallSession in-process.
- The dialog Brain over the real HTTP port, scripted: the outage check, the SMS link, a booking the service
  refuses (its own words are spoken), and a service that accepts the connection but never answers (timeout).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from audio_fixtures.make_fixtures import SR, _place, speak, write_wav
from dialog import Brain, DialogOptions, example_kb_dir
from tests.dialog.support import test_cache as dialog_cache_dir

ROOT = Path(__file__).resolve().parents[2]
PORT_ENV = "BRIGHTLINE_ACTIONS_PORT"  # the example KB's actions.yaml reads its port from here


class ActionServer:
    """examples/action_server.py in a subprocess; ready once it printed its address."""

    def __init__(self, log: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "action_server.py"), "--port", "0", "--log", str(log)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the socket listens (or the process died)
        m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert m, f"the action server did not start: {line!r}"
        self.port = int(m.group(1))

    def records(self) -> dict[str, Any]:
        with urlopen(f"http://127.0.0.1:{self.port}/records", timeout=5) as r:
            data: dict[str, Any] = json.load(r)
        return data

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ActionServer]:
    s = ActionServer(tmp_path / "actions.jsonl")
    yield s
    s.stop()


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def next_weekday(day: int) -> dt.date:
    today = dt.date.today()
    return today + dt.timedelta(days=(day - today.weekday()) % 7 or 7)


# -- a whole call through the real engine ---------------------------------------------------------------

# (what the caller says, seconds of silence after it: room for the agent's reply)
BOOKING = [("Can you book a technician for me please?", 6.0), ("Tuesday morning.", 7.0),
           ("W. 1 A. 1 H. Q.", 14.0), ("Yes please.", 3.0)]


@pytest.fixture(scope="module")
def booking_caller(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parts, t = [], 1.0
    for text, gap in BOOKING:
        audio = speak(text, voice="en-gb", speed=130) * 0.8
        parts.append((t, audio))
        t += len(audio) / SR + gap
    path = tmp_path_factory.mktemp("caller") / "booking.wav"
    write_wav(path, _place(parts, t))
    return path


def run_call(caller: Path, tmp: Path, port: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    report = tmp / "report.json"
    env = dict(os.environ, VOICE_AGENT_HOME=str(ROOT / "var" / "test-home"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", **{PORT_ENV: str(port)})
    proc = subprocess.run(
        [sys.executable, "-m", "voice_agent", "--log-level", "INFO", "--log-format", "json", "call",
         "--caller", str(caller), "--fast", "--record", str(tmp / "call.wav"), "--report", str(report)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    return json.loads(report.read_text()), logs


def our_lines(logs: list[dict[str, Any]]) -> str:
    """Log lines other than the caller's own words (caller_turn goes through the transcript redaction)."""
    return "\n".join(json.dumps(line) for line in logs if line.get("event") != "caller_turn")


@pytest.mark.e2e
def test_a_caller_books_a_technician_by_voice(booking_caller: Path, server: ActionServer, tmp_path: Path) -> None:
    report, logs = run_call(booking_caller, tmp_path, server.port)
    said = [(t["caller_text"], t["agent_text"]) for t in report["turns"]] + [
        (e["t"], e["type"]) for e in report["events"]]
    bookings = server.records()["bookings"]
    assert len(bookings) == 1, said
    booking = bookings[0]
    assert (booking["date"], booking["slot"], booking["postcode"]) == (
        next_weekday(1).isoformat(), "morning", "W1A 1HQ"), said
    (event,) = [e for e in report["events"] if e["type"] == "action"]
    assert event["name"] == "book_technician" and event["outcome"] == "ok"
    assert event["slots"] == {"date": booking["date"], "slot": "morning", "postcode": "[POSTCODE]"}
    assert event["latency_ms"] > 0
    last = report["turns"][-1]["agent_text"]
    assert booking["reference"] in last, said  # the result was spoken
    confirm = report["turns"][-2]["agent_text"]
    assert "Shall I go ahead?" in confirm and "W1A 1HQ" in confirm
    assert "W1A" not in our_lines(logs) and "1HQ" not in our_lines(logs)
    # nor in the caller's own words as logged, however Whisper wrote them
    assert "W1A1HQ" not in re.sub(r"[^A-Z0-9]", "", json.dumps(logs).upper())
    assert any("[POSTCODE]" in str(line.get("text")) for line in logs if line.get("event") == "caller_turn")
    assert any(line.get("event") == "action" for line in logs)  # audited in the log too, masked


@pytest.mark.e2e
def test_the_server_is_down_the_caller_hears_the_fallback(booking_caller: Path, tmp_path: Path,
                                                          transcriber: Any) -> None:
    from asr.audio import load_audio
    from asr.metrics import normalize

    report, _ = run_call(booking_caller, tmp_path, closed_port())
    (event,) = [e for e in report["events"] if e["type"] == "action"]
    assert event["outcome"] == "failed" and event["error"] == "connection refused"
    last = report["turns"][-1]["agent_text"]
    assert "couldn't book the technician" in last and "connect you with a colleague" in last
    # and it was heard: the agent's channel of the recording, transcribed
    agent = load_audio(tmp_path / "call.wav")[1]
    heard = " ".join(normalize(transcriber.transcribe(agent, sample_rate=16000).text))
    assert "colleague" in heard, heard


# -- the dialog over the real HTTP port ---------------------------------------------------------------------


def brain_for(port: int) -> Brain:
    from voice_agent.actions import HttpActionPort

    os.environ[PORT_ENV] = str(port)
    try:
        brain = Brain(DialogOptions(kb_dir=str(example_kb_dir())), dialog_cache_dir(),
                      use_llm=False, actions=HttpActionPort(), today=lambda: dt.date(2026, 12, 5))
    finally:
        del os.environ[PORT_ENV]
    brain.load()
    return brain


async def talk(call: Any, *turns: str) -> list[str]:
    out = []
    for text in turns:
        reply = await call.respond(text)
        out.append(await reply.text())
    return out


@pytest.mark.e2e
async def test_outage_check_and_sms_link_over_http(server: ActionServer) -> None:
    brain = brain_for(server.port)
    call = brain.open_call()
    said = await talk(call, "Please check the outage status for my postcode", "SW1A 1AA", "yes")
    assert "known outage in your area" in said[-1]
    said = await talk(call, "Can you text me the status link please?", "oh seven seven double oh nine oh oh one two "
                      "three", "yes please")
    assert "on its way" in said[-1]
    (message,) = server.records()["messages"]
    assert message["to"] == "07700900123" and "brightline.example/status" in message["text"]
    assert server.records()["bookings"] == []


@pytest.mark.e2e
async def test_the_services_refusal_is_spoken(server: ActionServer) -> None:
    call = brain_for(server.port).open_call()
    said = await talk(call, "Can you book a technician on Sunday morning for SW1A 1AA?", "yes")
    assert "don't visit on Sundays" in said[-1] and "connect you with a colleague" in said[-1]
    assert server.records()["bookings"] == []


@pytest.mark.e2e
async def test_a_service_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        brain = brain_for(silent.getsockname()[1])
        book = next(a for a in brain.actions.actions if a.name == "book_technician")
        quick = dataclasses.replace(book, endpoint=dataclasses.replace(book.endpoint, timeout_s=0.5))
        brain.actions = dataclasses.replace(brain.actions, actions=(quick,))
        brain.load()
        call = brain.open_call()
        said = await asyncio.wait_for(talk(call, "Can you book a technician on Tuesday morning for SW1A 1AA?",
                                           "yes"), 30)
        reply = await call.respond("yes")  # yes to the offer of a person
        decision = await reply.outcome()
    assert "couldn't book the technician" in said[-1] and "connect you with a colleague" in said[-1]
    assert decision.escalate


@pytest.mark.e2e
async def test_a_mobile_number_typed_on_the_keypad_through_a_call_session(server: ActionServer) -> None:
    """The session's keys (each one its own turn, each interrupting the agent) reach the action one by one; the
    number ends with #, key 1 confirms; the service gets the number once and the call's events audit it."""
    from tests.voice_agent.fakes import FakeVoice
    from tests.voice_agent.test_session_api import RATE, DeafRecognizer, Line
    from voice_agent.engine import DialogBrain
    from voice_agent.session import CallSession

    call = brain_for(server.port).open_call()
    first = await call.respond("Can you text me the status link please?")  # said before the keys
    assert (await first.text()).startswith("What's your mobile number?")
    events: list[dict[str, Any]] = []
    session = CallSession(DeafRecognizer(), DialogBrain(call), FakeVoice(), RATE,  # type: ignore[arg-type]
                          on_event=events.append)
    keys = iter("07700900123#")
    said_yes: list[int] = []

    async def script(s: CallSession, tick: int) -> None:
        if 30 <= tick and tick % 3 == 0:  # a key every 60 ms, while the agent may still be talking
            key = next(keys, None)
            if key is not None:
                s.press(key)
        if not said_yes and any("Shall I go ahead?" in t.agent_text for t in s.turns):
            said_yes.append(tick)
            s.press("1")  # yes to the confirmation, once it has been asked

    line = Line(session, 1500, script)
    result = await line.run()
    (message,) = server.records()["messages"]
    assert message["to"] == "07700900123"
    audits = [e for e in result.events if e["type"] == "action"]
    assert [(a["name"], a["outcome"], a["slots"]) for a in audits] == [
        ("text_status_link", "ok", {"mobile": "[DIGITS]"})]
    agent = " ".join(t["text"] for t in result.transcript if t["speaker"] == "agent")
    assert "on its way" in agent and result.outcome != "error"


# -- a phone call over SIP: the request said, the number keyed (SIP INFO), confirmed with 1 ----------------


def _sip_scenario(keys: str, before_keys_ms: int, after_keys_ms: int) -> str:
    """uac_stream_caller with DTMF: the caller's audio streams, then each key is sent as a SIP INFO."""
    from tests.telephony.sip.conftest import SCENARIOS

    base = (SCENARIOS / "uac_stream_caller.xml").read_text()
    info = """  <send retrans="500">
    <![CDATA[
      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={key}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
  <pause milliseconds="{pause}"/>
"""
    sends = "".join(info.format(cseq=i + 2, key=k, pause=250 if i < len(keys) - 2 else 6000)
                    for i, k in enumerate(keys))
    script = f'<pause milliseconds="{before_keys_ms}"/>\n{sends}  <pause milliseconds="{after_keys_ms}"/>'
    out = base.replace('<pause milliseconds="16000"/>', script).replace("CSeq: 2 BYE", f"CSeq: {len(keys) + 2} BYE")
    assert script in out and "uac_stream_caller" in out
    return out


@pytest.mark.e2e
@pytest.mark.slow
def test_a_phone_caller_asks_by_voice_and_keys_the_number_over_sip(server: ActionServer, tmp_path: Path) -> None:
    import shutil

    from asr.audio import resample
    from telephony.g711 import encode_ulaw
    from tests.conftest import need
    from tests.e2e.test_sip_calls import PhoneServer
    from tests.telephony.sip.conftest import free_port
    from voice_agent.config import load_config
    from voice_agent.engine import Engine

    need(shutil.which("sipp") is not None, "sipp (sip-tester) is not installed")
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").symlink_to(ROOT / "var" / "test-home" / "cache", target_is_directory=True)
    said = speak("Please text me the link.", voice="en-gb", speed=120) * 0.8
    audio = _place([(6.0, said)], 6.0 + len(said) / SR + 2.0)  # the greeting first, then the request
    (tmp_path / "caller.ul").write_bytes(encode_ulaw(resample(audio, SR, 8000)))
    # keys after the question, the number ends with #, then 1 (yes) once the confirmation is out
    (tmp_path / "scenario.xml").write_text(_sip_scenario("07700900123#1", 14000, 10000))
    os.environ[PORT_ENV] = str(server.port)
    try:
        config = load_config(env={"VOICE_AGENT_HOME": str(home)})
        engine = Engine.from_config(config)
    finally:
        del os.environ[PORT_ENV]
    config.sip.listen = f"127.0.0.1:{free_port()}"
    phone = PhoneServer(config, engine)
    try:
        proc = subprocess.run(
            ["sipp", "-sf", str(tmp_path / "scenario.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(free_port()),
             "-mi", "127.0.0.1", "-mp", "0", "-nostdin", "-timeout", "90s", "-timeout_error", "-trace_err",
             "-error_file", str(tmp_path / "sipp.err"), f"127.0.0.1:{phone.port}"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
        (result,) = phone.wait_results(1)
    finally:
        phone.stop()
    turns = [(t.caller_text, t.agent_text) for t in result.turns if t.agent_text]
    assert proc.returncode == 0, (turns, [(e["t"], e["type"]) for e in result.events], proc.stdout[-1000:])
    (message,) = server.records()["messages"]
    assert message["to"] == "07700900123", turns
    audits = [e for e in result.events if e["type"] == "action"]
    assert [(a["name"], a["outcome"], a["slots"]) for a in audits] == [
        ("text_status_link", "ok", {"mobile": "[DIGITS]"})], turns
