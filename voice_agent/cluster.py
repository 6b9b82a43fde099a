"""Several ``serve`` workers behind Kamailio on one machine: ``voice-agent cluster up``.

The pieces are the real engines a deployment runs: PostgreSQL (a throwaway cluster in a temp
dir, or ``--store-url``), N ``voice-agent serve`` worker processes on loopback ports sharing
that store, and kamailio with ``deploy/kamailio.cfg`` dispatching calls to the workers by call
load and probing them with OPTIONS. Tests and ``bench/cluster_load.py`` use the same classes.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KAMAILIO_CFG = ROOT / "deploy" / "kamailio.cfg"
PG_BIN = Path(os.environ.get("VOICE_AGENT_PG_BIN", "/usr/lib/postgresql/15/bin"))


class ClusterError(RuntimeError):
    """A part of the cluster did not start; the message names it and why."""


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, other) as b:
                try:
                    b.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise ClusterError("no free port on 127.0.0.1")


class LogTail:
    """Lines of a child process's output, kept and searchable while it runs."""

    def __init__(self, stream: object, echo: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._echo = echo
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
            if self._echo is not None:
                self._echo(line.rstrip("\n"))
        with self._cond:
            self.lines.append("")  # EOF marker wakes waiters
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float, start: int = 0, alive: Callable[[], bool] = lambda: True) -> str:
        """The first line from index ``start`` on that matches ``pattern`` (regex); ClusterError on timeout."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = start
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    tail = "\n".join(self.lines[-20:])
                    raise ClusterError(f"waited {timeout:.0f} s for /{pattern}/; last output:\n{tail}")
                self._cond.wait(min(left, 0.5))

    def count(self, pattern: str) -> int:
        """How many lines so far match ``pattern``."""
        regex = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if regex.search(line))


class Postgres:
    """A throwaway PostgreSQL 15 cluster in a temp dir on a loopback port (trust auth).

    PostgreSQL refuses to run as root, so under root it runs as the ``postgres`` system user.
    """

    def __init__(self, base: Path | None = None) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="voice-agent-cluster-pg-"))
        self.data = self.base / "data"
        self.port = 0
        self.owner = "postgres" if os.geteuid() == 0 else None

    def _run(self, args: Sequence[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self.owner:
            cmd = ["runuser", "-u", self.owner, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> str:
        """initdb, start, create the database; its URL."""
        if not (PG_BIN / "initdb").exists():
            raise ClusterError(f"PostgreSQL binaries not found in {PG_BIN} (Debian: apt install postgresql)")
        if self.owner:
            owner = pwd.getpwnam(self.owner)
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        done = self._run(["initdb", "-D", str(self.data), "-U", "voice_agent", "-A", "trust", "-E", "UTF8",
                          "--locale=C", "--no-sync"], timeout=120)
        if done.returncode:
            raise ClusterError(f"initdb failed: {done.stderr.strip()[-500:]}")
        self.port = free_port(socket.SOCK_STREAM)
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c max_connections=100"
        done = self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", options,
                          "-w", "-t", "60", "start"])
        if done.returncode:
            raise ClusterError(f"PostgreSQL did not start: {done.stderr.strip()[-500:]}")
        done = self._run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "voice_agent", "calls"])
        if done.returncode:
            raise ClusterError(f"createdb failed: {done.stderr.strip()[-500:]}")
        return self.url

    @property
    def url(self) -> str:
        """The store URL of the database."""
        return f"postgresql://voice_agent@127.0.0.1:{self.port}/calls"

    def stop(self) -> None:
        """Stop the server and remove its files."""
        if self.port:
            self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"], timeout=60)
            self.port = 0
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Worker:
    """One ``voice-agent serve`` process on loopback ports."""

    name: str
    sip_port: int
    http_port: int
    home: Path
    env: dict[str, str]
    echo: bool = False
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    log: LogTail | None = None

    @property
    def sip_uri(self) -> str:
        """The worker's SIP address (kamailio's dispatcher destination)."""
        return f"sip:127.0.0.1:{self.sip_port}"

    @property
    def url(self) -> str:
        """The worker's internal HTTP address."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, echo_log: Callable[[str], None] | None = None) -> None:
        """Spawn the process (it loads its models); ``wait_ready`` waits for it."""
        self.home.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "voice_agent", "--log-format", "json", "--log-level", "INFO", "serve",
                "--sip-listen", f"127.0.0.1:{self.sip_port}", "--http-listen", f"127.0.0.1:{self.http_port}",
                *(["--echo"] if self.echo else []), *self.extra_args]
        env = dict(os.environ, VOICE_AGENT_HOME=str(self.home), **self.env)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=ROOT, start_new_session=True)
        prefix = f"[{self.name}] "
        self.log = LogTail(self.proc.stdout, (lambda line: echo_log(prefix + line)) if echo_log else None)

    def wait_ready(self, timeout: float = 600) -> None:
        """Until the worker logs serve_ready (models loaded, SIP and HTTP bound)."""
        assert self.log is not None and self.proc is not None
        proc = self.proc
        self.log.wait_for(r'"event": "serve_ready"', timeout, alive=lambda: proc.poll() is None)

    def kill(self) -> None:
        """kill -9 (a crash: no BYE, no final save)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (calls end gracefully), then SIGKILL after the timeout."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Kamailio:
    """kamailio with deploy/kamailio.cfg in front of the given workers (dispatcher set 1)."""

    def __init__(self, workers: Sequence[str], workdir: Path, *, port: int = 0, ping_interval: int = 1,
                 probe_timeout_ms: int = 1000, config: Path = KAMAILIO_CFG) -> None:
        self.workers = list(workers)
        self.workdir = workdir
        self.port = port or free_port()
        self.ping_interval = ping_interval
        self.probe_timeout_ms = probe_timeout_ms
        self.config = config
        self.proc: subprocess.Popen[str] | None = None
        self.log: LogTail | None = None

    @property
    def address(self) -> str:
        """Where callers send their INVITEs."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30, echo_log: Callable[[str], None] | None = None) -> None:
        """Write the dispatcher list, start kamailio, wait until it answers OPTIONS."""
        exe = shutil.which("kamailio") or "/usr/sbin/kamailio"
        if not Path(exe).exists():
            raise ClusterError("kamailio is not installed (Debian: apt install kamailio)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        ds_list = self.workdir / "dispatcher.list"
        ds_list.write_text("".join(f"1 {uri} 0 0 duid=w{i}\n" for i, uri in enumerate(self.workers, 1)))
        cmd = [exe, "-f", str(self.config), "-DD", "-E", "-Y", str(self.workdir), "-P", str(self.workdir / "kam.pid"),
               "-A", f"SIP_LISTEN=udp:127.0.0.1:{self.port}", "-A", f'DS_LIST="{ds_list}"',
               "-A", f"PING_INTERVAL={self.ping_interval}", "-A", f"PROBE_TIMEOUT_MS={self.probe_timeout_ms}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.log = LogTail(self.proc.stdout, (lambda line: echo_log("[kamailio] " + line)) if echo_log else None)
        deadline = time.monotonic() + timeout
        while not options_ping(self.address, 0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.log.lines[-20:])
                self.stop()
                raise ClusterError(f"kamailio did not answer OPTIONS on {self.address}:\n{tail}")

    def wait_down(self, worker: str, timeout: float = 30, start: int = 0) -> None:
        """Until the OPTIONS probe has taken ``worker`` out (KAM-DS-DOWN logged)."""
        assert self.log is not None
        self.log.wait_for("KAM-DS-DOWN " + re.escape(worker), timeout, start)

    def stop(self) -> None:
        """Stop kamailio."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def options_ping(address: str, timeout: float) -> bool:
    """Whether a SIP server at host:port (UDP) answers an OPTIONS with 200."""
    host, port = address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        local = s.getsockname()[1]
        branch = "z9hG4bK" + uuid.uuid4().hex[:12]
        msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};branch={branch}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
               f"To: <sip:{host}:{port}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\n"
               "Content-Length: 0\r\n\r\n")
        try:
            s.sendto(msg.encode(), (host, int(port)))
            data = s.recv(4096)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 200")


class Cluster:
    """PostgreSQL + N workers + kamailio, started in that order and stopped in reverse."""

    def __init__(self, workers: int, workdir: Path, *, echo: bool = False, store_url: str = "", sip_port: int = 0,
                 http_port: int = 0, cache_dir: Path | None = None, ping_interval: int = 1,
                 worker_env: dict[str, str] | None = None, worker_args: Sequence[str] = ()) -> None:
        if workers < 1:
            raise ClusterError("--workers must be at least 1")
        self.workdir = workdir
        self.postgres: Postgres | None = None
        self.store_url = store_url
        self.secret = secrets.token_hex(16)
        session_secret = secrets.token_hex(32)
        self.workers: list[Worker] = []
        for i in range(1, workers + 1):
            home = workdir / f"worker{i}"
            if cache_dir is not None:
                home.mkdir(parents=True, exist_ok=True)
                link = home / "cache"
                if not link.exists():
                    link.symlink_to(cache_dir, target_is_directory=True)
            port = free_port(socket.SOCK_STREAM) if not http_port else http_port + i - 1
            env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "VOICE_AGENT_HTTP__SESSION_SECRET": session_secret, "VOICE_AGENT_HTTP__CLUSTER_SECRET": self.secret,
                   "VOICE_AGENT_HTTP__WORKER_URL": f"http://127.0.0.1:{port}", **(worker_env or {})}
            self.workers.append(Worker(f"worker{i}", free_port() if not sip_port else sip_port + i, port, home, env,
                                       echo=echo, extra_args=list(worker_args)))
        self.kamailio = Kamailio([w.sip_uri for w in self.workers], workdir / "kamailio", port=sip_port,
                                 ping_interval=ping_interval)

    def start(self, echo_log: Callable[[str], None] | None = None, timeout: float = 900) -> None:
        """Start everything and wait until each part is ready; stops what started on failure."""
        try:
            if not self.store_url:
                self.postgres = Postgres()
                self.store_url = self.postgres.start()
            for w in self.workers:
                w.env["VOICE_AGENT_STORE_URL"] = self.store_url
            # The first worker alone: on a fresh cache it converts the models once for all of them.
            first, rest = self.workers[0], self.workers[1:]
            first.start(echo_log)
            first.wait_ready(timeout)
            for w in rest:
                w.start(echo_log)
            for w in rest:
                w.wait_ready(timeout)
            self.kamailio.start(echo_log=echo_log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kamailio first (no new calls), then the workers (calls end and are saved), then PostgreSQL."""
        self.kamailio.stop()
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            w.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def describe(self) -> dict[str, object]:
        """Addresses of every part (printed by ``cluster up``)."""
        return {"sip": f"sip:{self.kamailio.address}", "store": self.store_url,
                "workers": [{"name": w.name, "sip": w.sip_uri, "http": w.url} for w in self.workers]}


def describe_json(cluster: Cluster) -> str:
    """``describe`` as one JSON line."""
    return json.dumps(cluster.describe())
