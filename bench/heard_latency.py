"""Latency as the caller hears it, ours and the Pipecat peer's, from the same caller in the same run.

Each repeat plays the project's multi-turn caller fixture in real time through ``voice-agent call``
(the real models; a time-aligned stereo recording: caller left, agent right) and, when the peer's
virtualenv is there, through the same local models inside Pipecat 1.14
(``../shared/peers/pipecat/run_call.py``). Both recordings are measured from the outside with the
shared tools: ``v2v.py`` (end of each caller turn to the first agent sound) and ``answer_latency.py``
(to the first word and to the first *content* word: "okay", "sure", "right"... skipped).

Prints one table (median over repeats of each run's p50/p95), the Pipecat ratio from this run, and how
far our report's own per-turn figures are from the recording.

    .venv/bin/python bench/heard_latency.py [--repeats 3] [--peer-venv ../pipecat-venv] [--no-peer]
        [--caller FILE] [--json out.json]

Install the peer once as ../shared/peers/README.md says (its own virtualenv, never the project's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audio_fixtures.make_fixtures import DEFAULT_OUT, ensure_fixtures  # noqa: E402
from bench.machine import describe, steal, steal_percent  # noqa: E402

PEERS = ROOT.parent / "shared" / "peers"


def measure(recording: Path) -> dict[str, Any]:
    """v2v.py and answer_latency.py on one stereo recording (caller left, agent right)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    v2v = subprocess.run([sys.executable, str(PEERS / "v2v.py"), "--quiet", str(recording)],
                         capture_output=True, text=True, env=env, check=False)
    ans = subprocess.run([sys.executable, str(PEERS / "answer_latency.py"), str(recording)],
                         capture_output=True, text=True, env=env, check=False)
    if v2v.returncode or ans.returncode:
        raise SystemExit(f"measuring {recording} failed:\n{v2v.stderr[-1500:]}\n{ans.stderr[-1500:]}")
    sound = json.loads(v2v.stdout.strip().splitlines()[-1])
    words = json.loads(ans.stdout.strip().splitlines()[-1])
    return {"sound": sound, "words": words}


def ours(caller: Path, out: Path) -> tuple[Path, dict[str, Any], float]:
    """One real-time call through `voice-agent call`; (recording, report, wall seconds)."""
    rec, rep = out / "ours.wav", out / "ours.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VOICE_AGENT_HOME=str(out / "home"))
    cache = ROOT / "var" / "test-home" / "cache"  # converted models are shared with the tests' runs
    if cache.is_dir():
        (out / "home").mkdir(exist_ok=True)
        (out / "home" / "cache").symlink_to(cache, target_is_directory=True)
    wall = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "voice_agent", "--log-level", "WARNING", "call", "--caller",
                           str(caller), "--record", str(rec), "--report", str(rep), "--no-store"],
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"voice-agent call failed:\n{proc.stderr[-2000:]}")
    return rec, json.loads(rep.read_text()), time.monotonic() - wall


def peer(caller: Path, out: Path, venv: Path) -> tuple[Path, float]:
    """One real-time call through the Pipecat peer; (recording, wall seconds)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    wall = time.monotonic()
    proc = subprocess.run([str(venv / "bin" / "python"), str(PEERS / "pipecat" / "run_call.py"), "--caller",
                           str(caller), "--out", str(out / "pipecat")],
                          capture_output=True, text=True, env=env, check=False)
    rec = out / "pipecat" / "call_stereo.wav"
    if proc.returncode or not rec.exists():
        raise SystemExit(f"the Pipecat peer failed:\n{proc.stdout[-1000:]}\n{proc.stderr[-2000:]}")
    return rec, time.monotonic() - wall


def report_vs_recording(report: dict[str, Any], heard: dict[str, Any]) -> list[float]:
    """Per turn: our report's first agent audio minus the first sound measured on the recording (ms)."""
    diffs: list[float] = []
    sound_turns = heard["sound"].get("turns", [])
    for turn in report.get("turns", []):
        start, first = turn.get("end_of_speech"), turn.get("first_audio_out")
        if start is None or first is None:
            continue
        # the recording's turn whose caller speech ends nearest to the report's end of speech
        near = min(sound_turns, key=lambda t: abs(float(t.get("caller_end_s", 1e9)) - start), default=None)
        if near is None or near.get("agent_onset_s") is None or abs(float(near["caller_end_s"]) - start) > 1.0:
            continue
        diffs.append((first - float(near["agent_onset_s"])) * 1000)
    return diffs


