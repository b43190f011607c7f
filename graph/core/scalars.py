"""Scalars beyond strawberry's own: BigInt (64-bit safe, a string on the wire) and Decimal
written in fixed-point notation (``0.000000889``, never ``8.89E-7``)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

__all__ = ["JSON", "SCALAR_MAP", "BigInt"]

BigInt = NewType("BigInt", int)
#: ASCII digits only (`str.isdigit` accepts `²`, which `int()` refuses); 20 digits is past 64 bits
_INTEGER = re.compile(r"-?[0-9]{1,20}")


def _parse_big_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("BigInt must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise ValueError("BigInt must be an integer or a string of digits")
    if not -(2**63) <= number < 2**63:
        raise ValueError("BigInt must fit in 64 bits")
    return number


def fixed_point(value: Decimal) -> str:
    """A decimal's digits without exponent notation, at the scale it carries (money 6 places, quantities 9)."""
    return format(value, "f")


def _parse_decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("Decimal must be a string of digits")
    try:
        return Decimal(str(value))
    except InvalidOperation as error:
        raise ValueError(f"{value!r} is not a decimal number") from error


SCALAR_MAP: dict[object, ScalarDefinition] = {
    Decimal: strawberry.scalar(
        name="Decimal",
        serialize=fixed_point,
        parse_value=_parse_decimal,
        description="Decimal (fixed-point): an exact decimal as a string, never in exponent notation; money has 6 places, quantities 9.",
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        serialize=str,
        parse_value=_parse_big_int,
        description="A 64-bit integer, sent as a string so that JSON clients never lose digits.",
    ),
}
