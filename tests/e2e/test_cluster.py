"""Two real `voice-agent serve` workers behind kamailio (deploy/kamailio.cfg) on one PostgreSQL store.

sipp callers stream the project's caller fixture as mu-law RTP through kamailio; the dispatcher
spreads the calls by call load, every call lands in the one store, a worker killed with -9
mid-call leaves its finished turns in PostgreSQL and its caller a clean end, and once the
OPTIONS probe has taken it out new calls go to the other worker.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from asr.audio import load_audio, resample
from tests.conftest import need
from voice_agent.cluster import Cluster, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).parent / "scenarios" / "uac_cluster_caller.xml"
BASIC = ROOT / "tests" / "telephony" / "sip" / "scenarios" / "uac_basic.xml"
Gen = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def cluster(postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    need(shutil.which("kamailio") is not None, "kamailio is not installed")
    need(shutil.which("sipp") is not None, "sipp (sip-tester) is not installed")
    cache = ROOT / "var" / "test-home" / "cache"  # model conversions shared with the other e2e runs
    cache.mkdir(parents=True, exist_ok=True)
    # These tests are about routing, forwarding and failover on a shared 2-core machine, not about how many
    # calls it holds: admission control (tested in test_sip_calls.py) would turn callers away under that load.
    c = Cluster(2, tmp_path_factory.mktemp("cluster"), store_url=postgres.new_database(), cache_dir=cache,
                ping_interval=1, worker_env={"VOICE_AGENT_ADMISSION__ENABLED": "false"})
    c.start(timeout=900)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def store(cluster: Cluster) -> Iterator[Any]:
    from voice_agent.store import CallStore

    s = CallStore(cluster.store_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def caller_dir(generated: Gen, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sipp's working dir with caller.ul: the multi-turn caller's first 14 s (greeting, then a question)."""
    from telephony.g711 import encode_ulaw

    folder = tmp_path_factory.mktemp("callers")
    audio = np.asarray(load_audio(generated[0] / "caller_multiturn.wav"))
    audio = (audio[0] if audio.ndim == 2 else audio)[: 16000 * 14]
    (folder / "caller.ul").write_bytes(encode_ulaw(resample(audio, 16000, 8000)))
    return folder


def sipp(target: str, cwd: Path, calls: int, *, scenario: Path = SCENARIO, hold_ms: int = 16000,
         timeout: int = 120) -> subprocess.Popen[str]:
    """sipp placing `calls` calls at once (each hangs up hold_ms after the answer); a running process."""
    script = cwd / scenario.name
    script.write_text(scenario.read_text().replace("HOLD_MS", str(hold_ms)))
    return subprocess.Popen(
        ["sipp", "-sf", str(script), "-m", str(calls), "-l", str(calls), "-r", "20", "-i", "127.0.0.1",
         "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", "0", "-nostdin",
         "-timeout", f"{timeout}s", "-timeout_error", "-trace_err", "-error_file", str(cwd / "sipp.err"), target],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)


def finish(proc: subprocess.Popen[str], cwd: Path, timeout: int = 180) -> None:
    out = proc.communicate(timeout=timeout)[0]
    errors = (cwd / "sipp.err").read_text(errors="replace") if (cwd / "sipp.err").exists() else ""
    assert proc.returncode == 0, out[-3000:] + errors[-3000:]


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def phone_calls(store: Any) -> dict[str, Any]:
    return {c.id: c for c in store.list_calls(limit=500, kind="phone")}


