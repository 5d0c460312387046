"""Pure helpers for the simulator's V.250 command-line parser (its own, not ``line.at``)."""

from __future__ import annotations


class CommandError(Exception):
    """The command line answers ERROR."""



def normalize(body: str) -> str:
    """Upper case and no spaces, except inside quoted strings (V.250 5.2)."""
    out: list[str] = []
    quoted = False
    for char in body:
        if char == '"':
            quoted = not quoted
        if quoted or char == '"':
            out.append(char)
        elif char != " ":
            out.append(char.upper())
    return "".join(out)


def extended_end(body: str, pos: int) -> int:
    """Index of the ';' ending the extended command at ``pos`` (or the end of the line)."""
    quoted = False
    for i in range(pos, len(body)):
        if body[i] == '"':
            quoted = not quoted
        elif body[i] == ";" and not quoted:
            return i
    return len(body)


def split_extended(command: str) -> tuple[str, str, str]:
    """``+VSM=131,8000`` → (``+VSM``, ``=``, ``131,8000``); ops ``""``, ``?``, ``=``, ``=?``."""
    end = 1
    while end < len(command) and (command[end].isalnum() or command[end] in "._%"):
        end += 1
    name, rest = command[:end], command[end:]
    if rest == "":
        return name, "", ""
    if rest in ("?", "=?"):
        return name, rest, ""
    if rest.startswith("="):
        return name, "=", rest[1:]
    raise CommandError


def ints(args: str, count: int | None) -> list[int]:
    try:
        values = [int(a) for a in args.split(",")]
    except ValueError:
        raise CommandError from None
    if (count is not None and len(values) != count) or any(v < 0 or v > 65535 for v in values):
        raise CommandError
    return values
