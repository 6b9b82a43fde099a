"""Web hardening through the real server: upload names, malformed multipart, missing assets, headers on errors,
no server paths to viewers, KB names, the password policy."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from voice_agent.auth import AuthError, Users
from voice_agent.cli import main
from voice_agent.config import Config
from voice_agent.passwords import PasswordRejected, check_password
from voice_agent.store import CallStore
from voice_agent.web.server import make_app

from .test_jobs import Gen, finished

Client = TestClient[Any, Any]
HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


@pytest.fixture()
async def jobs_client(web_config: Config, store: CallStore, transcriber: Any) -> AsyncIterator[Client]:
    app = make_app(web_config, store, transcriber=transcriber)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


def multipart(filename_header: str, body: bytes, boundary: str = "b0undary") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; {filename_header}\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()


async def test_upload_names_lose_folders_and_line_breaks(jobs_client: Client, generated: Gen,
                                                         tokens: dict[str, str], web_config: Config) -> None:
    agent = {"Authorization": f"Bearer {tokens['ann']}"}
    audio = (generated[0] / "utt_bill.wav").read_bytes()
    evil = "filename*=UTF-8''..%2F..%2Fetc%2Fcron.d%2Fx%0D%0ASet-Cookie%3A%20a%3Db%0D%0A%22.wav"
    r = await jobs_client.post("/api/jobs", data=multipart(evil, audio),
                               headers={**agent, "Content-Type": "multipart/form-data; boundary=b0undary"})
    assert r.status == 201, await r.text()
    job = await r.json()
    assert "\r" not in job["filename"] and "\n" not in job["filename"] and "/" not in job["filename"]
    assert '"' not in job["filename"] and job["filename"].endswith(".wav")
    done = await finished(jobs_client, job["id"], agent)
    assert done["status"] == "done", done
    result = await jobs_client.get(f"/api/jobs/{job['id']}/result?format=txt", headers=agent)
    assert result.status == 200
    disposition = result.headers["Content-Disposition"]
    assert "Set-Cookie" not in result.headers and "\r" not in disposition and "/" not in disposition
    assert disposition.count('"') == 2
    # nothing was written outside the uploads folder
    assert not (web_config.data_path.parent / "etc").exists()


async def test_malformed_multipart_is_400_not_500(jobs_client: Client, tokens: dict[str, str]) -> None:
    agent = {"Authorization": f"Bearer {tokens['ann']}"}
    r = await jobs_client.post("/api/jobs", data=b"--x\r\n\r\nhello\r\n--x--\r\n",
                               headers={**agent, "Content-Type": "multipart/form-data"})
    assert r.status == 400 and "boundary" in (await r.json())["error"]
    r = await jobs_client.post("/api/jobs", data=b"garbage without any parts",
                               headers={**agent, "Content-Type": "multipart/form-data; boundary=zz"})
    assert r.status == 400


async def test_missing_asset_is_404_and_errors_carry_security_headers(client: Client) -> None:
    r = await client.get("/static/common.js")
    assert r.status == 404 and "error" in await r.json()
    for path, status in (("/static/common.js", 404), ("/api/calls", 401), ("/nope", 404), ("/api/kb/x.md", 401)):
        r = await client.get(path)
        assert r.status == status
        for name in HEADERS:
            assert name in r.headers, (path, name)
    r = await client.put("/api/session")
    assert r.status == 405 and all(name in r.headers for name in HEADERS)


async def test_no_server_paths_reach_viewers(client: Client, store: CallStore, tokens: dict[str, str],
                                             web_config: Config) -> None:
    viewer = {"Authorization": f"Bearer {tokens['vic']}"}
    upload = web_config.data_path / "uploads" / "3f2a.wav"
    call_id = store.add_call("transcription", str(upload), text="hello", meta={"channels": 1})
    home = str(web_config.data_path.parent)
    seen = []
    for path in ("/api/kb", f"/api/calls/{call_id}", "/api/calls", "/api/jobs"):
        r = await client.get(path, headers=viewer)
        assert r.status == 200, path
        seen.append(await r.text())
    assert not [s for s in seen if home in s], [s for s in seen if home in s]
    kb = json.loads(seen[0])
    assert kb["folder"] == "kb"
    assert json.loads(seen[1])["source"] == "3f2a.wav"


async def test_kb_names_with_a_trailing_newline_are_refused(client: Client, tokens: dict[str, str],
                                                            web_config: Config) -> None:
    agent = {"Authorization": f"Bearer {tokens['ann']}"}
    r = await client.put("/api/kb/prices.md%0A", json={"text": "# Prices\n\nCheap.\n"}, headers=agent)
    assert r.status == 400 and "document name" in (await r.json())["error"]
    assert sorted(p.name for p in Path(web_config.dialog.kb_dir).iterdir()) == ["hours.md"]
    r = await client.put("/api/kb/prices.md", json={"text": "# Prices\n\nCheap.\n"}, headers=agent)
    assert r.status == 201


@pytest.mark.parametrize(("name", "password", "why"), [
    ("ann", "short", "at least"),
    ("ann", "Password123!", "common"),
    ("ann", "qwertyuiop", "common"),
    ("ann", "correcthorsebatterystaple", "common"),
    ("annabelle", "annabelle2026", "user name"),
    ("ann", "aaaaaaaaaaaa", "repeated"),
    ("ann", "abababababab", "repeated"),
    ("ann", "1234567890123", "sequence"),
])
def test_password_policy(name: str, password: str, why: str) -> None:
    with pytest.raises(PasswordRejected, match=why):
        check_password(password, name)
    with pytest.raises(AuthError, match=why):
        Users(CallStore("sqlite://")).add(name, "agent", password)


def test_users_command_refuses_weak_passwords(data_home: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Password2024!\n"))
    assert main(["users", "add", "bob", "--password-stdin"]) == 2
    assert "common" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("bob-the-builder\n"))
    assert main(["users", "add", "bob", "--password-stdin"]) == 2
    assert "user name" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("violet-harbour-lamp\n"))
    assert main(["users", "add", "bob", "--password-stdin"]) == 0
