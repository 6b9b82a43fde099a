"""A real PostgreSQL server for tests: Debian's binaries, a temporary directory, a loopback port, trust auth.

PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres`` system user
(made by the Debian package) and its commands run through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

BIN = Path(os.environ.get("VOICE_AGENT_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "voice_agent"


class PostgresServer:
    """One throwaway cluster; ``url(db)`` connects to a database on it."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="voice-agent-pg-"))
        self.data = self.base / "data"
        self.port = 0
        self._owner: str | None = None
        if os.geteuid() == 0:
            self._owner = "postgres"
            owner = pwd.getpwnam(self._owner)
            os.chown(self.base, owner.pw_uid, owner.pw_gid)

    @staticmethod
    def available() -> bool:
        """Whether the PostgreSQL binaries are installed (and, as root, a user to run them)."""
        if not (BIN / "initdb").exists() or not (BIN / "pg_ctl").exists():
            return False
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return False
        return True

    def _run(self, args: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN / args[0]), *args[1:]]
        if self._owner:
            cmd = ["runuser", "-u", self._owner, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        """initdb, start on a free loopback port and wait until it answers."""
        done = self._run(["initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                          "--locale=C", "--no-sync"], timeout=120)
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        done = self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", options,
                          "-w", "-t", "60", "start"], timeout=90)
        if done.returncode:
            log_file = self.base / "server.log"
            log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {log}")
        deadline = time.monotonic() + 60
        while self._run(["pg_isready", "-h", "127.0.0.1", "-p", str(self.port)], timeout=10).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not become ready within 60 s")
            time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        """A connection URL for a database on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.port:
            self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"], timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)
