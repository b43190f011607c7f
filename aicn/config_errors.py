"""Configuration errors as an operator reads them: one line per bad setting, naming it, no traceback."""

from __future__ import annotations

import os
import tomllib

from pydantic import ValidationError

CONFIG_ERRORS = (ValidationError, tomllib.TOMLDecodeError)


def describe(error: Exception) -> list[str]:
    """``aicn: configuration: <setting>: <what is wrong>`` for each problem in ``error``."""
    source = os.environ.get("AICN_CONFIG", "aicn.toml")
    if isinstance(error, tomllib.TOMLDecodeError):
        return [f"aicn: configuration: {source} is not valid TOML: {error}"]
    assert isinstance(error, ValidationError)
    lines = []
    for problem in error.errors(include_url=False):
        setting = ".".join(str(part) for part in problem["loc"]) or "(the file)"
        message = "unknown setting (a typo?)" if problem["type"] == "extra_forbidden" else problem["msg"]
        lines.append(f"aicn: configuration: {setting}: {message} (in {source} or AICN_* variables)")
    return lines