def summary(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median over runs of each run's figures."""
    def med(where: str, field: str) -> float | None:
        vals = [r[where][field] for r in runs if r[where].get(field) is not None]
        return statistics.median(vals) if vals else None

    return {
        "first_sound_p50": med("sound", "p50_ms"), "first_sound_p95": med("sound", "p95_ms"),
        "first_word_p50": med("words", "p50_ack_ms"),
        "answer_p50": med("words", "p50_answer_ms"), "answer_p95": med("words", "p95_answer_ms"),
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--caller", type=Path, help="caller WAV (default: the multi-turn caller fixture)")
    parser.add_argument("--peer-venv", type=Path, default=ROOT.parent / "pipecat-venv")
    parser.add_argument("--no-peer", action="store_true", help="measure only this project")
    parser.add_argument("--json", type=Path, help="write every run's measurements here")
    args = parser.parse_args()
    if not (PEERS / "answer_latency.py").exists():
        raise SystemExit(f"{PEERS} is missing: the measuring tools live in ../shared/peers beside the repository")
    ensure_fixtures()
    caller = args.caller or DEFAULT_OUT / "caller_multiturn.wav"
    with_peer = not args.no_peer
    if with_peer and not (args.peer_venv / "bin" / "python").exists():
        raise SystemExit(f"no Pipecat peer at {args.peer_venv}: install it as ../shared/peers/README.md says, "
                         "or pass --no-peer")
    ours_runs: list[dict[str, Any]] = []
    peer_runs: list[dict[str, Any]] = []
    diffs: list[float] = []
    before = steal()
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="heard-latency-") as tmp:
            out = Path(tmp)
            rec, report, wall = ours(caller, out)
            heard = measure(rec)
            heard["wall_s"] = wall
            ours_runs.append(heard)
            diffs.extend(report_vs_recording(report, heard))
            print(f"run {i + 1}: ours answer p50 {heard['words'].get('p50_answer_ms')} ms", file=sys.stderr)
            if with_peer:
                prec, pwall = peer(caller, out, args.peer_venv)
                pheard = measure(prec)
                pheard["wall_s"] = pwall
                peer_runs.append(pheard)
                print(f"run {i + 1}: Pipecat answer p50 {pheard['words'].get('p50_answer_ms')} ms", file=sys.stderr)
    cpu_steal = steal_percent(before)
    a = summary(ours_runs)
    b = summary(peer_runs) if peer_runs else {}
    print(f"\n{describe()}; CPU steal during the runs {cpu_steal:.1f}%; caller {caller.name}; "
          f"{args.repeats} run(s) each, median of the per-run figures (ms, measured on the recordings)\n")
    print("| measure (ms) | this project | Pipecat peer | ratio (peer / ours) |")
    print("|---|---:|---:|---:|")
    for key, label in (("first_sound_p50", "first sound p50"), ("first_sound_p95", "first sound p95"),
                       ("first_word_p50", "first word p50"), ("answer_p50", "first answer word p50"),
                       ("answer_p95", "first answer word p95")):
        mine, theirs = a.get(key), b.get(key)
        ratio = f"{theirs / mine:.1f}x" if mine and theirs else "-"
        print(f"| {label} | {fmt(mine)} | {fmt(theirs)} | {ratio} |")
    if diffs:
        print(f"\nour report's first agent audio vs the recording's first sound: median "
              f"{statistics.median(diffs):+.0f} ms, max |diff| {max(abs(d) for d in diffs):.0f} ms "
              f"over {len(diffs)} turns")
    if args.json:
        args.json.write_text(json.dumps({"ours": ours_runs, "peer": peer_runs, "report_minus_recording_ms": diffs},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
