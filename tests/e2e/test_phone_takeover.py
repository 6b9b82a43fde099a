"""A phone caller taken over from the console, through the real parts.

``voice-agent serve`` runs as its own process with the real models (SIP and web front ends on
loopback). baresip calls in over SIP/RTP (G.711) playing a caller recording and recording what it
hears; an agent signed in to the console in Chromium (fake microphone: a recorded voice) takes the
call over once the assistant has answered. Checked both ways by ASR: the phone caller heard the
person's words, the person's browser heard the caller's; the assistant stayed quiet but kept
transcribing; the stored call holds the person's segment and their voice in the recording.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import shutil
import signal
import sys
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio, resample
from asr.metrics import normalize
from tests.conftest import need
from tests.e2e.test_browser_calls import CHROMIUM, STATS_JS, launch, mic_file, sign_in
from tests.telephony.sip.conftest import free_port
from voice_agent.auth import Users
from voice_agent.store import CallStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
AGENT_PW = "agent-password-takeover"
Gen = tuple[Path, dict[str, Any]]
PHONE = 8000
# The agent's microphone says "Why is my bill higher this month than it was last month?"
AGENT_WORDS = {"bill", "higher", "month", "last"}
# The caller, after the takeover: "I am moving to a new apartment next week and need my service moved."
CALLER_WORDS = {"moving", "apartment", "week", "service", "moved", "new"}

# Lines of the takeover panel where the server heard the caller's sentence about moving.
CALLER_LINES_JS = ("[...document.querySelectorAll('#takeover-captions .line.caller')]"
                   ".filter((e) => /moving|apartment|service|next week/i.test(e.textContent)).length")
START_RECORDER_JS = """() => {
  const stream = document.getElementById('takeover-audio').srcObject;
  window.heardChunks = [];
  const rec = new MediaRecorder(stream, { mimeType: 'audio/webm;codecs=opus' });
  rec.ondataavailable = (e) => window.heardChunks.push(e.data);
  rec.start(500);
  window.heardRecorder = rec;
}"""
STOP_RECORDER_JS = """async () => {
  const rec = window.heardRecorder;
  await new Promise((done) => { rec.onstop = done; rec.stop(); });
  const bytes = new Uint8Array(await new Blob(window.heardChunks).arrayBuffer());
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(text);
}"""


@dataclass
class Served:
    """A running ``voice-agent serve`` and where it keeps things."""

    proc: asyncio.subprocess.Process
    home: Path
    sip_port: int
    url: str
    log: list[str] = field(default_factory=list)

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.home / 'calls.db'}"


async def _drain(stream: asyncio.StreamReader, into: list[str], ready: asyncio.Event) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace")
        into.append(text)
        if '"event": "serve_ready"' in text:
            ready.set()


@pytest.fixture()
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """``voice-agent serve`` with the real models, SIP and HTTP on free loopback ports, one agent user."""
    home = tmp_path / "home"
    home.mkdir()
    shared_cache = ROOT / "var" / "test-home" / "cache"  # model conversions are shared with the other e2e runs
    shared_cache.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(shared_cache, target_is_directory=True)
    store = CallStore(f"sqlite:///{home / 'calls.db'}")
    Users(store).add("ann", "agent", AGENT_PW)
    store.close()
    sip, http = free_port(), free_port()
    env = dict(os.environ, VOICE_AGENT_HOME=str(home), HF_HUB_OFFLINE="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice_agent", "--log-format", "json", "serve", "--sip-listen", f"127.0.0.1:{sip}",
        "--http-listen", f"127.0.0.1:{http}", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    srv = Served(proc, home, sip, f"http://127.0.0.1:{http}")
    ready = asyncio.Event()
    reader = asyncio.ensure_future(_drain(proc.stderr, srv.log, ready))
    try:
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait([reader, waiter], timeout=300, return_when=asyncio.FIRST_COMPLETED)  # exited, or ready
        waiter.cancel()
        assert ready.is_set(), "serve did not get ready:\n" + "".join(srv.log[-40:])
        yield srv
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


def caller_file(generated: Gen, out: Path) -> Path:
    """The phone caller: the multi-turn caller's first question, then 'I am moving...' every 9 s from 28 s."""
    first = np.asarray(load_audio(generated[0] / "caller_multiturn.wav"))
    first = (first[0] if first.ndim == 2 else first)[: 16000 * 12]  # 5 s of silence, the Saturday question
    move = np.asarray(load_audio(generated[0] / "utt_move.wav")).mean(axis=0)
    audio = np.zeros(16000 * 100, np.float32)
    audio[: len(first)] = first
    for start in range(28, 100 - 6, 9):
        audio[16000 * start: 16000 * start + len(move)] = move
    sf.write(out, resample(audio, 16000, PHONE), PHONE, subtype="PCM_16")
    return out


