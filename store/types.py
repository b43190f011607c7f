"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, DateTime, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from store.resources import ResourceRequest

#: an auto-incrementing primary key: BIGINT on PostgreSQL, INTEGER PRIMARY KEY on SQLite
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: JSON documents: JSONB on PostgreSQL
Document = JSON().with_variant(JSONB(), "postgresql")


class RequestDocument(TypeDecorator[ResourceRequest]):
    """A ``ResourceRequest`` kept as its JSON document (the ``Document`` column, unchanged)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: ResourceRequest | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else value.to_document()

    def process_result_value(self, value: Any, dialect: Dialect) -> ResourceRequest | None:
        return None if value is None else ResourceRequest.from_document(value)


_E = TypeVar("_E", bound=enum.StrEnum)


class EnumString(TypeDecorator[_E]):
    """A str enum kept as its value in a VARCHAR: members (or their strings) in, members out."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[_E], length: int) -> None:
        super().__init__(length)
        self.enum_class = enum_class
        self.length = length

    def process_bind_param(self, value: _E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_class(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> _E | None:
        if value is None:
            return None
        return self.enum_class(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Fixed(TypeDecorator[Decimal]):
    """Exact decimals with a fixed scale: NUMERIC(precision, scale) on PostgreSQL, and on
    SQLite (which has no decimal type and would store floats) an INTEGER count of
    ``10**-scale`` units, so that SUM and ``+`` stay exact there too.

    Values with more decimals than the scale are refused rather than rounded.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 20, scale: int = 6) -> None:
        super().__init__(precision, scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = Decimal(value)
        if not exact.is_finite() or exact != exact.quantize(self._quantum):
            raise ValueError(f"{value!r} is not an exact decimal with at most {self.scale} places")
        if dialect.name == "sqlite":
            return int(exact.scaleb(self.scale))
        return exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale).quantize(self._quantum)
        return Decimal(value).quantize(self._quantum)
