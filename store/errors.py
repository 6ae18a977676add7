"""The errors the store raises. Callers catch these, never psycopg's: every psycopg error leaving
the store is translated once, by ``translated``, which the pool's ``connection()`` (``store.db``)
wraps around all the work done on a connection.

    StoreError                the base; raised as itself for a failure no caller handles apart
    ├── DatabaseUnavailable   passing: try the same work again in a moment
    ├── MissingReference      a row names another that does not exist
    ├── Duplicate             a row with the same unique key exists already
    ├── Unstorable            a value no column of its type can ever hold
    └── RowMissing            a statement that yields one row yielded none
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg


class StoreError(Exception):
    """A database operation failed. Raised as itself for a failure that trying again will not
    mend and that no caller handles apart (a bug, most likely); the database's own error is its
    ``__cause__``, and ``reason`` that error's name (``AdminShutdown``, say) for messages that
    must not quote the database's words."""

    # Whether the same work may succeed when tried again: the attribute aiokafka's errors carry,
    # so ``common.faults.is_transient`` reads both alike without importing the store.
    retriable = False

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or type(self).__name__


class DatabaseUnavailable(StoreError):
    """The database could not do the work for a passing reason: the connection was lost, the
    server is restarting or shutting down, no connection came free in time, a transaction lost a
    serialization or deadlock race, or the pool is closing with its process (the work is then for
    the next one). The same work may well succeed when tried again."""

    retriable = True


class MissingReference(StoreError):
    """A row names another that does not exist (a foreign key): an unknown project, say."""


class Duplicate(StoreError):
    """A row with the same unique key exists already."""


class Unstorable(StoreError):
    """A value its column can never hold, such as a NUL character in text or JSON: storing it
    again fails the same way."""


class RowMissing(StoreError):
    """A statement that yields exactly one row (an INSERT ... RETURNING, an aggregate, an UPDATE
    of a row that is never deleted) yielded none: the row went between two statements, or the
    caller named one that never existed. A bug, or a race the caller did not expect."""


def translate(exc: psycopg.Error) -> StoreError:
    """The store's error for a psycopg one, saying what went wrong in the database's words."""
    reason = type(exc).__name__
    return _kind(exc)(f"{reason}: {exc}", reason=reason)


def _kind(exc: psycopg.Error) -> type[StoreError]:
    # The pool's own errors (PoolTimeout, PoolClosed) are OperationalErrors too.
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return DatabaseUnavailable
    if isinstance(exc, pg.ForeignKeyViolation):
        return MissingReference
    if isinstance(exc, pg.UniqueViolation):
        return Duplicate
    if isinstance(exc, psycopg.DataError):
        return Unstorable
    return StoreError


@contextmanager
def translated() -> Iterator[None]:
    """Any psycopg error raised in the block leaves it as the store's error (its cause kept)."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc) from exc
