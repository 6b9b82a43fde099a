"""`voice-agent serve` runs the web front end beside the SIP one and stops it on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.telephony.sip.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def fetch(url: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_serve_starts_and_stops_the_web_front_end(tmp_path: Path) -> None:
    sip, http = free_port(), free_port()
    env = dict(os.environ, VOICE_AGENT_HOME=str(tmp_path / "home"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice_agent", "--log-format", "json", "serve", "--echo",
        "--sip-listen", f"127.0.0.1:{sip}", "--http-listen", f"127.0.0.1:{http}", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "serve exited before it was ready: " + "".join(lines)
            lines.append(line)
            if "serve_ready" in line:
                break
        assert any('"event": "http_listening"' in x and f"127.0.0.1:{http}" in x for x in lines)
        base = f"http://127.0.0.1:{http}"
        status, page = await asyncio.to_thread(fetch, base + "/")
        assert status == 200 and "Talk to support" in page
        status, spec = await asyncio.to_thread(fetch, base + "/api/openapi.json")
        assert status == 200 and json.loads(spec)["openapi"].startswith("3.")
        status, body = await asyncio.to_thread(fetch, base + "/api/calls")
        assert status == 401
        # --echo loads no models: browser calls are refused clearly, the console still works.
        status, body = await asyncio.to_thread(fetch, base + "/api/webrtc/offer", b'{"sdp": "v=0"}')
        assert status == 503 and "not enabled" in json.loads(body)["error"]
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, rest.decode()[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    status = await asyncio.to_thread(lambda: _refused(f"http://127.0.0.1:{http}/"))
    assert status


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def test_bad_http_listen_is_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, VOICE_AGENT_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-m", "voice_agent", "serve", "--echo", "--http-listen", "localhost"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "expected HOST:PORT" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
