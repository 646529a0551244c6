"""Project configuration: ``[tool.fitdoctor]`` in pyproject.toml (select / ignore rules)."""
from __future__ import annotations

import os
import tomllib

from .errors import InputError


def read_pyproject_selectors(path: str = "pyproject.toml"):
    """(select, ignore, source) from ``[tool.fitdoctor]``; (None, None, ...) when absent."""
    if not os.path.exists(path):
        return None, None, path
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML ({exc}): fix it or run from another directory") from None
    section = data.get("tool", {}).get("fitdoctor", {})
    source = f"{path} [tool.fitdoctor]"
    select, ignore = section.get("select"), section.get("ignore")
    for key, value in (("select", select), ("ignore", ignore)):
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise InputError(f"{source}: '{key}' must be a list of rule codes or names, e.g. {key} = [\"O301\"]")
    return select, ignore, source
