"""Reading the TOML files people write (gateway, dealer and policy files): every
problem is an InvalidArgument naming the file or the field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mpc.errors import InvalidArgument


def refuse_unknown(raw: dict[str, Any], known: dict[str, set[str]]) -> None:
    """Stops start-up at the first key the format does not know (e.g. a misspelling)."""
    for table, keys in known.items():
        section = raw.get(table, {}) if table else raw
        if not isinstance(section, dict):
            continue
        for key in section:
            if key not in keys:
                name = f"{table}.{key}" if table else key
                raise InvalidArgument(f"config field {name!r} is not known (known: {', '.join(sorted(keys))})")


def whole_number(key: str, value: Any, minimum: int) -> int:
    """A config field's integer value, at least `minimum`; else InvalidArgument naming it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgument(f"config field {key!r} must be a whole number >= {minimum}")
    return value


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's table; unreadable or invalid TOML is InvalidArgument."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as err:
        raise InvalidArgument(f"cannot read config {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise InvalidArgument(f"config {path} is not valid TOML: {err}") from None
