"""Running a batch's SQL fast: Core statements compiled once, and on PostgreSQL sent several to a
round trip on the raw psycopg connection.

The alert intake runs about ten statements per batch of notifications. Through SQLAlchemy's
``Connection.execute`` each costs CPU around the database's own work (the compiled cache lookup,
bind and result processing, events), and on PostgreSQL each also waits for its own round trip;
in the intake benchmark that was most of warroom's CPU per notification beyond the bare
baseline's (bench/README.md). `Statements` runs them on the session's own connection, in its transaction:

* SQLite (in process: no round trips) through SQLAlchemy, as before;
* PostgreSQL through psycopg directly. SQLAlchemy compiles each statement once to psycopg's SQL,
  with its type casts; JSON parameters are serialised here, as SQLAlchemy's JSON type would.
  Inside `pipeline` a statement is sent without waiting for its answer (psycopg's pipeline mode):
  answers are read when a result is asked for, so statements nobody waits for share one round
  trip. Statements that SQLAlchemy runs cannot be mixed into a pipeline (SQLAlchemy reads each
  result at once, before psycopg has it): close the pipeline first.

Errors come back as SQLAlchemy's exceptions, as from ``Connection.execute``, and a connection
that broke is invalidated, so callers handle both paths alike (a 503 when the database is down).
No Python-side column defaults are applied on PostgreSQL: a statement whose compiled form needs
them is refused, so each caller names every column it sets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, cast

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import JSON, Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

Params = dict[str, Any]


class JsonText(str):
    """A JSON column's value already serialised (e.g. by pydantic's ``model_dump_json``, which is
    several times faster than ``json.dumps`` of a ``model_dump``): `Statements.insert_rows` stores
    the text as it is instead of serialising it again. Every row must give such a column as
    ``JsonText`` when the first row does."""


class Later:
    """A statement's result, read from the database when first asked for. Inside a pipeline,
    asking waits for the answers to everything sent so far."""

    def __init__(self, rows: list[Any] | None = None, count: int = -1, cursor: psycopg.Cursor[Any] | None = None,
                 owner: Statements | None = None) -> None:
        self._rows, self._count, self._cursor, self._owner = rows, count, cursor, owner

    def rows(self) -> list[Any]:
        """The rows (with attribute access, like SQLAlchemy's), in the order the database gave
        them; none for a statement that returns none."""
        if self._rows is None:
            assert self._cursor is not None and self._owner is not None
            self._answered()
            try:
                self._rows = self._cursor.fetchall() if self._cursor.description is not None else []
            except psycopg.Error as exc:
                raise self._owner.translated(exc) from exc
        return self._rows

    def count(self) -> int:
        """How many rows the statement matched (an UPDATE's rowcount); -1 for an executemany."""
        if self._count < 0 and self._cursor is not None:
            self._answered()
            self._count = self._cursor.rowcount
        return self._count

    def _answered(self) -> None:
        assert self._cursor is not None and self._owner is not None
        if self._cursor.pgresult is None:  # sent in a pipeline, not answered yet
            self._owner.wait()


class Statements:
    """The statements of one transaction: that of ``conn`` (a session's ``connection()``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        # On PostgreSQL the DBAPI connection is psycopg's (SQLAlchemy types it as the generic DBAPI one).
        self._raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection) if self.postgres else None
        self._pipeline: psycopg.Pipeline | None = None

    def execute(self, stmt: Executable, params: Params | Sequence[Params] | None = None) -> Later:
        """Run ``stmt`` with one set of ``params`` (its rows come back) or a list of them, all with
        the same keys (an executemany: no rows). On PostgreSQL inside `pipeline` it is only sent."""
        if not self.postgres:
            result = self.conn.execute(stmt, params if isinstance(params, dict) or params is None else list(params))
            return Later(list(result) if result.returns_rows else [], count=result.rowcount)
        many = params is not None and not isinstance(params, dict)
        rows: list[Params] = [params or {}] if params is None or isinstance(params, dict) else list(params)
        sql, json_params, fixed = _postgres_sql(stmt, tuple(sorted(rows[0])) if rows else ())
        return self._send(sql, [_bind(row, json_params, fixed) for row in rows], many)

    def insert_rows(self, table: Table, rows: Sequence[Params], *, conflict: tuple[str, ...] = (),
                    update: tuple[str, ...] = (), returning: tuple[str, ...] = ("id",)) -> Later:
        """Insert ``rows`` (all with the same keys) in one statement, in list order: ``INSERT …
        [ON CONFLICT (conflict) DO NOTHING, or DO UPDATE SET each column of ``update`` to its new
        value] RETURNING returning``. The rows it inserted or updated come back, in no promised order.

        PostgreSQL gets ``INSERT … SELECT … FROM unnest(…)``, one array parameter per column, so the
        SQL text is the same for any number of rows: psycopg converts it once and the server prepares
        it once. A multi-row VALUES list is a new statement for every row count, and past 50
        parameters psycopg re-parses its text on every call (a third of the intake's CPU in batches
        of 8 notifications). SQLite, in process, gets the VALUES list.

        Rows must name every column they mean to set: on PostgreSQL a column left out gets NULL or
        its server default, never the model's Python-side default (SQLAlchemy applies those only to
        the VALUES form); tests/incidents/test_raw_insert_defaults.py fails when a model gains one that a raw
        insert leaves out. `bot.store.db.insert_or_ignore` keeps SQLAlchemy's statement for single rows.
        """
        if not rows:
            return Later([])
        if not self.postgres:
            as_text = tuple(name for name, value in rows[0].items() if isinstance(value, JsonText))
            stmt = _values_insert(table, conflict, update, returning, as_text)
            return Later(list(self.conn.execute(stmt, rows[0] if len(rows) == 1 else list(rows))))
        columns = tuple(rows[0])
        return self._send(_unnest_insert(table, columns, conflict, update, returning), [_arrays(table, columns, rows)],
                          many=False)

    def update_rows(self, table: Table, rows: Sequence[Params]) -> None:
        """Set each row's columns (all rows with the same keys) on the row with its ``id``.

        PostgreSQL gets one ``UPDATE … FROM unnest(…)`` for all of them, as `insert_rows` does,
        instead of a statement per row; SQLite an executemany."""
        if not rows:
            return
        columns = tuple(name for name in rows[0] if name != "id")
        if not self.postgres:
            self.conn.execute(_executemany_update(table, columns), [{f"{name}_": value for name, value in row.items()}
                                                                     for row in rows])
            return
        self._send(_unnest_update(table, columns), [_arrays(table, ("id", *columns), rows)], many=False)

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """PostgreSQL: statements run inside are sent without waiting for their answers; leaving
        waits for all of them. Elsewhere (or with a libpq older than 14, which has no pipeline
        mode), each statement waits for its answer as usual."""
        if self._raw is None or not psycopg.Pipeline.is_supported():
            yield
            return
        try:
            with self._raw.pipeline() as self._pipeline:
                yield
        except psycopg.Error as exc:
            raise self.translated(exc) from exc
        finally:
            self._pipeline = None
            if self._raw.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF:
                # An error can leave libpq in pipeline mode while psycopg thinks it left
                # (psycopg/psycopg#929): the pool's next ping on it fails with "not in pipeline
                # mode". Such a connection is not handed out again.
                self.conn.invalidate()

    def wait(self) -> None:
        """Wait for the answers to everything sent (nothing to do outside a pipeline)."""
        if self._pipeline is not None:
            try:
                self._pipeline.sync()
            except psycopg.Error as exc:
                raise self.translated(exc) from exc

    def translated(self, exc: psycopg.Error) -> DBAPIError:
        """``exc`` as SQLAlchemy would raise it; a connection it broke is invalidated, so the pool
        drops it instead of handing it out again."""
        broken = bool(self._raw is not None and self._raw.broken)
        if broken:
            self.conn.invalidate(exc)
        translated = DBAPIError.instance(None, None, exc, psycopg.Error, connection_invalidated=broken,
                                         dialect=self.conn.dialect)
        assert isinstance(translated, DBAPIError)  # typed as StatementError; a DBAPI exception gives a DBAPIError
        return translated

    def _send(self, sql: str, values: list[Params], many: bool) -> Later:
        assert self._raw is not None
        cursor = self._raw.cursor(row_factory=namedtuple_row)  # a cursor each: a pipeline holds each one's answer
        try:
            if many:
                cursor.executemany(sql, values)
            else:
                cursor.execute(sql, values[0])
        except psycopg.Error as exc:
            raise self.translated(exc) from exc
        if many:
            return Later([])  # an executemany's count is not kept
        return Later(cursor=cursor, owner=self)


def _bind(row: Params, json_params: frozenset[str], fixed: Params) -> Params:
    values = {**fixed, **row} if fixed else dict(row)
    for name in json_params:
        values[name] = json.dumps(values[name])
    return values


@lru_cache(maxsize=128)
def _postgres_sql(stmt: Executable, keys: tuple[str, ...]) -> tuple[str, frozenset[str], Params]:
    """``stmt`` in psycopg's SQL for parameters ``keys``, the parameters to serialise as JSON, and
    the values the statement itself holds (literals in its clauses)."""
    from sqlalchemy.dialects.postgresql import psycopg

    assert isinstance(stmt, ClauseElement)  # an Executable that compiles: every statement here is Core's
    compiled = stmt.compile(dialect=psycopg.dialect(), column_keys=list(keys))
    assert isinstance(compiled, SQLCompiler)
    defaulted = [c.name for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
    if defaulted:
        raise ValueError(f"give {', '.join(defaulted)}: Python-side column defaults are not applied here")
    json_params = frozenset(name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON))
    fixed = {name: bind.value for name, bind in compiled.binds.items()
             if name not in keys and not bind.required and f"%({name})s" in compiled.string}
    return compiled.string, json_params, fixed


def _arrays(table: Table, columns: tuple[str, ...], rows: Sequence[Params]) -> Params:
    """The parameters of `_unnest_columns`: one list per column, JSON values serialised (those
    given as `JsonText` already are)."""
    return {f"c{i}": [_json_text(row[name]) for row in rows] if isinstance(table.c[name].type, JSON)
            else [row[name] for row in rows] for i, name in enumerate(columns)}


def _json_text(value: Any) -> str:
    return value if isinstance(value, JsonText) else json.dumps(value)


def _unnest_columns(table: Table, columns: tuple[str, ...]) -> str:
    """``unnest(%(c0)b::type[], …)``: the rows as one binary array parameter per column."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    arrays = ", ".join(f"%(c{i})b::{table.c[name].type.compile(dialect=dialect)}[]" for i, name in enumerate(columns))
    return f"unnest({arrays})"


def _quote(name: str) -> str:
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect().identifier_preparer.quote_identifier(name)


@lru_cache(maxsize=64)
def _unnest_insert(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...], update: tuple[str, ...],
                   returning: tuple[str, ...]) -> str:
    names = ", ".join(map(_quote, columns))
    sql = (f"INSERT INTO {_quote(table.name)} ({names}) SELECT {names} FROM {_unnest_columns(table, columns)} "
           f"WITH ORDINALITY AS row_ ({names}, row_number_) ORDER BY row_number_")
    if update:
        sets = ", ".join(f"{_quote(name)} = EXCLUDED.{_quote(name)}" for name in update)
        sql += f" ON CONFLICT ({', '.join(map(_quote, conflict))}) DO UPDATE SET {sets}"
    elif conflict:
        sql += f" ON CONFLICT ({', '.join(map(_quote, conflict))}) DO NOTHING"
    return sql + f" RETURNING {', '.join(map(_quote, returning))}"


