"""What the staff change on the setup page: ``<data_dir>/settings.toml``.

The installer's configuration file (``--config``) may sit on the read-only root
of the device; the data partition is writable. So the page writes its changes to
an overlay in the data directory, which ``config.load_config`` lays over the file
(file < overlay < command line). A practice described on the page is written
beside it as ``<data_dir>/practice.toml`` and the overlay points at it.

Nothing half-saved: every change is merged into a copy, the whole configuration
(and practice) is built and validated from that copy, and only then written, by
a write to a temporary file, ``fsync`` and an atomic rename. A change the box
refuses raises ``ConfigError`` naming the setting, and the files stay as they
were. The core applies a saved change to the next call (``reload`` on the
control socket), never to one in progress.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Any, Final

from appliance.errors import ConfigError

OVERLAY_NAME: Final = "settings.toml"
PRACTICE_NAME: Final = "practice.toml"
_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")


def overlay_path(data_dir: Path) -> Path:
    return Path(data_dir) / OVERLAY_NAME


def read_overlay(data_dir: Path) -> dict[str, Any]:
    """The overlay as a table; empty when the page never saved anything."""
    path = overlay_path(data_dir)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the saved settings ({err})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: the saved settings are not valid TOML ({err})") from err


def merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` laid over ``base``: tables merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def save_settings(config_path: Path | None, data_dir: Path, changes: Mapping[str, Any]) -> Any:
    """Merge ``changes`` into the overlay, validate the whole configuration, write it.

    Returns the new ``Config``. Raises ``ConfigError`` (and writes nothing) when
    the result is not a configuration the box accepts.
    """
    from appliance.config import load_config  # config imports this module for the overlay

    overlay = merge(read_overlay(data_dir), changes)
    config = load_config(config_path, data_dir=data_dir, overlay=overlay)
    write_atomically(overlay_path(data_dir), dumps(overlay))
    return config


def save_practice(config_path: Path | None, data_dir: Path, practice: Mapping[str, Any]) -> Any:
    """Write a practice described on the page and point the overlay at it.

    The practice is validated as a practice file (every mistake named) before
    either file is touched.
    """
    from appliance.agenda.practice import load_practice_text

    text = dumps(practice)
    load_practice_text(text, where="the practice")
    path = Path(data_dir) / PRACTICE_NAME
    write_atomically(path, text)
    return save_settings(config_path, data_dir, {"practice": str(path)})


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a power cut leaves the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


# --- A small TOML writer: what the box's own files need, nothing more ------------


def dumps(table: Mapping[str, Any]) -> str:
    """TOML for a table of strings, numbers, booleans, dates, times, lists of those,
    sub-tables and lists of tables (``[[practitioners]]``). ``tomllib.loads`` reads
    back exactly what went in."""
    lines: list[str] = []
    _table(lines, [], table)
    return "\n".join(lines).strip() + "\n"


def _table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    plain = {k: v for k, v in table.items() if not _is_table(v) and not _is_table_list(v)}
    nested = {k: v for k, v in table.items() if k not in plain}
    for key, value in plain.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested.items():
        if _is_table(value):
            lines.extend(["", f"[{'.'.join(_key(p) for p in [*path, key])}]"])
            _table(lines, [*path, key], value)
        else:
            for item in value:
                lines.extend(["", f"[[{'.'.join(_key(p) for p in [*path, key])}]]"])
                _table(lines, [*path, key], item)


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TOML keys are text, got {key!r}")
    return key if _BARE_KEY.match(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no place in a settings file")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
