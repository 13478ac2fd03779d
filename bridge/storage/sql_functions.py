"""SQL functions both backends answer alike, each compiled to its dialect's own spelling."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction


class octet_length(GenericFunction[int]):
    """Bytes of a text value: PostgreSQL's octet_length, SQLite's length of the text as a blob."""

    type = sa.Integer()
    inherit_cache = True


@compiles(octet_length, "sqlite")
def _octet_length_sqlite(element: octet_length, compiler: Any, **kw: Any) -> str:
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


class epoch_seconds(GenericFunction[float]):
    """Seconds since 1970 of a UtcDateTime, as a float to the microsecond on both backends: a report reads
    many instants as numbers instead of building a datetime of each."""

    type = sa.Float()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_seconds_postgresql(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # date_part, not EXTRACT: since PostgreSQL 14 EXTRACT answers a numeric, several times slower to compute.
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores "YYYY-MM-DD HH:MM:SS.ffffff" (UTC): whole seconds, then the six digits after the point.
    value = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {value}) AS REAL) + CAST(substr({value}, 21, 6) AS REAL) / 1000000.0)"