def test_calls_spread_over_both_workers_into_one_store(cluster: Cluster, store: Any, caller_dir: Path) -> None:
    before = set(phone_calls(store))
    dispatched = cluster.kamailio.log.count("KAM-DISPATCH") if cluster.kamailio.log else 0
    finish(sipp(cluster.kamailio.address, caller_dir, 4), caller_dir)
    # Call load: the four concurrent calls went two and two to the workers.
    log = cluster.kamailio.log
    assert log is not None
    lines = [ln for ln in log.lines if "KAM-DISPATCH" in ln][dispatched:]
    assert len(lines) == 4, lines
    for w in cluster.workers:
        assert sum(w.sip_uri in ln for ln in lines) == 2, lines
    # Every call is in the one PostgreSQL store, finished (saved by its worker), with its turns.
    new = wait_until(lambda: (lambda calls: calls if len(calls) == 4 and all(c.outcome != "active" for c in
                                                                               calls.values()) else None)(
        {k: v for k, v in phone_calls(store).items() if k not in before}), 60, "four finished calls in the store")
    # Each was answered by its worker's engine (how far the dialog got depends on this machine's load).
    for cid in new:
        assert any(e["type"] == "greeting" for e in store.events(cid)), (cid, store.events(cid))
    assert not store.active_calls()  # nothing left active


async def live_forwarding(owner_url: str, other_url: str, store: Any) -> None:
    """A browser call on one worker is listed and hung up through the other worker's API."""
    import aiohttp

    from telephony.webrtc import allow_loopback_candidates
    from tests.web.rtc_client import RtcPeer
    from voice_agent.auth import Users
    from voice_agent.web.forward import CLUSTER_HEADER

    allow_loopback_candidates(True)
    name, password = f"ops-{time.monotonic_ns()}", "a long enough cluster password"
    Users(store).add(name, "agent", password)
    peer = RtcPeer(np.zeros(48000 * 60, np.float32))  # a silent caller: the call stays up
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies from an IP address (127.0.0.1)
    async with aiohttp.ClientSession() as caller, aiohttp.ClientSession(cookie_jar=jar) as console:
        body = await peer.connect(cast(Any, caller), owner_url + "/api/webrtc/offer")
        call_id = body["call_id"]
        try:
            await peer.wait_for("greeting", timeout=60)
            r = await console.post(other_url + "/api/session", json={"username": name, "password": password})
            csrf = (await r.json())["csrf"]
            listed: dict[str, Any] = {}
            for _ in range(100):  # the owner records the call in the store as it starts
                r = await console.get(other_url + "/api/live")
                listed = {c["id"]: c for c in (await r.json())["calls"]}
                if call_id in listed:
                    break
                await asyncio.sleep(0.1)
            assert listed.get(call_id, {}).get("worker") == owner_url, listed
            r = await console.get(other_url + f"/api/live/{call_id}")  # captions come from the owner
            assert r.status == 200 and (await r.json())["id"] == call_id
            # A forged peer header is refused; no credentials is refused before anything is forwarded.
            r = await console.post(other_url + f"/api/live/{call_id}/hangup",
                                   headers={"X-CSRF-Token": csrf, CLUSTER_HEADER: "not-the-secret"})
            assert r.status == 403
            async with aiohttp.ClientSession() as stranger:
                r = await stranger.post(other_url + f"/api/live/{call_id}/hangup")
                assert r.status == 401
            r = await console.post(other_url + f"/api/live/{call_id}/hangup", headers={"X-CSRF-Token": csrf})
            assert r.status == 200, await r.text()
            assert (await r.json())["status"] == "ending"
            await peer.wait_for("hangup", timeout=20)  # the owner hung the caller up
        finally:
            await peer.close()
    audit = Users(store).audit_rows(100, call_id)
    assert any(a["action"] == "hangup" and a["user"] == name for a in audit), audit
    gone = wait_until(lambda: all(a["id"] != call_id for a in store.active_calls()), 30, "the call to end")
    assert gone


def test_live_actions_reach_the_worker_holding_the_call(cluster: Cluster, store: Any) -> None:
    first, second = cluster.workers
    asyncio.run(live_forwarding(first.url, second.url, store))


HANGS_UP = ROOT / "tests" / "telephony" / "sip" / "scenarios" / "uac_agent_hangs_up.xml"


