"""Row reads and writes for the hot paths of a rush, at a fraction of the
ORM's Python cost per statement.

The ORM builds and compiles every statement anew: on our machines an INSERT
through `objects.create` costs about 120 microseconds of Python, a SELECT of
one wide row through `filter().first()` about 370, where the same SQL sent as
it is costs about 40 (PERFORMANCE.md: the statements of checkout start and
payment confirmation are what a rush pays for). Here each statement's SQL is
built once per shape (model, columns, clause, number of rows) and kept;
values are prepared as the ORM prepares them (`Field.pre_save`,
`Field.get_db_prep_save`), and rows come back as model instances
(`Model.from_db`, with the ORM's converters), so services keep working with
their models and their state machines.

What the ORM would add and these do not: model signals (no model of ours
listens to pre_save or post_save) and the default ordering. The clauses are
SQL written by the caller, with every value a parameter. Portable:
PostgreSQL and SQLite (3.35+, for RETURNING); row locks only where the
database has them (SQLite locks the whole database for a writer anyway).

Writes whose answer nobody needs (audit rows, step records, an UPDATE whose
row is locked already) can go to the database with the next statement
instead of on their own: inside a `deferred()` block, `insert_later` and
`execute_later` keep them, and the block sends them in the same round trip
as the next statement of the connection (a psycopg pipeline on PostgreSQL,
in order; SQLite, which has no round trips, runs them one by one just
before it), or at the block's end. Each costs the database a statement but
not a round trip. A deferred write that fails fails the statement it
travels with, so only writes that cannot fail short of a bug (or a
constraint the transaction fails on anyway) are deferred.

On PostgreSQL the parameters are bound on the server and psycopg prepares
the statements it sees repeatedly (config.settings: server_side_binding,
prepare_threshold), so these cached statements are parsed and planned once
per connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any, TypeAlias, TypeVar, cast

from django.db import models, transaction

try:  # PostgreSQL's driver; absent where only SQLite is used
    from psycopg import pq

    _PIPELINE_OFF: Any = pq.PipelineStatus.OFF
    _IDLE: Any = pq.TransactionStatus.IDLE
    _TUPLES_OK: Any = pq.ExecStatus.TUPLES_OK
except ImportError:  # pragma: no cover
    _PIPELINE_OFF = _IDLE = _TUPLES_OK = None
_NOT_PSYCOPG = object()

M = TypeVar("M", bound=models.Model)
Field: TypeAlias = "models.Field[Any, Any]"
Converter = Callable[[Any, Any, Any], Any]
# Per converted column: its index in the row, its Col expression, the converters.
Converters = tuple[tuple[int, Any, tuple[Converter, ...]], ...]


def _fields(model: type[models.Model], names: Sequence[str] | None) -> tuple[Field, ...]:
    meta = model._meta
    if names is None:
        return tuple(cast(Field, f) for f in meta.concrete_fields if not f.primary_key)
    return tuple(cast(Field, meta.get_field(name)) for name in names)


def _quote(name: str | None) -> str:
    return transaction.get_connection().ops.quote_name(str(name))


@contextmanager
def _one_round_trip(connection: Any, *, always: bool = False) -> Iterator[None]:
    """The statements executed inside go to PostgreSQL in one round trip (a
    psycopg pipeline; their results are read when the block ends). Without
    `always`, only when that saves one: the transaction's BEGIN, which psycopg
    would otherwise send alone before the first statement, then goes with
    them. A pipeline inside another adds nothing."""
    pg = connection.connection if connection.vendor == "postgresql" else None
    if pg is None or pg.pgconn.pipeline_status != _PIPELINE_OFF:
        yield
        return
    if not always and (pg.autocommit or pg.info.transaction_status != _IDLE):
        yield
        return
    with connection.wrap_database_errors, pg.pipeline():
        yield


# --- INSERT --------------------------------------------------------------------------


@cache
def _insert_sql(
    model: type[models.Model],
    names: tuple[str, ...] | None,
    rows: int,
    conflict: tuple[str, ...] | None,
    vendor: str,
    returning: bool = True,
) -> tuple[str, tuple[Field, ...]]:
    fields = _fields(model, names)
    columns = ", ".join(_quote(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = f"INSERT INTO {_quote(model._meta.db_table)} ({columns}) VALUES {', '.join([one] * rows)}"  # noqa: S608
    if conflict is not None:
        keys = ", ".join(_quote(cast(Field, model._meta.get_field(name)).column) for name in conflict)
        sql += f" ON CONFLICT {'(' + keys + ') ' if keys else ''}DO NOTHING"
    pk = model._meta.pk
    assert pk is not None
    return (f"{sql} RETURNING {_quote(pk.column)}" if returning else sql), fields


# Fields whose value of exactly these types (or None) the ORM prepares for
# PostgreSQL without looking at it: their pre_save reads the attribute and
# their get_db_prep_save returns the value itself (str() of a str, an aware
# datetime adapted by psycopg) or the same number in psycopg's type for the
# column (Django's Int4 for an IntegerField). Exact classes only: a subclass
# may convert differently.
_SIMPLE: dict[type[Any], type] = {
    **dict.fromkeys((models.CharField, models.TextField, models.EmailField, models.SlugField, models.URLField), str),
    **dict.fromkeys(
        (
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
            models.AutoField,
            models.BigAutoField,
        ),
        int,
    ),
    models.BooleanField: bool,
    models.DateTimeField: datetime,
}
_PROBES: dict[type, Any] = {str: "probe", int: 7, bool: True, datetime: datetime(2000, 1, 1, tzinfo=UTC)}


@cache
def _simple(field: Field, vendor: str) -> tuple[type, Callable[[Any], Any] | None] | None:
    """For a field prepared without the ORM's calls on `vendor`: the value
    type it takes so, and what wraps such a value (None: sent as it is).
    The wrapper is the type the ORM's own preparation returns for a probe."""
    if vendor != "postgresql" or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return None
    target = field.target_field if type(field) is models.ForeignKey else field
    kind = _SIMPLE.get(type(target)) if type(field) in (models.ForeignKey, type(target)) else None
    if kind is None:
        return None
    probe = _PROBES[kind]
    prepared = field.get_db_prep_save(probe, transaction.get_connection())
    wrap: type[Any] = type(prepared)
    if wrap is kind:
        return kind, None
    if kind is int and issubclass(wrap, int) and wrap(probe) == probe:
        return kind, wrap
    return None


