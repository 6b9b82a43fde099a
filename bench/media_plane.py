"""Media plane capacity: N concurrent RTP legs with echo on loopback, send jitter and loss per N.

Each pair is two `RtpSession`s negotiated with SDP offer/answer (PCMU): side A sends a 20 ms
tone frame every 20 ms and drains what comes back through its jitter buffer; side B takes each
20 ms frame out of its jitter buffer and sends it back. No models run. Send jitter is the
deviation of each packet's send time from its leg's 20 ms grid (t0 + k * 20 ms), over every
packet of both directions after a 1 s warm-up; like the pacer, a leg's grid restarts after a
stall of more than 3 frames (the stall itself is counted once, and in the stalls column).
Loss is packets sent minus packets received. The machine may be shared: the 1-minute load
average before each run is printed beside the numbers.

    .venv/bin/python bench/media_plane.py [--sizes 10,25,50,100,200] [--seconds 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402
from telephony.media import RtpSession  # noqa: E402
from telephony.sdp import answer, negotiated_from_answer, offer  # noqa: E402

FRAME_S = 0.02
WARMUP_S = 1.0


def cpu_times() -> tuple[float, float]:
    """(total, steal) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return float(sum(fields)), float(fields[7] if len(fields) > 7 else 0)


async def open_pair() -> tuple[RtpSession, RtpSession]:
    a, b = await RtpSession.open(), await RtpSession.open()
    o = offer("127.0.0.1", a.local_port, ["PCMU", "telephone-event"])
    ans, nb = answer(o, "127.0.0.1", b.local_port, ["PCMU"])
    a.start(negotiated_from_answer(o, ans))
    b.start(nb)
    return a, b


async def run_once(n: int, seconds: float) -> dict[str, float]:
    """One run of n pairs for `seconds`; returns jitter percentiles (ms), loss, late and CPU use."""
    loop = asyncio.get_running_loop()
    pairs = [await open_pair() for _ in range(n)]
    t = np.arange(160) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    deviations: list[float] = []
    stalls = [0]
    start = loop.time() + 0.2
    stop = start + seconds

    class Grid:
        """A leg's 20 ms send grid; like the pacer, it restarts after a stall longer than 3 frames."""

        def __init__(self) -> None:
            self.t0: float | None = None
            self.k = 0

        def sent(self, now: float) -> None:
            if self.t0 is None:
                self.t0 = now
            deviation = now - (self.t0 + self.k * FRAME_S)
            if now - start >= WARMUP_S:
                deviations.append(deviation)
            self.k += 1
            if deviation > 3 * FRAME_S:
                stalls[0] += 1
                self.t0, self.k = now, 1

    async def caller(a: RtpSession, phase: float) -> None:
        await asyncio.sleep(start + phase - loop.time())
        grid = Grid()
        while loop.time() < stop:
            await a.send(tone)
            grid.sent(loop.time())

    async def drain(a: RtpSession, phase: float) -> None:
        await asyncio.sleep(start + phase - loop.time())
        async for _ in a.frames():
            if loop.time() > stop + 0.2:
                return

    async def echo(b: RtpSession, phase: float) -> None:
        await asyncio.sleep(start + phase - loop.time())
        grid = Grid()
        async for frame in b.frames():
            if loop.time() > stop + 0.1:
                return
            if grid.t0 is None and not frame.any():
                continue  # nothing to echo until the caller's audio arrives
            await b.send(frame)
            grid.sent(loop.time())

    load = os.getloadavg()[0]
    cpu0, wall0 = time.process_time(), time.monotonic()
    total0, steal0 = cpu_times()
    # Real calls start at random moments, so their 20 ms grids have random phases; aligned grids would make
    # every leg wake in the same loop iteration and measure that batch instead.
    rng = random.Random(n)
    tasks = []
    for a, b in pairs:
        phase = rng.uniform(0, FRAME_S)
        tasks += [caller(a, phase), drain(a, rng.uniform(0, FRAME_S)), echo(b, rng.uniform(0, FRAME_S))]
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.3)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    total1, steal1 = cpu_times()
    sent = received = late = 0
    for a, b in pairs:
        for src, dst in ((a, b), (b, a)):
            sent += int(src.stats()["packets_sent"])
            received += int(dst.stats()["packets_received"])
            late += int(dst.stats()["late"])
        a.close()
        b.close()
    dev_ms = np.abs(np.array(deviations)) * 1000
    return {
        "p50_ms": float(np.percentile(dev_ms, 50)),
        "p99_ms": float(np.percentile(dev_ms, 99)),
        "max_ms": float(dev_ms.max()),
        "sent": float(sent),
        "lost": float(sent - received),
        "loss_pct": 100.0 * (sent - received) / max(sent, 1),
        "late": float(late),
        "stalls": float(stalls[0]),
        "load1_before": load,
        "cpu_pct": 100.0 * cpu,
        "steal_pct": 100.0 * (steal1 - steal0) / max(total1 - total0, 1.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,25,50,100,200", help="pair counts, comma separated")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {describe()}", flush=True)
    results: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    # Sizes alternate within each round so that slow drifts of the VM hit every size alike.
    for r in range(args.runs):
        for n in sizes:
            gc.collect()
            res = asyncio.run(run_once(n, args.seconds))
            results[n].append(res)
            print(f"run {r + 1} N={n}: " + ", ".join(f"{k}={v:.2f}" for k, v in res.items()), flush=True)
    print()
    print("| pairs (legs) | send jitter p50 ms | p99 ms | max ms | stalls > 60 ms | packets | lost | loss % | late "
          "| CPU % | steal % | load before |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = 0
    for n in sizes:
        med: dict[str, Any] = {k: statistics.median(r[k] for r in results[n]) for k in results[n][0]}
        print(f"| {n} ({2 * n}) | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} | {med['max_ms']:.1f} "
              f"| {med['stalls']:.0f} | {med['sent']:.0f} | {med['lost']:.0f} | {med['loss_pct']:.3f} "
              f"| {med['late']:.0f} | {med['cpu_pct']:.0f} | {med['steal_pct']:.1f} | {med['load1_before']:.2f} |")
        if med["p99_ms"] < 5 and all(r["lost"] == 0 for r in results[n]):
            best = max(best, n)
    print()
    print(f"largest N with p99 send jitter < 5 ms and zero loss in every run: {best or 'none'}")


if __name__ == "__main__":
    main()
