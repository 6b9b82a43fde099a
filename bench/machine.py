"""What every benchmark reports beside its numbers: the machine and the CPU steal of a shared VM."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path


def describe() -> str:
    """Cores, CPU model, OS and Python, for a results table."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        system = "Debian " + Path("/etc/debian_version").read_text().strip()
    except OSError:
        system = f"{platform.system()} {platform.release()}"
    return (f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {model}, {system}, "
            f"Python {platform.python_version()}, {platform.machine()}")


def steal() -> tuple[int, int]:
    """(steal, total) jiffies since boot from /proc/stat; (0, 1) where there is none."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return fields[7], sum(fields)
    except (OSError, IndexError, ValueError):
        return 0, 1


def steal_percent(before: tuple[int, int] | None = None) -> float:
    """CPU steal in percent since `before` (a steal() reading), or since boot."""
    s1, t1 = steal()
    s0, t0 = before or (0, 0)
    return 100.0 * (s1 - s0) / max(1, t1 - t0)


def free_port() -> int:
    """A loopback port free for both UDP and TCP right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