async def baresip(folder: Path, source: Path, target: str) -> asyncio.subprocess.Process:
    """A real SIP phone dialling ``target``: plays ``source``, records what it hears into folder/rec."""
    need(shutil.which("baresip") is not None, "baresip is not installed")
    (folder / "rec").mkdir()
    (folder / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    (folder / "config").write_text("\n".join([
        "poll_method epoll", f"sip_listen 127.0.0.1:{free_port()}", "net_interface 127.0.0.1",
        f"audio_source aufile,{source}", "audio_player aufile,none",
        "module_path /usr/lib/baresip/modules", "module g711.so", "module aufile.so", "module sndfile.so",
        "module menu.so", "module account.so", f"snd_path {folder / 'rec'}", "rtp_ports 20000-29999", ""]))
    return await asyncio.create_subprocess_exec(
        "baresip", "-f", str(folder), "-e", f"/dial {target}", "-t", "240",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


def words_of(transcriber: Any, audio: np.ndarray, rate: int, window_s: float = 8.0) -> set[str]:
    """The words Whisper hears, a few seconds at a time.

    Both sides repeat one sentence: a long window holding it four times compresses like a Whisper
    loop and the transcriber rightly drops it, so each window holds at most two.
    """
    audio16 = resample(audio.astype(np.float32), rate, 16000)
    step = int(window_s * 16000)
    words: set[str] = set()
    for i in range(0, len(audio16), step):
        words |= set(normalize(transcriber.transcribe(audio16[i:i + step], sample_rate=16000).text))
    return words


def webm_audio(data: bytes) -> np.ndarray:
    """Decode the browser's MediaRecorder output (WebM/Opus) to 16 kHz mono."""
    import av

    out: list[np.ndarray] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        for frame in container.decode(audio=0):
            out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


async def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def test_console_agent_takes_over_a_baresip_caller(served: Served, generated: Gen, transcriber: Any,
                                                         tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    need(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    phone = await baresip(tmp_path, caller_file(generated, tmp_path / "caller.wav"),
                          f"sip:agent@127.0.0.1:{served.sip_port}")
    heard_b64 = ""
    try:
        async with async_playwright() as p:
            browser = await launch(p, mic_file(generated[0] / "utt_bill.wav", tmp_path, loop=True))
            console = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            await sign_in(console, served.url, "ann", AGENT_PW)
            # The phone call is listed among the live calls; watch its captions until the assistant answered.
            row = console.locator("#live-rows tr[data-call^='sip-']")
            await row.wait_for(timeout=60000)
            cid = await row.get_attribute("data-call")
            assert cid is not None
            await console.click(f"#live-rows tr[data-call='{cid}'] td.caption")
            await console.wait_for_function(
                "document.querySelectorAll('#watch-captions .line.agent').length >= 2", timeout=90000)
            await console.click(f"#live-rows tr[data-call='{cid}'] button[data-action=takeover]")
            await console.wait_for_selector("#takeover:not([hidden])", timeout=20000)
            await console.wait_for_function("document.getElementById('takeover-audio').srcObject", timeout=20000)
            await console.evaluate(START_RECORDER_JS)
            # The server transcribes the caller for the agent (the tail of a question the assistant was
            # answering may come first), and the agent's own words for the call.
            await console.wait_for_function(CALLER_LINES_JS + " >= 1", timeout=60000)
            human_line = console.locator("#takeover-captions .line.human").first
            await human_line.wait_for(timeout=60000)
            stats = await console.evaluate(f"({STATS_JS})(window.voiceConsole.takeover.pc)")
            assert stats["energy"] > 0, stats  # the phone caller's voice reached the agent's browser
            # One more of the caller's sentences, heard in the browser, then the agent hangs up.
            await console.wait_for_function(CALLER_LINES_JS + " >= 2", timeout=60000)
            heard_b64 = await console.evaluate(STOP_RECORDER_JS)
            await console.click(f"#live-rows tr[data-call='{cid}'] button.danger")
            await browser.close()
        # baresip closes its recordings when the call ends; the call is then stored with its outcome.
        store = CallStore(served.store_url)
        try:
            def finished() -> Any:
                found = [c for c in store.list_calls(limit=5, kind="phone") if c.id == cid]
                return store.get_call(cid) if found and found[0].outcome != "active" else None

            stored = await wait_for(finished, 60, "the call in the store")
            segments = store.segments(stored.id)
            events = store.events(stored.id)
            turns = store.turns(stored.id)
        finally:
            store.close()
    finally:
        if phone.returncode is None:
            phone.send_signal(signal.SIGTERM)
            try:
                out, _ = await asyncio.wait_for(phone.communicate(), 20)
            except TimeoutError:
                phone.kill()
                out, _ = await phone.communicate()
        else:
            out, _ = await phone.communicate()
    phone_log = (out or b"").decode(errors="replace")
    assert "Call established" in phone_log, phone_log[-3000:]
    assert stored.id == cid and stored.meta["human_agents"] == ["ann"]
    held = next(e["t"] for e in events if e["type"] == "assistant_held")

    # The phone caller heard the person (ASR of what baresip received after the takeover).
    heard_files = sorted((tmp_path / "rec").glob("*-dec.wav"))
    assert heard_files, phone_log[-2000:]
    heard, rate = sf.read(heard_files[0], dtype="float32")
    caller_heard = words_of(transcriber, heard[int(held * rate):], rate)
    loudness = [round(float(np.sqrt(np.mean(heard[i:i + rate] ** 2))), 3) for i in range(0, len(heard), rate)]
    assert len(AGENT_WORDS & caller_heard) >= 2, (caller_heard, held, heard_files, loudness)
    # The person heard the caller (ASR of what the console's browser received).
    agent_heard = words_of(transcriber, webm_audio(base64.b64decode(heard_b64)), 16000)
    assert len(CALLER_WORDS & agent_heard) >= 2, agent_heard

    # The stored call: the person's words as their own segments, the caller still transcribed, and the
    # assistant silent after the takeover.
    human = [s for s in segments if s.get("human") == "ann"]
    assert human and all(s["speaker"] == "agent" and s["channel"] == 1 for s in human), segments
    assert AGENT_WORDS & set(normalize(" ".join(s["text"] for s in human))), human
    after = [s for s in segments if s["start"] >= held]
    assert any(s["speaker"] == "caller" and CALLER_WORDS & set(normalize(s["text"])) for s in after), after
    assert not [s for s in after if s["speaker"] == "agent" and not s.get("human")], after
    assert all(not t["agent_text"] for t in turns if (t["end_of_speech"] or 0) > held), turns
    # The person's voice is in the recording's agent channel.
    with wave.open(str(stored.meta["recording"])) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)[:, 1]
    recorded = words_of(transcriber, pcm[int(held * PHONE):].astype(np.float32) / 32767, PHONE)
    assert len(AGENT_WORDS & recorded) >= 2, recorded
