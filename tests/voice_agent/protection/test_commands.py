"""`voice-agent keys`, `erase` and `retention`: JSON out, one clear line on every mistake, never a traceback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from voice_agent.cli import main
from voice_agent.store import CallStore


def test_keys_erase_and_retention_commands(data_home: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    key = ["--set", f"protection.key_file={tmp_path / 'k1'}"]
    assert main(["keys", "generate", "--output", str(tmp_path / "k1")]) == 0
    assert "keep a copy somewhere safe" in capsys.readouterr().err.lower()
    assert main(["keys", "generate", "--output", str(tmp_path / "k1")]) == 2
    assert "never overwritten" in capsys.readouterr().err

    store = CallStore(f"sqlite:///{data_home / 'calls.db'}", check_key=False)
    old = store.add_call("phone", "sip:+15550001234@h", text="old call", outcome="resolved",
                         started_at=time.time() - 40 * 86400)
    store.add_call("phone", "sip:+15550009999@h", text="other caller", outcome="resolved")
    store.close()
    assert main([*key, "keys", "rotate", "--new-key-file", str(tmp_path / "k1"), "--by", "ops"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["rows"]["calls"] == 2 and "protection.key_file" in out.err
    assert main([*key, "keys", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["store_key"] == status["configured_key"] and status["rows"]["calls"] == {status["store_key"]: 2}

    assert main([*key, "--set", "retention.transcripts_days=30", "retention", "run"]) == 0
    assert json.loads(capsys.readouterr().out) == {"recordings": 0, "transcripts": 1, "uploads": 0}
    assert main([*key, "retention", "run"]) == 0
    assert "keep everything" in capsys.readouterr().err

    assert main([*key, "erase", "--phone", "+1 555 000 1234", "--by", "ticket 4711"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["call_ids"] == [old] and receipt["requested_by"] == "ticket 4711" and receipt["via"] == "cli"
    assert main([*key, "erase", "--phone", "12"]) == 2
    assert "fewer than 3 digits" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*key, "erase"])  # argparse: one of --phone / --customer is required
    capsys.readouterr()


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "protection.key=nope", "calls", "list"], "is not a key"),
    (["--set", "protection.key_file=/nonexistent", "calls", "list"], "keys generate --output /nonexistent"),
    (["keys", "rotate", "--new-key-file", "/nonexistent"], "--new-key-file: the key file /nonexistent"),
])
def test_key_mistakes_are_one_line(data_home: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                   message: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
