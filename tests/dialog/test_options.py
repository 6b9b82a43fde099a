"""Dialog options mirror voice_agent's DialogConfig, and invalid values are clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
        ("answer_score", 0.1, "must not be below"),
        ("answer_style", "poetry", "answer_style"),
    ],
)
def test_invalid_options(field: str, value: object, message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        DialogOptions(**{field: value})  # type: ignore[arg-type]


def test_unknown_keys_and_defaults() -> None:
    with pytest.raises(OptionsError, match="unknown dialog options"):
        DialogOptions.from_mapping({"kb": "x"})
    assert DialogOptions().kb_path == example_kb_dir()
    assert DialogOptions().menu_map() == {}  # the company's menu lives beside its KB, not in code


def test_company_settings_come_from_the_kb_folder(tmp_path: Path) -> None:
    from dialog.errors import KnowledgeBaseError
    from dialog.kb import kb_settings

    merged = DialogOptions().with_kb_settings(kb_settings(example_kb_dir()))
    assert merged.menu_map()["0"] == "agent" and merged.company and merged.agent_name and merged.example
    # configuration wins over the KB folder
    assert DialogOptions(company="Other Co").with_kb_settings(kb_settings(example_kb_dir())).company == "Other Co"
    # a KB without settings works with neutral defaults
    assert kb_settings(tmp_path) == {}
    plain = DialogOptions().with_kb_settings({})
    assert plain.company == "" and plain.persona
    (tmp_path / "assistant.yaml").write_text("company: X\nslogan: y\n")
    with pytest.raises(KnowledgeBaseError, match="unknown keys"):
        kb_settings(tmp_path)
