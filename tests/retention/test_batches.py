"""Retention never runs one huge transaction: each transaction deletes at most a batch
of traces (and only their spans). Counted by the database itself: a statement trigger
logs the transaction id and the rows of every DELETE on traces and spans."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from retention.services import retention_apply_project
from tests.retention.conftest import NOW, trace_at

LOG_SQL = """
CREATE TABLE retention_test_delete_log (tbl text, txid bigint, n int);
CREATE FUNCTION retention_test_delete_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO retention_test_delete_log SELECT TG_TABLE_NAME, txid_current(), count(*) FROM old_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER retention_test_delete_log_trace AFTER DELETE ON tracing_trace
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION retention_test_delete_log();
CREATE TRIGGER retention_test_delete_log_span AFTER DELETE ON tracing_span
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION retention_test_delete_log();
"""
DROP_SQL = """
DROP TRIGGER IF EXISTS retention_test_delete_log_trace ON tracing_trace;
DROP TRIGGER IF EXISTS retention_test_delete_log_span ON tracing_span;
DROP FUNCTION IF EXISTS retention_test_delete_log();
DROP TABLE IF EXISTS retention_test_delete_log;
"""


@pytest.fixture
def delete_log(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute(DROP_SQL)
        cursor.execute(LOG_SQL)
    yield
    with connection.cursor() as cursor:
        cursor.execute(DROP_SQL)


def _log() -> dict[int, dict[str, int]]:
    """txid -> {table: rows deleted in that transaction}."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid, tbl, sum(n) FROM retention_test_delete_log GROUP BY 1, 2 ORDER BY 1")
        rows = cursor.fetchall()
    out: dict[int, dict[str, int]] = {}
    for txid, table, n in rows:
        out.setdefault(txid, {})[table] = int(n)
    return out


def test_each_transaction_deletes_one_batch_of_traces(world, delete_log):
    old = [trace_at(world.project, NOW - timedelta(days=40, minutes=i), spans=4) for i in range(7)]
    kept = trace_at(world.project, NOW - timedelta(days=2), spans=4)
    result = retention_apply_project(project=world.project, days=30, now=NOW, batch=3)
    assert result.traces == len(old)
    per_tx = _log()
    # 7 traces in batches of 3: three transactions of 3, 3 and 1 traces, each with
    # exactly the spans of its own traces.
    assert sorted(tx["tracing_trace"] for tx in per_tx.values()) == [1, 3, 3]
    assert all(tx["tracing_span"] == 4 * tx["tracing_trace"] for tx in per_tx.values())
    assert result.batches >= 3
    assert kept.__class__.objects.filter(pk=kept.pk).exists()
