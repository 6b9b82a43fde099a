"""Dialog options mirror voice_agent's DialogConfig, and invalid values are clear errors."""

from __future__ import annotations

import dataclasses

import pytest

from dialog import DialogOptions, OptionsError
from dialog.options import example_kb_dir


def test_options_match_the_config_section() -> None:
    from voice_agent.config import DialogConfig

    assert [f.name for f in dataclasses.fields(DialogConfig)] == [f.name for f in dataclasses.fields(DialogOptions)]
    assert dataclasses.asdict(DialogConfig()) == dataclasses.asdict(DialogOptions())
    assert DialogOptions.from_mapping(dataclasses.asdict(DialogConfig())) == DialogOptions()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("backend", "gpt", "dialog.backend"),
        ("redact", ["card", "passwords"], "unknown kinds"),
        ("menu", ["1billing"], "DIGIT=topic"),
        ("top_k", 0, "at least 1"),
        ("min_score", 2.0, "between 0 and 1"),
    ],
)
def test_invalid_options(field: str, value: object, message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        DialogOptions(**{field: value})  # type: ignore[arg-type]


def test_unknown_keys_and_defaults() -> None:
    with pytest.raises(OptionsError, match="unknown dialog options"):
        DialogOptions.from_mapping({"kb": "x"})
    assert DialogOptions().kb_path == example_kb_dir()
    assert DialogOptions().menu_map()["0"] == "agent"
