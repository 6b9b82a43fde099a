"""kill -9 of `voice-agent serve` mid-call loses no finished turn; the next start recovers the call as `error`.

The real thing end to end: `serve` in a subprocess with every model, sipp streaming the project's caller
fixture as mu-law RTP, the store on a real PostgreSQL server. The test waits on the stored turn (not a
sleep), kills the server with SIGKILL, starts it again and reads the call back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.audio import load_audio, resample
from tests.conftest import need
from tests.postgres import PostgresServer
from tests.telephony.sip.conftest import SCENARIOS, free_port
from voice_agent.store import CallStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
Gen = tuple[Path, dict[str, Any]]


class Serve:
    """`voice-agent serve` in a subprocess; its log lines collected by a reader thread."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voice_agent", "--log-format", "json", "serve", "--sip-listen",
             f"127.0.0.1:{port}", "--http-listen", "off"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "serve_ready" in line:
                self.ready.set()

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            assert self.proc.poll() is None, "serve exited: " + "".join(self.lines[-20:])
            assert time.monotonic() < deadline, "serve not ready: " + "".join(self.lines[-20:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_mid_call_keeps_finished_turns_and_recovers_the_call(
        generated: Gen, postgres: PostgresServer, tmp_path: Path) -> None:
    need(shutil.which("sipp") is not None, "sipp (sip-tester) is not installed")
    from telephony.g711 import encode_ulaw

    url = postgres.new_database()
    home = tmp_path / "home"
    home.mkdir()
    shared_cache = ROOT / "var" / "test-home" / "cache"  # converted models, shared with the other e2e runs
    shared_cache.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(shared_cache, target_is_directory=True)
    env = dict(os.environ, VOICE_AGENT_HOME=str(home), VOICE_AGENT_STORE_URL=url, HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    port = free_port()

    # The caller asks its first question after the greeting, then stays on the line (no BYE for 2 minutes).
    audio = np.asarray(load_audio(generated[0] / "caller_multiturn.wav"))
    audio = (audio[0] if audio.ndim == 2 else audio)[: 16000 * 14]
    (tmp_path / "caller.ul").write_bytes(encode_ulaw(resample(audio, 16000, 8000)))
    scenario = (SCENARIOS / "uac_stream_caller.xml").read_text().replace(
        '<pause milliseconds="16000"/>', '<pause milliseconds="120000"/>')
    assert "120000" in scenario
    (tmp_path / "caller.xml").write_text(scenario)

    first = Serve(env, port)
    sipp: subprocess.Popen[str] | None = None
    store = CallStore(url)
    try:
        first.wait_ready()
        sipp = subprocess.Popen(
            ["sipp", "-sf", str(tmp_path / "caller.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(free_port()),
             "-mi", "127.0.0.1", "-mp", "0", "-nostdin", "-timeout", "150s", f"127.0.0.1:{port}"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        active = wait_for(lambda: [c for c in store.list_calls(kind="phone") if c.outcome == "active"], 30,
                          "the call stored as active")
        cid = active[0].id

        def answered() -> list[dict[str, Any]]:
            return [t for t in store.turns(cid) if t["agent_text"]]

        turns = wait_for(answered, 120, "the first answered turn in the store")
        first.proc.kill()  # SIGKILL: no shutdown code runs
        first.proc.wait(10)
        assert store.get_call(cid).outcome == "active"
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
            sipp.wait(10)
        first.stop()

    second = Serve(env, port)
    try:
        second.wait_ready()
        call = store.get_call(cid)
        assert call.outcome == "error" and call.meta.get("recovered") is True
        stored = store.turns(cid)
        assert stored[0]["caller_text"] == turns[0]["caller_text"] and stored[0]["agent_text"]
        assert turns[0]["caller_text"] in call.text and turns[0]["agent_text"] in call.text
        assert {s["speaker"] for s in store.segments(cid)} == {"caller", "agent"}
        assert any('"event": "call_recovered"' in ln and cid in ln for ln in second.lines)
        recording = home / "recordings" / f"{cid}.wav"
        assert recording.exists() and recording.stat().st_mode & 0o777 == 0o600  # call audio is owner-only
        assert recording.parent.stat().st_mode & 0o777 == 0o700
    finally:
        second.stop()
        store.close()
    listing = subprocess.run([sys.executable, "-m", "voice_agent", "calls", "list"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert cid in listing.stdout and "error" in listing.stdout, listing.stderr
