"""The typed configuration: defaults, file, environment and CLI overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_agent.config import ConfigError, load_config, parse_overrides


def test_defaults_work_offline(tmp_path: Path) -> None:
    c = load_config(env={"VOICE_AGENT_HOME": str(tmp_path)})
    assert c.asr.model == "whisper-tiny.en" and c.asr.device == "cpu"
    assert c.store_url == f"sqlite:///{tmp_path / 'calls.db'}"
    assert c.transcribe.channel_speakers == ["caller", "agent"]


def test_precedence_file_env_cli(tmp_path: Path) -> None:
    f = tmp_path / "va.toml"
    f.write_text('[asr]\nmodel = "whisper-base"\nbeam_size = 2\n[transcribe]\njobs = 3\n')
    env = {"VOICE_AGENT_ASR__BEAM_SIZE": "4", "VOICE_AGENT_TRANSCRIBE__CHANNEL_SPEAKERS": "agent,caller"}
    c = load_config(f, parse_overrides(["asr.beam_size=1", "asr.word_timestamps=false"]), env=env)
    assert c.asr.model == "whisper-base"
    assert c.asr.beam_size == 1  # CLI beats env beats file
    assert c.asr.word_timestamps is False
    assert c.transcribe.jobs == 3
    assert c.transcribe.channel_speakers == ["agent", "caller"]


def test_config_file_from_env(tmp_path: Path) -> None:
    f = tmp_path / "va.toml"
    f.write_text('data_dir = "/srv/va"\n')
    assert load_config(env={"VOICE_AGENT_CONFIG": str(f)}).data_path == Path("/srv/va")


@pytest.mark.parametrize(
    ("content", "message"),
    [("[asr]\nmodle = 'x'\n", "unknown setting 'modle'"),
     ("[asr]\nbeam_size = 'many'\n", "expected a number"),
     ("[asr\n", "not valid TOML")],
)
def test_bad_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "va.toml"
    f.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(f, env={})


def test_bad_overrides() -> None:
    with pytest.raises(ConfigError, match=r"section\.field=value"):
        parse_overrides(["asr.model"])
    with pytest.raises(ConfigError, match="true/false"):
        load_config(overrides=parse_overrides(["asr.word_timestamps=maybe"]), env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent.toml", env={})
