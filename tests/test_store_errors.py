"""The store's errors, on a real PostgreSQL: what fails on a pool's connection leaves its block as
the store's error (never psycopg's), a passing failure as ``DatabaseUnavailable``, which the
consumers retry and the gateway answers 503."""

from __future__ import annotations

import psycopg
import pytest

from common.apikeys import generate_api_key
from common.faults import is_transient
from store.db import Pool, open_pool
from store.destinations import add_destination
from store.errors import DatabaseUnavailable, Duplicate, MissingReference, RowMissing, StoreError, Unstorable
from store.projects import add_api_key, get_project, update_project
from tests.conftest import ProjectKey


async def test_a_connection_the_server_ends_fails_as_database_unavailable_and_the_pool_recovers(
        pool: Pool, project: ProjectKey) -> None:
    with pytest.raises(DatabaseUnavailable) as raised:
        async with pool.connection() as conn, pool.connection() as other:
            row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
            assert row is not None
            await other.execute("SELECT pg_terminate_backend(%s)", (row["pid"],))
            await get_project(conn, project.project_id)
    # AdminShutdown, or the connection lost, as the terminated backend tells it
    assert isinstance(raised.value.__cause__, psycopg.OperationalError)
    assert is_transient(raised.value)

    async with pool.connection() as conn:
        assert await get_project(conn, project.project_id) is not None


async def test_no_connection_free_in_time_is_database_unavailable(database_url: str) -> None:
    pool = await open_pool(database_url, max_size=1, wait_seconds=0.2)
    try:
        async with pool.connection():
            with pytest.raises(DatabaseUnavailable, match="PoolTimeout") as raised:
                async with pool.connection():
                    pass
        assert raised.value.reason == "PoolTimeout"
    finally:
        await pool.close()


async def test_a_unique_key_taken_is_a_duplicate_that_retrying_would_not_mend(
        pool: Pool, project: ProjectKey) -> None:
    key = generate_api_key()
    async with pool.connection() as conn:
        await add_api_key(conn, project.project_id, "first", key)
    with pytest.raises(Duplicate, match="UniqueViolation") as raised:
        async with pool.connection() as conn:
            await add_api_key(conn, project.project_id, "second", key)
    assert not is_transient(raised.value)


async def test_a_row_naming_an_unknown_project_is_a_missing_reference(pool: Pool) -> None:
    with pytest.raises(MissingReference, match="ForeignKeyViolation"):
        async with pool.connection() as conn:
            await add_destination(conn, "prj_nosuchproject", "email", "ops@example.com")


async def test_a_value_no_column_can_hold_is_unstorable(pool: Pool, project: ProjectKey) -> None:
    with pytest.raises(Unstorable):
        async with pool.connection() as conn:
            await add_destination(conn, project.project_id, "email", "ops\x00@example.com")


async def test_a_row_that_must_be_there_and_is_not_is_row_missing_naming_it(pool: Pool) -> None:
    # Projects are never deleted, so updating one the caller has not read is the caller's bug.
    changed: list[dict[str, object]] = [{"name": "renamed"}, {}]
    for changes in changed:
        with pytest.raises(RowMissing, match="project prj_nosuchproject") as raised:
            async with pool.connection() as conn:
                await update_project(conn, "prj_nosuchproject", changes)
        assert not is_transient(raised.value)


async def test_any_other_database_error_is_a_store_error_and_errors_of_the_caller_pass_unchanged(
        pool: Pool) -> None:
    with pytest.raises(StoreError, match="UndefinedTable") as raised:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1 FROM no_such_table")
    assert type(raised.value) is StoreError and not is_transient(raised.value)

    with pytest.raises(KeyError):
        async with pool.connection():
            raise KeyError("not the database's")