def _prepared(field: Field, obj: models.Model, add: bool, connection: Any) -> Any:
    """The value of `field` of `obj` as the ORM would send it in an INSERT
    (`add`) or an UPDATE, without the ORM's conversion calls for the common
    columns and values (_simple)."""
    simple = _simple(field, connection.vendor)
    if simple is not None:
        value: Any = getattr(obj, field.attname)
        if value is None:
            return None
        kind, wrap = simple
        if type(value) is kind and (kind is not datetime or cast(datetime, value).tzinfo is not None):
            return value if wrap is None else wrap(value)
    return field.get_db_prep_save(field.pre_save(obj, add), connection)


def _insert_params(objs: Sequence[models.Model], fields: tuple[Field, ...], connection: Any) -> list[Any]:
    return [_prepared(field, obj, True, connection) for obj in objs for field in fields]


def insert(objs: Sequence[M], *, fields: Sequence[str] | None = None) -> list[M]:
    """INSERT the unsaved `objs` (all of one model) in one statement, as
    `bulk_create` does: `fields` (default: every concrete field but the
    primary key), auto_now timestamps filled in; each object gets its new
    primary key and counts as saved. Returns `objs`."""
    if not objs:
        return list(objs)
    model = type(objs[0])
    connection = transaction.get_connection()
    sql, columns = _insert_sql(model, tuple(fields) if fields is not None else None, len(objs), None, connection.vendor)
    _, ids = execute(sql, _insert_params(objs, columns, connection))
    for obj, (pk,) in zip(objs, ids, strict=True):
        _saved(obj, pk, connection)
    return list(objs)


def _saved(obj: models.Model, pk: Any, connection: Any) -> None:
    """`obj` was inserted with primary key `pk`: it counts as saved."""
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


