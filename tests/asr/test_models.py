"""Model registry: shipped names, local paths, hub names only with permission."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.errors import ModelNotFoundError
from asr.models import WHISPER_BASE_SIZE, available_models, resolve_model


def test_default_model_resolves_to_package() -> None:
    m = resolve_model("whisper-tiny.en")
    assert (Path(m.path) / "model.bin").exists()
    assert m.source == "package" and not m.multilingual


def test_whisper_base_is_joined_once(tmp_path: Path) -> None:
    m = resolve_model("whisper-base", cache_dir=tmp_path)
    model_bin = Path(m.path) / "model.bin"
    assert model_bin.stat().st_size == WHISPER_BASE_SIZE
    mtime = model_bin.stat().st_mtime_ns
    again = resolve_model("whisper-base", cache_dir=tmp_path)
    assert again.path == m.path and model_bin.stat().st_mtime_ns == mtime
    assert m.multilingual


def test_unknown_model_lists_available_names() -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("large-v3")
    text = str(err.value)
    assert "whisper-tiny.en" in text and "whisper-base" in text and "allow_download" in text


def test_hub_name_needs_permission() -> None:
    m = resolve_model("small.en", allow_download=True)
    assert m.source == "hub" and m.path == "small.en"


def test_local_directory_and_bad_paths(tmp_path: Path) -> None:
    local = resolve_model(resolve_model("whisper-tiny.en").path)
    assert local.source == "local"
    with pytest.raises(ModelNotFoundError, match=r"no model\.bin"):
        resolve_model(str(tmp_path))
    odd = tmp_path / "weights.bin"
    odd.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="neither"):
        resolve_model(str(odd))


def test_available_models_reports_installed() -> None:
    rows = {name: installed for name, _, installed in available_models()}
    assert rows == {"whisper-tiny.en": True, "whisper-base": True}
