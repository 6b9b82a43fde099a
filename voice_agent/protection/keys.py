"""Where the data key comes from: a key file or the environment, checked when the configuration loads."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from voice_agent.config import ConfigError
from voice_agent.protection.cipher import Cipher, Key, SealError, generate_key, parse_key

if TYPE_CHECKING:
    from voice_agent.config import Config, ProtectionConfig


class KeyConfigError(ConfigError):
    """The configured key is missing, unreadable or not a key; the message says what to do."""


def read_key_file(path: str | Path, setting: str = "protection.key_file") -> Key:
    """The key in a key file, or a KeyConfigError naming the file and the fix."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise KeyConfigError(f"{setting}: the key file {p} does not exist; create one with "
                             f"`voice-agent keys generate --output {p}` (and keep a copy somewhere safe)") from None
    except IsADirectoryError:
        raise KeyConfigError(f"{setting}: {p} is a directory, not a key file") from None
    except OSError as exc:
        raise KeyConfigError(f"{setting}: cannot read the key file {p} ({exc.strerror}); check its permissions")\
            from None
    try:
        return parse_key(text, f"{setting} ({p})")
    except SealError as exc:
        raise KeyConfigError(str(exc)) from None


def check_config(p: ProtectionConfig) -> None:
    """Validate the protection section (called by ``load_config``)."""
    if p.key and p.key_file:
        raise KeyConfigError("protection: set key_file or key (VOICE_AGENT_KEY), not both")
    if p.key:
        try:
            parse_key(p.key, "protection.key (VOICE_AGENT_KEY)")
        except SealError as exc:
            raise KeyConfigError(str(exc)) from None
    if p.key_file:
        read_key_file(p.key_file)
    for item in p.old_key_files:
        read_key_file(item, "protection.old_key_files")


def configured_keys(config: Config) -> tuple[Key | None, list[Key]]:
    """(the current key or None, the old keys) of the configuration."""
    p = config.protection
    current: Key | None = None
    if p.key:
        try:
            current = parse_key(p.key, "protection.key (VOICE_AGENT_KEY)")
        except SealError as exc:
            raise KeyConfigError(str(exc)) from None
    elif p.key_file:
        current = read_key_file(p.key_file)
    return current, [read_key_file(f, "protection.old_key_files") for f in p.old_key_files]


def cipher_from_config(config: Config) -> Cipher | None:
    """The cipher for the configured key (and old keys), or None when encryption at rest is off."""
    current, old = configured_keys(config)
    if current is None:
        if old:
            raise KeyConfigError("protection.old_key_files is set but no current key: set protection.key_file too")
        return None
    return Cipher(current, old)


def write_key_file(path: Path) -> Key:
    """Create a new key file (owner-only); refuses to overwrite an existing file."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:
        raise KeyConfigError(f"{path} exists already; a key file is never overwritten (choose another name)") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text + "\n")
    return parse_key(text, str(path))


__all__ = ["KeyConfigError", "check_config", "cipher_from_config", "configured_keys", "read_key_file",
           "write_key_file"]