def insert_later(
    objs: Sequence[models.Model], *, fields: Sequence[str] | None = None, conflict: Sequence[str] | None = None
) -> None:
    """INSERT the unsaved `objs` (all of one model) with the next statement
    (inside `deferred()`; at once outside one). They get no primary key:
    for rows nobody refers to in this transaction. `conflict`: as for
    `insert_unless_exists`, rows that exist already are skipped."""
    if not objs:
        return
    connection = transaction.get_connection()
    sql, columns = _insert_sql(
        type(objs[0]),
        tuple(fields) if fields is not None else None,
        len(objs),
        tuple(conflict) if conflict is not None else None,
        connection.vendor,
        returning=False,  # nobody reads the keys
    )
    execute_later(sql, _insert_params(objs, columns, connection))


def insert_unless_exists(
    obj: models.Model, *, conflict: Sequence[str], fields: Sequence[str] | None = None
) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: the new id (also set on
    `obj`, which then counts as saved), or None (nothing inserted) when a row
    with the same `conflict` columns exists; with no `conflict` columns, when
    the row would break any unique constraint (a partial unique index, say,
    which ON CONFLICT cannot name by its columns alone). One statement where
    get_or_create takes four (SELECT, SAVEPOINT, INSERT, RELEASE), and a
    conflict does not break the caller's transaction."""
    connection = transaction.get_connection()
    sql, columns = _insert_sql(
        type(obj), tuple(fields) if fields is not None else None, 1, tuple(conflict), connection.vendor
    )
    _, found = execute(sql, _insert_params([obj], columns, connection))
    if not found:
        return None
    _saved(obj, found[0][0], connection)
    return int(found[0][0])


# --- UPDATE --------------------------------------------------------------------------


@cache
def _update_sql(model: type[models.Model], names: tuple[str, ...], vendor: str) -> tuple[str, tuple[Field, ...]]:
    fields = _fields(model, names)
    pk = model._meta.pk
    assert pk is not None
    assignments = ", ".join(f"{_quote(f.column)} = %s" for f in fields)
    return f"UPDATE {_quote(model._meta.db_table)} SET {assignments} WHERE {_quote(pk.column)} = %s", fields  # noqa: S608


def _update(obj: models.Model, fields: Sequence[str]) -> tuple[str, list[Any]]:
    """The UPDATE of `obj`'s `fields` and its parameters: auto_now fields
    among them set to now, as save() would."""
    connection = transaction.get_connection()
    sql, columns = _update_sql(type(obj), tuple(fields), connection.vendor)
    params = [_prepared(field, obj, False, connection) for field in columns]
    return sql, [*params, obj.pk]


def save_fields(obj: models.Model, fields: Sequence[str]) -> int:
    """`obj.save(update_fields=fields)` in one cached statement. Returns the
    number of rows updated (0 if the row is gone)."""
    updated, _ = execute(*_update(obj, fields))
    return updated


def save_fields_later(obj: models.Model, fields: Sequence[str]) -> None:
    """`save_fields` with the next statement (inside `deferred()`; at once
    outside one): for a row this transaction holds locked, whose UPDATE
    cannot miss."""
    execute_later(*_update(obj, fields))


