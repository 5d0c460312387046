"""The appliance's Python dependencies as the arm64 image installs them from PyPI.

pyproject.toml lists what a development machine installs. On the image three of
those come another way:

- systemd-python and pyaudio: C extensions with no aarch64 wheel on PyPI; the
  image takes Debian's python3-systemd and python3-pyaudio instead (the venv is
  made with --system-site-packages so it sees them), rather than carry a
  compiler and build them under emulation.
- llama-cpp-python: no wheel for any platform; it would compile for about an
  hour under qemu. Left out unless ``--with-llama`` (IMAGE_WITH_LLAMA=1): the
  LLM helper is off by default and the box answers without it.

Usage: python image/requirements.py [--pyproject PATH] [--with-llama]
prints one requirement a line, for ``pip download -r`` / ``pip install -r``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path
from typing import Final

FROM_DEBIAN: Final = {"systemd-python": "python3-systemd", "pyaudio": "python3-pyaudio"}
"""PyPI name -> the Debian package the image installs in its place."""
NEEDS_COMPILER: Final = frozenset({"llama-cpp-python"})

_NAME: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    # PEP 503 normalisation, so "PyAudio" and "pyaudio" are the same project.
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def image_requirements(pyproject: dict, *, with_llama: bool = False) -> list[str]:
    """The ``[project] dependencies`` the image installs from wheels, in their order."""
    try:
        dependencies = pyproject["project"]["dependencies"]
    except KeyError:
        raise ValueError("pyproject.toml has no [project] dependencies") from None
    keep = []
    for requirement in dependencies:
        name = _name(requirement)
        if name in FROM_DEBIAN:
            continue
        if name in NEEDS_COMPILER and not with_llama:
            continue
        keep.append(requirement)
    return keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=Path(__file__).resolve().parent.parent / "pyproject.toml")
    parser.add_argument("--with-llama", action="store_true", help="include llama-cpp-python (compiled in the image)")
    args = parser.parse_args(argv)
    try:
        data = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))
        lines = image_requirements(data, with_llama=args.with_llama)
    except (OSError, tomllib.TOMLDecodeError, ValueError) as err:
        print(f"error: {args.pyproject}: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
