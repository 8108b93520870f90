"""Purge contract on SQLite and PostgreSQL: every batch starts at its cursor in the index.

The purge (storage/retention.py) walks expired rows of each table as a keyset over
``(delete_after, primary key)``. That stays linear only if the database seeks to the
cursor in ``ix_<table>_expiry`` instead of reading from the start and filtering: on
PostgreSQL the index entries of rows earlier batches deleted stay until VACUUM, so a
filter would read them again for every batch (1,000,000 rows took 75-100 s that way).
Each backend's plan must show the cursor as an index bound.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete

from storage.db import Database
from storage.models import Base
from storage.retention import TABLES, _chosen, _expired

NOW = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def _model(table: str) -> Any:
    for mapper in Base.registry.mappers:
        if mapper.local_table.name == table:
            return mapper.class_
    raise LookupError(table)


def _cursor(model: Any) -> tuple[Any, ...]:
    """A cursor value of the right type for each column of the keyset."""
    pk = list(model.__table__.primary_key.columns)
    return (NOW, *(1 if c.type.python_type is int else "m" for c in pk))


@pytest.mark.parametrize("statement", ["page", "boundary", "delete"])
@pytest.mark.parametrize("table", TABLES)
async def test_each_batch_seeks_to_its_cursor(db: Database, table: str, statement: str) -> None:
    """The page (rows a batch handles), the boundary (the next cursor) and the batch's
    DELETE each start at the cursor in the expiry index."""
    model = _model(table)
    after = _cursor(model)
    stmt = {
        "page": lambda: _expired(model, NOW, after).limit(500),
        "boundary": lambda: _expired(model, NOW, after).offset(499).limit(1),
        "delete": lambda: delete(model).where(_chosen(model, NOW, after, 500)),
    }[statement]()
    async with db.engine.connect() as conn:
        compiled = stmt.compile(conn.sync_connection)
        params, processors = compiled.construct_params(), compiled._bind_processors
        bound = tuple(
            processors[k](params[k]) if k in processors else params[k]
            for k in compiled.positiontup or ()
        )
        if db.is_sqlite:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", bound)
            plan = " ".join(str(r[-1]) for r in rows)
            # e.g. SEARCH t USING COVERING INDEX ix_t_expiry ((delete_after,id)>(?,?) AND ...);
            # with an INTEGER PRIMARY KEY (the rowid) SQLite seeks on delete_after alone,
            # which is enough there: it removes a deleted row's index entry at once.
            assert "SCAN" not in plan, plan
            assert f"INDEX ix_{table}_expiry ((delete_after," in plan or (
                f"INDEX ix_{table}_expiry (delete_after>" in plan
            ), plan
            assert "TEMP B-TREE" not in plan, plan  # the index gives the order
        else:  # an empty table: make the planner show what it would do with a large one
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            await conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            rows = await conn.exec_driver_sql(f"EXPLAIN {compiled.string}", bound)
            plan = "\n".join(str(r[0]) for r in rows)
            assert f"ix_{table}_expiry" in plan, plan
            bounds = [line for line in plan.splitlines() if "Index Cond" in line]
            assert any("ROW(" in line and "delete_after <=" in line for line in bounds), plan
            assert "Sort" not in plan, plan  # the index gives the order
            assert "Seq Scan" not in plan, plan
