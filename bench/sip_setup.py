"""SIP call setup rate of `voice-agent serve` (echo sessions, no models) with sipp as the load.

Starts `voice-agent serve --echo` on a free loopback port, then for each offered rate runs
sipp's basic call (INVITE, 100/180/200, ACK, 0.5 s of call, BYE) for a fixed number of calls,
several times, and prints the median achieved setup rate (successful calls per second of
offered load), failures, and sipp's INVITE->200 response time. The UA uses real RTP sockets
per call (RtpSession), so each call costs what an answered phone call costs minus the models.

    .venv/bin/python bench/sip_setup.py [--rates 25,50,100,200] [--calls 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import free_port, steal  # noqa: E402

SCENARIO = ROOT / "tests" / "telephony" / "sip" / "scenarios" / "uac_basic.xml"


def start_server(port: int, home: Path) -> subprocess.Popen[str]:
    """`voice-agent serve --echo`, returned once it accepts calls."""
    env = dict(os.environ, VOICE_AGENT_HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_agent", "--log-level", "WARNING", "--set", "sip.max_calls=2000",
         "--set", "sip.shutdown_timeout_s=2", "serve", "--echo", "--sip-listen", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(home.parent / "serve.log").open("w"), text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = subprocess.run(["sipp", "-sn", "uac", "-m", "1", "-i", "127.0.0.1", "-p", str(free_port()),
                                "-nostdin", "-timeout", "5s", "-timeout_error", "-d", "0",
                                f"127.0.0.1:{port}"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return proc
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"serve did not answer: {(home.parent / 'serve.log').read_text()[-2000:]}")


def run_load(port: int, rate: float, calls: int, workdir: Path) -> dict[str, float]:
    """One sipp run: achieved calls/s, failures, mean INVITE->200 time."""
    stat = workdir / f"stat-{rate}-{time.monotonic_ns()}.csv"
    started = time.monotonic()
    proc = subprocess.run(
        ["sipp", "-sf", str(SCENARIO), "-m", str(calls), "-r", str(rate), "-l", "2000", "-i", "127.0.0.1",
         "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", "0", "-nostdin", "-timeout", "120s",
         "-timeout_error", "-trace_stat", "-stf", str(stat), "-fd", "1", f"127.0.0.1:{port}"],
        capture_output=True, text=True, cwd=workdir, check=False)
    elapsed = time.monotonic() - started
    rows = list(csv.reader(stat.open(), delimiter=";")) if stat.exists() else []
    ok = failed = 0
    rtt_ms = float("nan")
    if len(rows) >= 2:
        head, last = rows[0], rows[-1]
        col = {name: i for i, name in enumerate(head)}
        ok = int(last[col["SuccessfulCall(C)"]])
        failed = int(last[col["FailedCall(C)"]])
        rtt = last[col["ResponseTime1(C)"]]  # HH:MM:SS:micros
        h, m, s, us = (int(x) for x in rtt.split(":"))
        rtt_ms = ((h * 60 + m) * 60 + s) * 1000 + us / 1000
    # sipp spends the last call's 0.5 s plus BYE after the last INVITE: setup rate is over the sending span.
    span = max(1e-6, elapsed - 0.5)
    return {"ok": ok, "failed": failed, "rate": ok / span, "rtt_ms": rtt_ms, "rc": proc.returncode}


def main() -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="25,50,100,200", help="offered call rates (calls/s)")
    ap.add_argument("--calls", type=int, default=300, help="calls per run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("sipp") is None:
        print("sipp (Debian package sip-tester) is required", file=sys.stderr)
        return 2
    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        server = start_server(port, work / "home")
        s0 = steal()
        rows = []
        try:
            for rate in rates:
                runs = [run_load(port, rate, args.calls, work) for _ in range(args.repeats)]
                rows.append((rate, runs))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        s1 = steal()
    st = 100 * (s1[0] - s0[0]) / max(1, s1[1] - s0[1])
    print(f"SIP call setup, `serve --echo`, {args.calls} calls x {args.repeats} runs per rate, CPU steal {st:.1f}%")
    print("| offered calls/s | achieved calls/s (median) | failed calls (median) | INVITE->200 ms (median) |")
    print("|---:|---:|---:|---:|")
    for rate, runs in rows:
        print(f"| {rate:g} | {statistics.median(r['rate'] for r in runs):.1f} "
              f"| {statistics.median(r['failed'] for r in runs):g} "
              f"| {statistics.median(r['rtt_ms'] for r in runs):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
