"""Owner-only files and directories for the store, recordings and uploads."""

from __future__ import annotations

import os
from pathlib import Path

from voice_agent.store import private_dir, private_file


def test_created_owner_only_and_existing_dirs_left_alone(tmp_path: Path) -> None:
    os.umask(0o022)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    f = private_file(shared / "data" / "nested" / "calls.db")
    assert f.stat().st_mode & 0o777 == 0o600
    assert (shared / "data").stat().st_mode & 0o777 == 0o700
    assert (shared / "data" / "nested").stat().st_mode & 0o777 == 0o700
    assert shared.stat().st_mode & 0o777 == 0o755  # the user's own directory is not changed
    old = shared / "old.db"
    old.write_bytes(b"x")
    old.chmod(0o644)
    private_file(old)
    assert old.stat().st_mode & 0o777 == 0o600 and old.read_bytes() == b"x"  # tightened, kept
    assert private_dir(tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
