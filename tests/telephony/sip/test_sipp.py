"""The user agent against sipp, a real SIP peer, on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telephony.media import RtpSession
from telephony.sip.registration import Registration
from telephony.sip.ua import Call, Trunk, TrunkPolicy
from tests.conftest import SHARED, need
from tests.telephony.sip.conftest import SIPP, Harness, hang_up_after, sipp, sipp_server

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _sipp_present() -> None:
    need(SIPP is not None, "sipp (Debian package sip-tester) is not installed")


async def test_basic_call_caller_hangs_up(make_ua, tmp_path: Path) -> None:
    h: Harness = await make_ua()
    res = await sipp("uac_basic", h.target, calls=3, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert len(h.calls) == 3
    assert all(c.end_reason == "remote-bye" for c in h.calls)
    assert all(m.closed for m in h.media) and len(h.media) == 3
    assert h.ua.calls == {}  # no dialog left behind


async def test_basic_call_over_tcp(make_ua, tmp_path: Path) -> None:
    h: Harness = await make_ua()
    res = await sipp("uac_basic", h.target, cwd=tmp_path, transport="t1")
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert len(h.calls) == 1 and h.calls[0].transport.name == "TCP"
    assert h.calls[0].end_reason == "remote-bye"


async def test_agent_hangs_up(make_ua, tmp_path: Path) -> None:
    h: Harness = await make_ua(hang_up_after(0.3))
    res = await sipp("uac_agent_hangs_up", h.target, calls=2, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert [c.end_reason for c in h.calls] == ["local-bye", "local-bye"]
    assert h.ua.calls == {}


async def test_cancel_before_answer_gets_487(make_ua, tmp_path: Path) -> None:
    h: Harness = await make_ua(answer_delay=5.0)
    res = await sipp("uac_cancel", h.target, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert h.calls == []  # never answered, so the handler never ran
    assert h.media and h.media[0].closed
    await asyncio.sleep(0.05)
    assert h.ua.calls == {}


async def test_options_keepalive(make_ua, tmp_path: Path) -> None:
    h: Harness = await make_ua()
    res = await sipp("uac_options", h.target, calls=2, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors


async def test_stranger_gets_403(make_ua, tmp_path: Path) -> None:
    policy = TrunkPolicy([Trunk(name="carrier", allow_ips=["192.0.2.0/24"])])
    h: Harness = await make_ua(policy=policy)
    res = await sipp("uac_forbidden", h.target, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert h.ua.stats["rejected"] == 1 and h.media == []


async def test_unsupported_codec_gets_488(make_ua, tmp_path: Path) -> None:
    h: Harness = await make_ua()
    res = await sipp("uac_bad_codec", h.target, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert h.calls == [] and h.ua.calls == {}
    assert all(m.closed for m in h.media)


async def test_busy_when_at_capacity(make_ua, tmp_path: Path) -> None:
    h: Harness = await make_ua(hang_up_after(1.5), max_calls=1)
    first = asyncio.ensure_future(sipp("uac_agent_hangs_up", h.target, cwd=tmp_path))
    for _ in range(100):
        if h.calls:
            break
        await asyncio.sleep(0.05)
    res = await sipp("uac_busy", h.target, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    done = await first
    assert done.returncode == 0, done.output[-2000:] + done.errors
    assert h.ua.stats["rejected"] == 1 and len(h.calls) == 1


async def test_pcap_audio_reaches_the_session(make_ua, tmp_path: Path) -> None:
    need((SHARED / "g711a.pcap").exists(), "shared fixture g711a.pcap is absent")
    (tmp_path / "g711a.pcap").symlink_to(SHARED / "g711a.pcap")
    heard: list[float] = []

    def handler(h: Harness):
        async def run(call: Call) -> None:
            h.calls.append(call)
            rtp = call.media
            assert isinstance(rtp, RtpSession)
            async for frame in rtp.frames():
                if call.state == "ended":
                    break
                heard.append(float((frame ** 2).mean()))
                await rtp.send(frame)  # echo
        return run

    async def media(host: str) -> RtpSession:
        return await RtpSession.open(host=host)

    h: Harness = await make_ua(handler, media=media)
    res = await sipp("uac_pcap", h.target, cwd=tmp_path, timeout=40)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert h.calls[0].negotiated.codec.name.upper() == "PCMA"
    voiced = sum(1 for e in heard if e > 1e-4)
    # The capture holds 7 s of speech; at least most of its 20 ms frames must arrive as audio.
    assert voiced > 150, (voiced, len(heard))


async def test_refer_accepted_by_the_caller_side(make_ua, tmp_path: Path) -> None:
    results = []

    def handler(h: Harness):
        async def run(call: Call) -> None:
            h.calls.append(call)
            results.append(await call.refer("sip:humans@127.0.0.1:5999", timeout=5))
            await call.hangup("transferred")
        return run

    h: Harness = await make_ua(handler)
    res = await sipp("uac_refer_accept", h.target, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert results and results[0].ok and results[0].status == 200


async def test_refer_refused_is_reported(make_ua, tmp_path: Path) -> None:
    results = []

    def handler(h: Harness):
        async def run(call: Call) -> None:
            results.append(await call.refer("sip:humans@127.0.0.1:5999", timeout=5))
            await call.hangup()
        return run

    h: Harness = await make_ua(handler)
    res = await sipp("uac_refer_refuse", h.target, cwd=tmp_path)
    assert res.returncode == 0, res.output[-2000:] + res.errors
    assert results and not results[0].ok and results[0].status == 405


async def test_outbound_call_to_a_human_uas(make_ua, tmp_path: Path) -> None:
    proc, port = await sipp_server("uas_human", cwd=tmp_path)
    h: Harness = await make_ua()
    call = await h.ua.invite(f"sip:humans@127.0.0.1:{port}", timeout=10)
    assert call.state == "confirmed" and call.negotiated.codec.name == "PCMU"
    await asyncio.wait_for(call.ended.wait(), 10)  # the human hangs up
    assert call.end_reason == "remote-bye"
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, out.decode()[-2000:]


async def test_register_with_digest_and_refresh(make_ua, tmp_path: Path) -> None:
    proc, port = await sipp_server("uas_register_auth", cwd=tmp_path)
    h: Harness = await make_ua()
    reg = Registration(h.ua, Trunk(name="t", host=f"127.0.0.1:{port}", username="alice", password="s3cret",
                                   register=True, expires=2))
    reg.start()
    await asyncio.wait_for(reg.registered.wait(), 5)
    assert reg.expires == 2 and reg.last_status == 200
    seq = reg.seq
    out, _ = await asyncio.wait_for(proc.communicate(), 10)  # the second round is our refresh
    assert proc.returncode == 0, out.decode()[-2000:]
    assert reg.seq > seq and reg.last_status == 200
    reg._task.cancel() if reg._task else None


async def test_refer_to_a_uas_that_accepts(make_ua, tmp_path: Path) -> None:
    proc, port = await sipp_server("uas_refer_accept", cwd=tmp_path)
    h: Harness = await make_ua()
    call = await h.ua.invite(f"sip:human@127.0.0.1:{port}", timeout=10)
    result = await call.refer("sip:humans@127.0.0.1:5999", timeout=5)
    assert result.ok and result.status == 200
    await call.hangup("transferred")
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, out.decode()[-2000:]


async def test_agent_bye_follows_the_route_set_through_kamailio(make_ua, tmp_path: Path) -> None:
    import shutil

    from tests.telephony.sip.conftest import SCENARIOS, free_port

    need(shutil.which("kamailio") is not None, "kamailio is not installed")

    h: Harness = await make_ua(hang_up_after(0.3))
    kam_port = free_port()
    cfg = (SCENARIOS / "kamailio.cfg").read_text().replace("KAM_PORT", str(kam_port)).replace(
        "AGENT_PORT", str(h.ua.port))
    (tmp_path / "kamailio.cfg").write_text(cfg)
    kam = await asyncio.create_subprocess_exec(
        "kamailio", "-f", str(tmp_path / "kamailio.cfg"), "-DD", "-E", "-Y", str(tmp_path), "-P",
        str(tmp_path / "kamailio.pid"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await asyncio.sleep(1.0)
        res = await sipp("uac_agent_hangs_up", f"127.0.0.1:{kam_port}", cwd=tmp_path)
        assert res.returncode == 0, res.output[-2000:] + res.errors
        call = h.calls[0]
        assert call.dialog is not None and [r.uri.port for r in call.dialog.route_set] == [kam_port]
    finally:
        kam.terminate()
        out, _ = await asyncio.wait_for(kam.communicate(), 10)
    lines = [ln for ln in out.decode(errors="replace").splitlines() if "KAM-" in ln]
    # Our BYE reached kamailio carrying its Record-Route as a Route, and kamailio relayed it to sipp.
    assert any("KAM-REQ BYE" in ln and f"127.0.0.1:{kam_port};lr" in ln and f"src=127.0.0.1:{h.ua.port}" in ln
               for ln in lines), "\n".join(lines)
    assert any("KAM-LOOSE BYE" in ln for ln in lines), "\n".join(lines)
