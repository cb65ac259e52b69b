"""INSERT ... ON CONFLICT DO NOTHING RETURNING id, for rows keyed by a
natural unique key (an outbox dedup key, a provider's event id).

Where get_or_create takes four statements in a transaction (SELECT,
SAVEPOINT, INSERT, RELEASE), this takes one, and a conflict does not break
the caller's transaction. PostgreSQL and SQLite (3.35+) both speak it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django.db import models, transaction


def insert_unless_exists(
    instance: models.Model, *, conflict: Sequence[str], fields: Sequence[str] | None = None
) -> int | None:
    """Insert `instance`'s `fields` (by default every concrete field but the
    primary key); return the new id (also set on the instance, which then
    counts as saved), or None (and insert nothing) when a row with the same
    `conflict` columns exists; with no `conflict` columns, when the row would
    break any unique constraint (a partial unique index, say, which ON
    CONFLICT cannot name by its columns alone). An auto_now / auto_now_add timestamp left
    unset is filled in, as save() would."""
    connection = transaction.get_connection()
    meta = instance._meta
    columns: list[models.Field[Any, Any]] = (
        [cast("models.Field[Any, Any]", meta.get_field(name)) for name in fields]
        if fields is not None
        else [f for f in meta.concrete_fields if not f.primary_key]
    )
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    names = ", ".join(quote(f.column) for f in columns)
    keys = ", ".join(quote(meta.get_field(name).column) for name in conflict)  # type: ignore[union-attr]
    target = f"({keys}) " if keys else ""
    values = ", ".join(["%s"] * len(columns))
    # Identifiers come from the model's meta; every value is a parameter.
    sql = f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT {target}DO NOTHING RETURNING id"  # noqa: S608
    params: list[Any] = [f.get_db_prep_save(_value(instance, f), connection) for f in columns]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    instance.pk = row[0]
    instance._state.adding = False
    return int(row[0])


def _value(instance: models.Model, field: models.Field[Any, Any]) -> Any:
    value = getattr(instance, field.attname)
    if value is None and (getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)):
        value = field.pre_save(instance, add=True)  # sets the attribute too
    return value
