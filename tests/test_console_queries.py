"""Every operation the console sends (web/src/console/queries.ts) is valid against the served schema."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import build_schema, parse, validate

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "web" / "src" / "console" / "queries.ts"


def console_operations() -> dict[str, str]:
    constants = dict(re.findall(r"const (\w+) = (?:/\* GraphQL \*/ )?`([^`]*)`", QUERIES.read_text()))
    expand = lambda text: re.sub(r"\$\{(\w+)\}", lambda match: constants[match.group(1)], text)  # noqa: E731
    return {name: expand(text) for name, text in constants.items() if re.search(r"^\s*(query|mutation|subscription)\b", text)}


def test_every_console_operation_is_valid_against_the_schema() -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text())
    operations = console_operations()
    assert len(operations) >= 12, sorted(operations)
    for name, text in operations.items():
        errors = validate(schema, parse(text))
        assert not errors, f"{name}: {[error.message for error in errors]}"
