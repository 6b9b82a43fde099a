"""Calls held and answer latency for N concurrent SIP calls through kamailio into two serve workers.

Starts the whole cluster as ``voice-agent cluster up`` does (a temp PostgreSQL, the workers with the
real models, kamailio with deploy/kamailio.cfg), then sipp places N calls at once through kamailio,
each streaming the project's multi-turn caller fixture (its first question) as mu-law RTP and hanging
up after --hold-s (or when the agent hangs up first). Reported:

- calls held: calls sipp completed / N, how many each worker took (kamailio's dispatch log), and
  how many ended in the store with a turn answered;
- SIP answer time (INVITE to 200 OK through kamailio, sipp's response-time trace);
- answer latency: end of the caller's question to the agent's first content word, measured on
  each call's stereo recording with ../shared/peers/answer_latency.py (as bench/latency.py's
  RESULTS use), and the agent's first sound (voice_to_voice_ms stored with each turn).

    .venv/bin/python bench/cluster_load.py --calls 2,4 [--workers 2] [--hold-s 40]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audio_fixtures.make_fixtures import DEFAULT_OUT, ensure_fixtures  # noqa: E402
from bench.machine import describe, free_port, steal, steal_percent  # noqa: E402
from voice_agent.cluster import Cluster  # noqa: E402

SCENARIO = ROOT / "tests" / "e2e" / "scenarios" / "uac_cluster_caller.xml"
ANSWER_LATENCY = ROOT.parent / "shared" / "peers" / "answer_latency.py"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def caller_ul(folder: Path) -> None:
    from asr.audio import load_audio, resample
    from telephony.g711 import encode_ulaw

    ensure_fixtures(DEFAULT_OUT)
    audio = np.asarray(load_audio(DEFAULT_OUT / "caller_multiturn.wav"))
    audio = (audio[0] if audio.ndim == 2 else audio)[: 16000 * 14]
    (folder / "caller.ul").write_bytes(encode_ulaw(resample(audio, 16000, 8000)))


def run_load(cluster: Cluster, n: int, hold_s: float, work: Path) -> dict[str, Any]:
    from voice_agent.store import CallStore

    run = work / f"n{n}"
    run.mkdir()
    (run / "caller.ul").write_bytes((work / "caller.ul").read_bytes())
    script = run / SCENARIO.name
    script.write_text(SCENARIO.read_text().replace("HOLD_MS", str(int(hold_s * 1000))))
    log = cluster.kamailio.log
    assert log is not None
    mark = len(log.lines)
    store = CallStore(cluster.store_url)
    before = {c.id for c in store.list_calls(limit=10000, kind="phone")}
    t0 = time.time()
    proc = subprocess.run(
        ["sipp", "-sf", str(script), "-m", str(n), "-l", str(n), "-r", str(n), "-i", "127.0.0.1",
         "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", "0", "-nostdin", "-timeout", f"{int(hold_s + 120)}s",
         "-trace_rtt", "-rtt_freq", "1", "-trace_err", "-error_file", str(run / "sipp.err"),
         cluster.kamailio.address], capture_output=True, text=True, cwd=run, timeout=hold_s + 200, check=False)
    wall = time.time() - t0
    ok = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", proc.stdout)
    failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", proc.stdout)
    setup_ms: list[float] = []
    for f in run.glob("*_rtt.csv"):
        with f.open() as fh:
            for row in csv.reader(fh, delimiter=";"):
                if len(row) >= 2 and row[1].replace(".", "", 1).isdigit():  # Date_ms;response_time_ms;rtd_no
                    setup_ms.append(float(row[1]))
    dispatch = [ln for ln in log.lines[mark:] if "KAM-DISPATCH" in ln]
    per_worker = {w.name: sum(w.sip_uri in ln for ln in dispatch) for w in cluster.workers}
    # The workers store each call when it ends; wait for all of them (no fixed sleep).
    deadline = time.monotonic() + 120
    while True:
        calls = [c for c in store.list_calls(limit=10000, kind="phone") if c.id not in before]
        if (len(calls) >= n and all(c.outcome != "active" for c in calls)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    first_sound: list[float] = []
    answered = 0
    answers: list[float] = []
    for c in calls:
        turns = store.turns(c.id)
        answered += any(t["agent_text"] for t in turns)
        first_sound += [float(t["voice_to_voice_ms"]) for t in turns if t.get("voice_to_voice_ms") is not None]
        recording = c.meta.get("recording")
        if recording and Path(recording).is_file() and ANSWER_LATENCY.exists():
            out = subprocess.run([sys.executable, str(ANSWER_LATENCY), recording], capture_output=True, text=True,
                                 timeout=300, check=False)
            lines = out.stdout.strip().splitlines()
            if out.returncode == 0 and lines:
                for turn in json.loads(lines[-1]).get("turns", []):
                    value = turn.get("answer_ms")
                    if value is not None:
                        answers.append(float(value))
    store.close()
    return {"calls": n, "held": int(ok.group(1)) if ok else 0, "failed": int(failed.group(1)) if failed else n,
            "per_worker": per_worker, "stored": len(calls), "answered": answered,
            "sip_answer_ms_p50": pct(setup_ms, 0.5), "sip_answer_ms_p95": pct(setup_ms, 0.95),
            "answer_ms_p50": pct(answers, 0.5), "answer_ms_p95": pct(answers, 0.95), "answer_turns": len(answers),
            "first_sound_ms_p50": pct(first_sound, 0.5), "first_sound_ms_p95": pct(first_sound, 0.95),
            "wall_s": round(wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="2,4", help="concurrent calls per run, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hold-s", type=float, default=40.0, help="each caller hangs up this long after the answer")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voice-agent-cluster-load-"))
    caller_ul(work)
    cache = ROOT / "var" / "test-home" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(args.workers, work / "cluster", cache_dir=cache)
    print(f"machine: {describe()}", file=sys.stderr)
    print(f"starting PostgreSQL, {args.workers} workers and kamailio ...", file=sys.stderr)
    cluster.start()
    rows = []
    try:
        for n in [int(x) for x in args.calls.split(",") if x.strip()]:
            s0 = steal()
            row = run_load(cluster, n, args.hold_s, work)
            row["steal_pct"] = round(steal_percent(s0), 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        cluster.stop()
    print("| calls | held | per worker | answered | SIP answer p50/p95 ms | answer p50/p95 ms (turns) "
          "| first sound p50/p95 ms | steal % |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['calls']} | {r['held']}/{r['calls']} | {'/'.join(str(v) for v in r['per_worker'].values())} "
              f"| {r['answered']} | {r['sip_answer_ms_p50']}/{r['sip_answer_ms_p95']} "
              f"| {r['answer_ms_p50']}/{r['answer_ms_p95']} ({r['answer_turns']}) "
              f"| {r['first_sound_ms_p50']}/{r['first_sound_ms_p95']} | {r['steal_pct']} |")
    return 0 if all(r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
