"""The protection and retention settings: keys from a file or the environment, checked when the config loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voice_agent.config import ConfigError, load_config
from voice_agent.protection.cipher import generate_key
from voice_agent.protection.keys import KeyConfigError, cipher_from_config, write_key_file


def test_no_key_means_no_encryption() -> None:
    config = load_config(env={})
    assert not config.protection.enabled and cipher_from_config(config) is None


def test_a_key_file_and_the_environment_give_the_same_key(tmp_path: Path) -> None:
    key = write_key_file(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    from_file = cipher_from_config(load_config(env={"VOICE_AGENT_PROTECTION__KEY_FILE": str(tmp_path / "k")}))
    from_env = cipher_from_config(load_config(env={"VOICE_AGENT_KEY": (tmp_path / "k").read_text()}))
    assert from_file is not None and from_env is not None
    assert from_file.key_id == from_env.key_id == key.id
    assert "key=" not in repr(load_config(env={"VOICE_AGENT_KEY": generate_key()}).protection)  # never printed
    with pytest.raises(KeyConfigError, match="exists already"):
        write_key_file(tmp_path / "k")


@pytest.mark.parametrize(("settings", "message"), [
    ({"key_file": "/nonexistent/key"}, r"the key file /nonexistent/key does not exist; create one with "
                                       r"`voice-agent keys generate --output /nonexistent/key`"),
    ({"key": "not-a-key"}, r"protection.key \(VOICE_AGENT_KEY\) is not a key.*keys generate"),
    ({"key": generate_key(), "key_file": "/x"}, "not both"),
    ({"old_key_files": ["/nonexistent/old"]}, "protection.old_key_files: the key file /nonexistent/old"),
])
def test_bad_key_settings_fail_at_load_with_what_to_do(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env={}, overrides={"protection": settings})


def test_a_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("hello\n")
    with pytest.raises(ConfigError, match=r"\(.*/k\) is not a key"):
        load_config(env={}, overrides={"protection": {"key_file": str(tmp_path / "k")}})
    (tmp_path / "d").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(env={}, overrides={"protection": {"key_file": str(tmp_path / "d")}})
    (tmp_path / "k").write_text(os.urandom(32).hex())
    assert cipher_from_config(load_config(env={}, overrides={"protection": {"key_file": str(tmp_path / "k")}}))


def test_retention_settings_are_validated() -> None:
    r = load_config(env={"VOICE_AGENT_RETENTION__RECORDINGS_DAYS": "30"}).retention
    assert r.recordings_days == 30 and r.enabled and r.transcripts_days == 0
    assert not load_config(env={}).retention.enabled
    with pytest.raises(ConfigError, match=r"retention.uploads_days: expected 0 \(keep\) or a number of days"):
        load_config(env={}, overrides={"retention": {"uploads_days": "-1"}})
    with pytest.raises(ConfigError, match=r"retention\.interval_s"):
        load_config(env={}, overrides={"retention": {"interval_s": "0"}})
