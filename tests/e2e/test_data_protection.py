"""Data protection end to end through the real `voice-agent serve`: a phone call and an upload stored with a key
leave no plaintext in the database files, the recording or the upload; the API decrypts for an authorised user;
`keys rotate` re-encrypts everything and a restart with the old key fails with one clear line; erasure by phone
number leaves nothing of the caller; retention deletes what is older than configured.

The first server loads every model and takes a real call from sipp (the project's caller fixture as mu-law
RTP, from a phone number); the later ones are model-free (`--echo`) web front ends over the same store.
Every wait is on a condition (the store, the API, a log line), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from asr.audio import load_audio, resample
from tests.conftest import need
from tests.e2e.test_serve_crash_recovery import Serve, wait_for
from tests.telephony.sip.conftest import SCENARIOS, free_port
from voice_agent.protection.files import MAGIC
from voice_agent.store import CallStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
Gen = tuple[Path, dict[str, Any]]
CALLER = "+15550001234"


class Api:
    """The REST API of one server, as one user with a token."""

    def __init__(self, port: int, token: str) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
        status, data = self.call(method, path, body)
        assert status == 200, (path, status, data[:500])
        return json.loads(data)

    def upload(self, path: Path) -> dict[str, Any]:
        async def send() -> dict[str, Any]:
            form = aiohttp.FormData()
            form.add_field("file", path.read_bytes(), filename=path.name, content_type="audio/wav")
            async with aiohttp.ClientSession() as s, s.post(
                    self.base + "/api/jobs", data=form, headers={"Authorization": f"Bearer {self.token}"}) as r:
                assert r.status == 201, await r.text()
                return dict(await r.json())

        return asyncio.run(send())


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "voice_agent", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


class Server(Serve):
    """`voice-agent serve` with these options (and the web front end on ``http``)."""

    def __init__(self, env: dict[str, str], options: list[str], http: int, *, echo: bool, sip: int = 0) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voice_agent", "--log-format", "json", *options, "serve",
             *(["--echo"] if echo else []), "--sip-listen", f"127.0.0.1:{sip or free_port()}",
             "--http-listen", f"127.0.0.1:{http}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()


def web_serve(env: dict[str, str], options: list[str], http: int) -> Server:
    """A model-free server with the web front end (the store and API are the real ones)."""
    server = Server(env, options, http, echo=True)
    server.wait_ready(60)
    return server


def store_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob("calls.db*")))


def test_encrypted_calls_rotation_erasure_and_retention_through_serve(generated: Gen, tmp_path: Path) -> None:
    need(shutil.which("sipp") is not None, "sipp (sip-tester) is not installed")
    from telephony.g711 import encode_ulaw

    home = tmp_path / "home"
    home.mkdir()
    shared_cache = ROOT / "var" / "test-home" / "cache"  # converted models, shared with the other e2e runs
    shared_cache.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(shared_cache, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_AGENT_")}
    env.update(VOICE_AGENT_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    for name in ("k1", "k2"):
        made = cli(env, "keys", "generate", "--output", str(tmp_path / name))
        assert made.returncode == 0, made.stderr
    key1 = ["--set", f"protection.key_file={tmp_path / 'k1'}"]
    key2 = ["--set", f"protection.key_file={tmp_path / 'k2'}"]
    assert cli(env, *key1, "users", "add", "ada", "--role", "admin", "--password-stdin",
               stdin="admin-password-1\n").returncode == 0
    token = cli(env, *key1, "users", "token", "ada").stdout.strip()

    # ---- a phone call from a number, and an upload, on a server with every model and key 1 ----
    audio = np.asarray(load_audio(generated[0] / "caller_multiturn.wav"))
    audio = (audio[0] if audio.ndim == 2 else audio)[: 16000 * 14]
    (tmp_path / "caller.ul").write_bytes(encode_ulaw(resample(audio, 16000, 8000)))
    scenario = (SCENARIOS / "uac_stream_caller.xml").read_text().replace("sip:sipp@", f"sip:{CALLER}@")
    (tmp_path / "caller.xml").write_text(scenario)
    sip, http = free_port(), free_port()
    full = Server(env, key1, http, echo=False, sip=sip)
    api = Api(http, token)
    try:
        full.wait_ready()
        sipp = subprocess.run(
            ["sipp", "-sf", str(tmp_path / "caller.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(free_port()),
             "-mi", "127.0.0.1", "-mp", "0", "-nostdin", "-timeout", "90s", f"127.0.0.1:{sip}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert sipp.returncode == 0, sipp.stdout[-2000:]

        def stored() -> list[dict[str, Any]]:
            calls = api.json("/api/calls?kind=phone")["calls"]
            return [c for c in calls if c["outcome"] not in ("active", None)]

        cid = wait_for(stored, 60, "the call stored")[0]["id"]
        job = api.upload(generated[0] / "stereo_call.wav")
        done = wait_for(lambda: (j := api.json(f"/api/jobs/{job['id']}"))["status"] in ("done", "failed") and j,
                        120, "the upload transcribed")
        assert done["status"] == "done", done
    finally:
        full.stop()
    assert not any("Traceback" in line for line in full.lines), "".join(full.lines[-30:])

    # ---- what is on disk: ciphertext only ----
    server = web_serve(env, key1, http)
    try:
        call = api.json(f"/api/calls/{cid}")
        assert call["source"].startswith(f"sip:{CALLER}@") and call["turns"]
        said = " ".join([call["text"], *(t["caller_text"] + " " + t["agent_text"] for t in call["turns"])])
        words = sorted({w for w in re.findall(r"[A-Za-z]{6,}", said)})
        assert len(words) >= 3, said
        found = api.json(f"/api/calls?q={words[0]}")
        assert cid in [c["id"] for c in found["calls"]] and found["search_mode"] == "whole_words"
        status, wav = api.call("GET", f"/api/calls/{cid}/recording")
        assert status == 200 and wav[:4] == b"RIFF"
        transcript = api.json(f"/api/jobs/{job['id']}/result")
        assert "internet" in transcript["text"].lower()
        web_call = api.json(f"/api/calls/{done['call_id']}")
    finally:
        server.stop()
    raw = store_bytes(home)
    leaked = [w for w in words if w.encode() in raw]
    assert not leaked, f"transcript words in the database files: {leaked}"
    assert CALLER[1:].encode() not in raw and b"internet" not in raw.lower()
    recording = home / "recordings" / f"{cid}.wav"
    sealed = recording.read_bytes()
    assert sealed.startswith(MAGIC) and b"RIFF" not in sealed
    with wave.open(io.BytesIO(wav)) as w:
        pcm = w.readframes(w.getnframes())
    loud = [i for i in range(0, len(pcm) - 64, 4096) if len(set(pcm[i:i + 64])) > 16][:20]
    assert loud and not [i for i in loud if pcm[i:i + 64] in sealed], "plain audio in the recording file"
    uploads = list((home / "uploads").iterdir())
    assert len(uploads) == 1 and uploads[0].read_bytes().startswith(MAGIC)
    assert (generated[0] / "stereo_call.wav").read_bytes()[44:108] not in uploads[0].read_bytes()

    # ---- key rotation; the old key is refused at the next start ----
    rotated = cli(env, *key1, "keys", "rotate", "--new-key-file", str(tmp_path / "k2"))
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["files"] == 2
    old = subprocess.run([sys.executable, "-m", "voice_agent", *key1, "serve", "--echo", "--sip-listen",
                          f"127.0.0.1:{free_port()}", "--http-listen", "off"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert old.returncode == 2 and "Traceback" not in old.stderr, old.stderr
    assert "is retired" in old.stderr and "protection.key_file" in old.stderr
    none = cli(env, "calls", "list")
    assert none.returncode == 2 and "no key is configured" in none.stderr and "Traceback" not in none.stderr

    server = web_serve(env, key2, http)
    try:
        assert api.json(f"/api/calls/{cid}")["text"] == call["text"]
        assert api.call("GET", f"/api/calls/{cid}/recording") == (200, wav)
        # ---- erasure of the caller by phone number ----
        receipt = api.json("/api/erasure", "POST", {"phone": "+1 (555) 000-1234"})
        assert receipt["call_ids"] == [cid] and receipt["deleted"]["recordings"] == 1
        assert receipt["deleted"]["turns"] == len(call["turns"]) and receipt["requested_by"] == "ada"
        assert api.call("GET", f"/api/calls/{cid}")[0] == 404
        assert api.json("/api/calls?kind=phone")["total"] == 0
    finally:
        server.stop()
    assert not recording.exists()
    store = CallStore(f"sqlite:///{home / 'calls.db'}", check_key=False)
    try:
        with store.read() as db:
            for table in ("calls", "segments", "turns", "events", "call_terms", "call_analytics", "kb_gaps"):
                assert db.value(f"SELECT COUNT(*) FROM {table} WHERE {'id' if table == 'calls' else 'call_id'} = ?",
                                (cid,)) == 0, table
            refs = [r[0] for r in db.rows("SELECT caller_ref FROM calls")]
    finally:
        store.close()
    assert len(refs) == 1 and refs[0] == ""  # only the upload's call is left, and it has no caller

    # ---- retention: the upload and its transcript are past a (tiny) retention period ----
    # (the upload is seconds old by now, past 0.5 s: nothing to wait for)
    server = web_serve(env, [*key2, "--set", "retention.uploads_days=0.000006", "--set",
                             "retention.transcripts_days=0.000006", "--set", "retention.interval_s=0.2"], http)
    try:
        def retained() -> set[str]:
            rows = api.json("/api/audit?limit=50")["audit"]
            return {r["action"] for r in rows if r["user"] == "retention"}

        assert wait_for(lambda: {"retention_delete_upload", "retention_delete_transcript"} <= retained(), 30,
                        "retention's audit rows")
        left = api.json(f"/api/calls/{done['call_id']}")
        assert web_call["text"] and left["text"] == "" and left["segments"] == []
        assert api.call("GET", f"/api/jobs/{job['id']}/result")[0] == 409
        assert any('"event": "retention_applied"' in line for line in server.lines)
    finally:
        server.stop()
    assert list((home / "uploads").iterdir()) == []