# --- SELECT --------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """One model's columns in a hand-written SELECT (or RETURNING): their SQL,
    where they are in the row, how they convert (as the ORM converts them),
    and, for a model joined to another, the relation it is cached under.
    Built once per statement shape (see `columns`)."""

    model: type[models.Model]
    sql: str
    attnames: tuple[str, ...]
    start: int
    converters: Converters
    relation: Field | None = None

    def build(self, row: Sequence[Any], connection: Any = None) -> models.Model:
        """The model instance of this part of `row`, counting as saved."""
        connection = connection or transaction.get_connection()
        values = list(row[self.start : self.start + len(self.attnames)])
        for index, column, functions in self.converters:
            value = values[index]
            for convert in functions:
                value = convert(value, column, connection)
            values[index] = value
        return self.model.from_db(connection.alias, list(self.attnames), values)


def columns(
    model: type[models.Model],
    alias: str,
    fields: Sequence[str] | None = None,
    *,
    start: int = 0,
    relation: Field | None = None,
) -> Columns:
    """`model`'s columns as `alias`.<column> (all concrete fields, or those
    named in `fields`, in the model's order, which Model.from_db expects of
    a partial row), found at `start` in the rows of the statement."""
    connection = transaction.get_connection()
    meta = model._meta
    wanted = None if fields is None else {cast(Field, meta.get_field(name)).attname for name in fields}
    chosen = tuple(cast(Field, f) for f in meta.concrete_fields if wanted is None or f.attname in wanted)
    converters = []
    for index, field in enumerate(chosen):
        column = field.get_col(alias)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if found:
            converters.append((index, column, tuple(found)))
    sql = ", ".join(f"{_quote(alias)}.{_quote(f.column)}" for f in chosen)
    return Columns(model, sql, tuple(f.attname for f in chosen), start, tuple(converters), relation)


@cache
def _select_sql(
    model: type[models.Model],
    names: tuple[str, ...] | None,
    related: tuple[str, ...],
    annotations: tuple[tuple[str, str], ...],
    where: str,
    lock: str,
    vendor: str,
) -> tuple[str, tuple[Columns, ...], tuple[str, ...]]:
    connection = transaction.get_connection()
    meta = model._meta
    table = meta.db_table
    main = columns(model, table, names)
    selected, parts, joins = [main.sql], [main], []
    offset = len(main.attnames)
    for name in related:
        relation = cast(Field, meta.get_field(name))
        target = cast(type[models.Model], relation.related_model)
        part = columns(target, name, start=offset, relation=relation)
        selected.append(part.sql)
        parts.append(part)
        offset += len(part.attnames)
        target_pk = target._meta.pk
        assert target_pk is not None
        kind = "LEFT JOIN" if relation.null else "JOIN"
        joins.append(
            f"{kind} {_quote(target._meta.db_table)} {_quote(name)} "
            f"ON {_quote(name)}.{_quote(target_pk.column)} = {_quote(table)}.{_quote(relation.column)}"
        )
    selected += [f"{expression} AS {_quote(name)}" for name, expression in annotations]
    sql = f"SELECT {', '.join(selected)} FROM {_quote(table)} {' '.join(joins)} WHERE {where}"  # noqa: S608
    if lock and connection.features.has_select_for_update:
        sql += f" {lock}"
    return sql, tuple(parts), tuple(name for name, _ in annotations)


@dataclass(frozen=True)
class Query:
    """A SELECT of `select`, ready to run: alone (`select`) or with others in
    one round trip (`select_together`)."""

    sql: str
    params: list[Any]
    parts: tuple[Columns, ...]
    names: tuple[str, ...]

    def build(self, found: Sequence[Sequence[Any]], connection: Any) -> list[Any]:
        main, joined = self.parts[0], self.parts[1:]
        width = self.parts[-1].start + len(self.parts[-1].attnames)
        objs = []
        for row in found:
            obj = main.build(row, connection)
            for part in joined:
                assert part.relation is not None
                other = part.build(row, connection) if row[part.start] is not None else None
                part.relation.set_cached_value(obj, other)  # type: ignore[attr-defined]
            for index, name in enumerate(self.names):
                setattr(obj, name, row[width + index])
            objs.append(obj)
        return objs


def query(
    model: type[models.Model],
    where: str,
    params: Iterable[Any] = (),
    *,
    fields: Sequence[str] | None = None,
    related: Sequence[str] = (),
    annotate: Mapping[str, str] | None = None,
    lock: bool = False,
    no_key: bool = False,
    lock_related: bool = False,
    lock_of: Sequence[str] = (),
) -> Query:
    """The rows of `model` matching `where`, as model instances with `fields`
    loaded (default: all; the others are deferred), once run.

    `where` is SQL, values as %s parameters; it may end with ORDER BY or
    LIMIT. The table is named by its db_table ("ticketing_order"."code"),
    bare column names do where nothing is joined. `related`: forward foreign
    keys to load in the same statement, as select_related does; each joined
    table is named after its field ("event"."currency"). `annotate`: extra
    SELECT expressions by attribute name (SQL without parameters, such as an
    EXISTS correlated to the row). `lock`: FOR UPDATE (FOR NO KEY UPDATE
    with `no_key`) of the model's rows, and of the joined rows too with
    `lock_related`, or of just the tables named in `lock_of` ("self" or
    names in `related`); only where the database has row locks."""
    connection = transaction.get_connection()
    if lock:
        assert connection.in_atomic_block, "a row lock needs a transaction"
    lock_clause = ""
    if lock:
        if lock_of:
            tables = [model._meta.db_table if name == "self" else name for name in lock_of]
        else:
            tables = [model._meta.db_table] + (list(related) if lock_related else [])
        of = ", ".join(_quote(name) for name in tables)
        lock_clause = f"{'FOR NO KEY UPDATE' if no_key else 'FOR UPDATE'} OF {of}"
    sql, parts, names = _select_sql(
        model,
        tuple(fields) if fields is not None else None,
        tuple(related),
        tuple((annotate or {}).items()),
        where,
        lock_clause,
        connection.vendor,
    )
    return Query(sql, list(params), parts, names)


def select(model: type[M], where: str, params: Iterable[Any] = (), **options: Any) -> list[M]:
    """Run `query(model, where, params, **options)`: see there."""
    return cast(list[M], select_together(query(model, where, params, **options))[0])


def select_together(*queries: Query) -> list[list[Any]]:
    """Run `queries` in order, in one round trip on PostgreSQL (see
    `execute_together`), and return the instances each found."""
    connection = transaction.get_connection()
    found = execute_together(*((q.sql, q.params) for q in queries))
    return [q.build(rows, connection) for q, (_, rows) in zip(queries, found, strict=True)]


Result = tuple[int, list[tuple[Any, ...]]]


def execute(sql: str, params: Sequence[Any] = ()) -> Result:
    """Run one hand-written statement (the transaction's BEGIN, if it is
    due, goes with it); its row count and the rows it returned."""
    return execute_together((sql, params))[0]


def execute_together(*statements: tuple[str, Sequence[Any]]) -> list[Result]:
    """Run `statements` in order, in one round trip on PostgreSQL (a
    pipeline: the database still runs each on its own, with its own
    snapshot, so a read after a locking read sees what the lock waited for);
    the row count and rows of each."""
    connection = transaction.get_connection()
    cursors = [connection.cursor() for _ in statements]
    try:
        with _one_round_trip(connection, always=len(statements) > 1):
            for db, (sql, params) in zip(cursors, statements, strict=True):
                db.execute(sql, list(params))
        return [(int(db.rowcount), db.fetchall() if _returned_rows(db) else []) for db in cursors]
    finally:
        for db in cursors:
            db.close()


def _returned_rows(db: Any) -> bool:
    """Whether the statement run on `db` returned rows (perhaps none). On
    PostgreSQL from its result's status: `description` would build a column
    object per column of every row read."""
    result: Any = getattr(db.cursor, "pgresult", _NOT_PSYCOPG)
    if result is _NOT_PSYCOPG:
        return db.description is not None
    return result is not None and result.status == _TUPLES_OK


def select_one(model: type[M], where: str, params: Iterable[Any] = (), **options: Any) -> M | None:
    """The first row `select` finds, or None."""
    found = select(model, where, params, **options)
    return found[0] if found else None


def from_values(model: type[M], values: Mapping[str, Any]) -> M:
    """A model instance for a row read by other means (a subquery's columns,
    say), by attribute name (any order; the fields left out are deferred),
    counting as saved. No converters run: the values are as Python wants them."""
    connection = transaction.get_connection()
    # Model.from_db takes the values in the model's field order.
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    unknown = set(values) - set(names)
    assert not unknown, f"not columns of {model.__name__}: {sorted(unknown)}"
    return model.from_db(connection.alias, names, [values[name] for name in names])


# --- writes sent with the next statement -------------------------------------------

_pending: ContextVar[list[tuple[str, list[Any]]] | None] = ContextVar("rows_pending", default=None)


def execute_later(sql: str, params: Sequence[Any] = ()) -> None:
    """Run `sql` (a write whose answer nobody needs) with the next statement
    of the connection, inside `deferred()`; at once outside one."""
    pending = _pending.get()
    if pending is None:
        execute(sql, params)
    else:
        pending.append((sql, list(params)))


@contextmanager
def deferred() -> Iterator[None]:
    """Inside a transaction: writes made with `insert_later` and
    `execute_later` travel with the next statement, and whatever is left is
    sent when the block ends (before the transaction commits). Nested blocks
    are part of the outermost one. A savepoint rolled back discards what was
    deferred since the last statement, which all belongs to it (entering
    the savepoint was a statement too)."""
    connection = transaction.get_connection()
    assert connection.in_atomic_block, "deferred writes need the transaction they belong to"
    if _pending.get() is not None:
        yield
        return
    pending: list[tuple[str, list[Any]]] = []
    token = _pending.set(pending)
    try:
        with connection.execute_wrapper(partial(_send_with, pending)):
            yield
            if pending:
                _send(connection, pending)
    finally:
        _pending.reset(token)
        pending.clear()


def _send(connection: Any, pending: list[tuple[str, list[Any]]], then: Callable[[], Any] | None = None) -> Any:
    """The pending writes, then `then()` (the statement they travel with),
    in one round trip on PostgreSQL: a pipeline, each statement on its own
    (and prepared as any other). SQLite runs them one by one."""
    statements = pending[:]
    pending.clear()
    with connection.cursor() as db, _one_round_trip(connection, always=True):
        for sql, params in statements:
            db.execute(sql, params)
        return then() if then is not None else None


def _send_with(
    pending: list[tuple[str, list[Any]]],
    execute: Callable[..., Any],
    sql: str,
    params: Any,
    many: bool,
    context: Mapping[str, Any],
) -> Any:
    """The connection's execute wrapper inside `deferred()`: the pending
    writes go first, in the same round trip."""
    if not pending:
        return execute(sql, params, many, context)
    if sql.lstrip().upper().startswith("ROLLBACK"):
        # Everything pending was deferred inside the savepoint (or
        # transaction) being rolled back: it never happened.
        pending.clear()
        return execute(sql, params, many, context)
    return _send(context["connection"], pending, lambda: execute(sql, params, many, context))


# --- commits that do not wait for the disk ------------------------------------------


def lazy_commit_statements() -> list[tuple[str, list[Any]]]:
    """The statement that lets the current transaction's COMMIT return before
    its WAL reaches the disk (PostgreSQL's `synchronous_commit = off` for
    this transaction only), to send with the transaction's first statement,
    inside an outermost `atomic` block; none elsewhere (inside a caller's
    transaction, which would all become lazy, or on SQLite).

    Only for writes whose loss in a database crash harms nobody, or that
    are made durable before anyone is told of them: the WAL is one sequence,
    so the next synchronous commit of any transaction (or `flush_commits`)
    makes every commit before it durable too. A flush of the WAL is about a
    tenth of an order's time, and a web process waiting on it is a CPU left
    idle."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or len(connection.atomic_blocks) != 1:
        return []
    return [("SET LOCAL synchronous_commit TO OFF", [])]


def lazy_commit_from() -> str:
    """For a statement run on its own (autocommit: it is its own
    transaction), a FROM clause that makes that transaction's commit lazy in
    the same round trip: `set_config(..., true)` lasts until the statement's
    implicit commit. Empty inside a caller's transaction, which would all
    become lazy, and on SQLite. The same rule as `lazy_commit_statements`."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return ""
    return " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS lazy_commit"


def flush_commits() -> None:
    """Return once every transaction committed so far is on disk: a
    transaction with an id of its own, committed synchronously, waits for
    the WAL up to its commit. Raises the database's error when it is down:
    a lazy commit before it may then be lost, and the caller must not say
    it was made."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return  # nothing lazy on SQLite; inside a transaction, its own commit is the flush
    with transaction.atomic():
        execute("SELECT pg_current_xact_id()")
