"""`voice-agent transcribe --ray`: the same batch on a real local Ray cluster gives the same files as locally.

The test starts its own head node on 127.0.0.1 (free ports, a temp dir, no dashboard, no usage
stats) with ``ray start --block`` in a new process group, and ends that group afterwards, so no
other Ray on the machine is touched (``ray stop`` would stop every Ray of this user).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.machine import free_port
from tests.conftest import need

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
RAY = ROOT / ".venv" / "bin" / "ray"
Gen = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A one-node Ray cluster with 2 CPUs on loopback; its address."""
    ray_bin = str(RAY) if RAY.exists() else shutil.which("ray")
    need(ray_bin is not None, "ray is not installed (pip install ray)")
    # Ray's unix sockets live under the temp dir and must fit in 107 bytes: a short /tmp path.
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    port = free_port()
    cmd = [str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", "2", "--disable-usage-stats", "--include-dashboard=false", "--temp-dir", temp,
           "--object-store-memory", str(80 * 1024 * 1024), "--dashboard-port", str(free_port()),
           "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
           "--runtime-env-agent-port", str(free_port())]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        # `ray start` prints this once the GCS and the raylet are up; it exits if they fail.
        for line in proc.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                break
        assert lines and "Ray runtime started" in lines[-1] and proc.poll() is None, "".join(lines[-30:])
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()  # `ray start --block` stops the processes it started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of this head's group still running
        shutil.rmtree(temp, ignore_errors=True)


def cli(*args: str, home: Path, env: dict[str, str] | None = None,
        level: str = "WARNING") -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, VOICE_AGENT_HOME=str(home), HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", **(env or {}))
    return subprocess.run([sys.executable, "-m", "voice_agent", "--log-level", level, *args],
                          capture_output=True, text=True, cwd=ROOT, env=full, timeout=600, check=False)


def _outputs(folder: Path) -> dict[str, Any]:
    """Every output file; JSON without the per-run store id."""
    out: dict[str, Any] = {}
    for f in sorted(folder.iterdir()):
        if f.suffix == ".json":
            data = json.loads(f.read_text())
            data.pop("call_id", None)
            out[f.name] = data
        else:
            out[f.name] = f.read_text()
    return out


@pytest.fixture(scope="module")
def inputs(generated: Gen, shared_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray-in")
    for name in ("stereo_call_ulaw8k.wav", "utt_bill.mp3", "corrupt.wav"):
        shutil.copy(generated[0] / name, folder / name)
    shutil.copy(shared_fixtures / "jfk.flac", folder / "jfk.flac")
    return folder


@pytest.fixture(scope="module")
def local_run(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("local-out")
    proc = cli("transcribe", str(inputs), "--output", str(out), "--format", "json,txt,srt",
               home=tmp_path_factory.mktemp("local-home"))
    assert proc.returncode == 1, proc.stderr
    return proc, out


@pytest.mark.parametrize("send", ["paths", "bytes"])
def test_ray_batch_equals_local(send: str, ray_address: str, inputs: Path, local_run: Any, tmp_path: Path) -> None:
    local, local_out = local_run
    out, home = tmp_path / "out", tmp_path / "home"
    if send == "paths":  # the flag, with the mode chosen for a one-machine cluster
        proc = cli("transcribe", str(inputs), "--output", str(out), "--format", "json,txt,srt", "--jobs", "1",
                   "--ray", ray_address, home=home, level="INFO")
    else:  # the config settings, file bytes through the object store
        proc = cli("transcribe", str(inputs), "--output", str(out), "--format", "json,txt,srt", home=home,
                   env={"VOICE_AGENT_TRANSCRIBE__RAY_ADDRESS": ray_address, "VOICE_AGENT_TRANSCRIBE__RAY_SEND": send,
                        "VOICE_AGENT_TRANSCRIBE__RAY_ACTORS": "1"})
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert "Traceback" not in err
    # The same per-file error, summary and progress bar as the local run.
    corrupt = next(ln for ln in local.stderr.splitlines() if "corrupt.wav" in ln)
    assert corrupt in err.splitlines(), (corrupt, err)
    assert "3 transcribed, 1 failed" in err and "files 4/4" in err and "realtime" in err
    if send == "paths":
        ready = [json.loads(ln) for ln in err.splitlines() if '"ray_transcribers_ready"' in ln]
        assert ready and ready[0]["send"] == "paths" and ready[0]["actors"] == 1, err
    # Outputs equal the local run's, file for file.
    assert _outputs(out) == _outputs(local_out)
    assert not (out / "corrupt.json").exists()
    # Results stored in the call store as locally.
    listing = cli("calls", "list", home=home)
    assert listing.stdout.count("transcription") == 3, listing.stdout
    call = json.loads((out / "stereo_call_ulaw8k.json").read_text())
    shown = json.loads(cli("calls", "show", call["call_id"], "--format", "json", home=home).stdout)
    assert shown["segments"] == call["segments"]


def test_unreachable_cluster_is_one_clear_line(inputs: Path, tmp_path: Path) -> None:
    need(RAY.exists() or shutil.which("ray") is not None, "ray is not installed (pip install ray)")
    t0 = time.monotonic()
    proc = cli("transcribe", str(inputs / "jfk.flac"), "--ray", f"127.0.0.1:{free_port()}", "--no-store", home=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "cannot connect to the Ray cluster" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 60