async def hang_up_through(console_url: str, call_id: str, store: Any) -> None:
    """Sign in to one worker's console and hang up a live call through it."""
    import aiohttp

    from voice_agent.auth import Users

    name, password = f"ops-{time.monotonic_ns()}", "a long enough cluster password"
    Users(store).add(name, "agent", password)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as console:
        r = await console.post(console_url + "/api/session", json={"username": name, "password": password})
        csrf = (await r.json())["csrf"]
        r = await console.get(console_url + "/api/live")
        listed = {c["id"]: c for c in (await r.json())["calls"]}
        assert call_id in listed, listed  # the other worker's phone call is listed here
        r = await console.post(console_url + f"/api/live/{call_id}/hangup", headers={"X-CSRF-Token": csrf})
        assert r.status == 200, await r.text()
    audit = Users(store).audit_rows(100, call_id)
    assert any(a["action"] == "hangup" and a["user"] == name for a in audit), audit


def test_a_phone_call_is_hung_up_through_the_other_workers_console(
        cluster: Cluster, store: Any, caller_dir: Path) -> None:
    started = time.time() - 1
    proc = sipp(cluster.kamailio.address, caller_dir, 1, scenario=HANGS_UP, timeout=90)
    try:
        row = wait_until(lambda: next((a for a in store.active_calls("phone") if a["started_at"] >= started), None),
                         60, "the phone call stored as active")
        owner = next(w for w in cluster.workers if w.sip_uri == row["worker"])
        other = next(w for w in cluster.workers if w is not owner)
        assert row["console"] == owner.url  # where its live actions go
        asyncio.run(hang_up_through(other.url, row["id"], store))
        finish(proc, caller_dir, timeout=60)  # the caller got the owner's BYE (the scenario waits for it)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(lambda: all(a["id"] != row["id"] for a in store.active_calls()), 30, "the call to end")


def test_kill_9_mid_call_keeps_finished_turns_and_new_calls_go_to_the_survivor(
        cluster: Cluster, store: Any, caller_dir: Path) -> None:
    victim, survivor = cluster.workers
    log = cluster.kamailio.log
    assert log is not None
    before = set(phone_calls(store))
    # Two callers: the call load sends one to each worker. They hold 75 s, or until their agent hangs up
    # on the silence after the caller's question (about 40 s after the answer).
    proc = sipp(cluster.kamailio.address, caller_dir, 2, hold_ms=75000)
    try:
        def victim_call_with_a_turn() -> str | None:
            for a in store.active_calls("phone"):
                if a["worker"] == victim.sip_uri and store.turns(a["id"]):
                    return str(a["id"])
            return None

        cid = wait_until(victim_call_with_a_turn, 70, "a finished turn of the victim's call in PostgreSQL")
        mark = len(log.lines)
        victim.kill()  # kill -9: no BYE, no final save
        assert victim.log is not None
        # Turns the victim began before it died (a caller_turn each, less fragments merged into the next).
        vlog = "\n".join(victim.log.lines)
        began = vlog.count(f'"call_id": "{cid}", "event": "caller_turn"') - vlog.count(
            f'"call_id": "{cid}", "event": "turn_merged"')
        # Both callers end cleanly: the victim's caller gets kamailio's 408/503 for its BYE, the survivor's
        # call ends with a 200 for whoever hangs up.
        finish(proc, caller_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
    stored = store.turns(cid)
    assert stored and stored[0]["caller_text"].strip() and stored[0]["agent_text"].strip()
    assert len(stored) >= began - 1, (stored, began)  # only the turn in progress may be missing
    # The survivor's call finished normally in the same store.
    others = [c for k, c in phone_calls(store).items() if k not in before and k != cid]
    assert others and all(c.outcome != "active" for c in others)
    # The OPTIONS probe takes the dead worker out; then new calls go to the survivor only.
    cluster.kamailio.wait_down(victim.sip_uri, timeout=30, start=mark)
    mark = len(log.lines)
    finish(sipp(cluster.kamailio.address, caller_dir, 2, scenario=BASIC), caller_dir)
    lines = [ln for ln in log.lines[mark:] if "KAM-DISPATCH" in ln]
    assert len(lines) == 2 and all(survivor.sip_uri in ln for ln in lines), lines