@lru_cache(maxsize=64)
def _unnest_update(table: Table, columns: tuple[str, ...]) -> str:
    names = ", ".join(map(_quote, ("id", *columns)))
    sets = ", ".join(f"{_quote(name)} = row_.{_quote(name)}" for name in columns)
    return (f"UPDATE {_quote(table.name)} SET {sets} FROM {_unnest_columns(table, ('id', *columns))} AS row_ ({names}) "
            f"WHERE {_quote(table.name)}.id = row_.id")


@lru_cache(maxsize=64)
def _executemany_update(table: Table, columns: tuple[str, ...]) -> Any:
    from sqlalchemy import bindparam, update

    # Bind names differ from the column names: SQLAlchemy keeps a column's own name for its SET.
    return (update(table).where(table.c.id == bindparam("id_"))
            .values({name: bindparam(f"{name}_") for name in columns}))


@lru_cache(maxsize=64)
def _values_insert(table: Table, conflict: tuple[str, ...], update: tuple[str, ...],
                   returning: tuple[str, ...], as_text: tuple[str, ...] = ()) -> Insert:
    from sqlalchemy import Text, bindparam
    from sqlalchemy.dialects.sqlite import insert

    stmt = insert(table)
    if as_text:  # `JsonText` columns: bound as text, so the JSON type does not serialise them again
        stmt = stmt.values({name: bindparam(name, type_=Text) for name in as_text})
    if update:
        stmt = stmt.on_conflict_do_update(index_elements=list(conflict),
                                          set_={name: stmt.excluded[name] for name in update})
    elif conflict:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
    return stmt.returning(*(table.c[name] for name in returning))

