"""Driver failures classified by their codes, and one ERROR line per cause per minute."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from bridge.errors import StoreFull, StoreReadOnly, StoreUnavailable
from bridge.storage.outages import Outages, classify, driver_cause


def sqlite_error(code: int, message: str) -> DBAPIError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]  # what the module sets on a failed step
    return DBAPIError.instance("INSERT", {}, error, sqlite3.Error)


def pg_error(error: psycopg.Error) -> DBAPIError:
    return DBAPIError.instance("INSERT", {}, error, psycopg.Error)


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (sqlite_error(13, "database or disk is full"), StoreFull),
        (sqlite_error(8, "attempt to write a readonly database"), StoreReadOnly),
        (sqlite_error(8 | (3 << 8), "attempt to write a readonly database"), StoreReadOnly),  # READONLY_DBMOVED
        (sqlite_error(10, "disk I/O error"), StoreUnavailable),
        (pg_error(psycopg.errors.DiskFull('could not extend file "base/1/2": No space left on device')), StoreFull),
        (
            pg_error(psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction")),
            StoreReadOnly,
        ),
        (pg_error(psycopg.errors.TooManyConnections("sorry, too many clients already")), StoreUnavailable),
        (pg_error(psycopg.errors.OutOfMemory("out of memory")), StoreUnavailable),
    ],
)
def test_driver_failures_are_named_by_their_codes(failure: DBAPIError, kind: type[StoreUnavailable]):
    assert type(classify(failure)) is kind


def test_a_bug_is_not_an_outage():
    assert classify(pg_error(psycopg.errors.UndefinedTable('relation "x" does not exist'))) is None


def test_the_cause_is_the_drivers_first_line():
    try:
        raise StoreFull("full") from sqlite_error(13, "database or disk is full\nmore")
    except StoreFull as exc:
        assert driver_cause(exc) == "database or disk is full"


def test_one_error_line_per_cause_per_interval_and_the_next_counts_what_it_left_out(caplog: pytest.LogCaptureFixture):
    now = [0.0]
    outages = Outages(interval=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="bridge.storage.outages")
    for _ in range(20):
        outages.refused(StoreFull("full"), "database or disk is full")
    outages.refused(StoreUnavailable("down"), "connection refused")
    assert [(r.error, r.refusals_not_logged) for r in caplog.records] == [
        ("storage_full", 0),
        ("storage_unavailable", 0),
    ]

    now[0] = 61
    outages.refused(StoreFull("full"), "database or disk is full")
    assert (caplog.records[-1].error, caplog.records[-1].refusals_not_logged) == ("storage_full", 19)
    assert isinstance(outages.write_refused, StoreFull)

    outages.refused(StoreFull("full"), "database or disk is full")
    outages.writes_resumed()
    assert outages.write_refused is None
    resumed = caplog.records[-1]
    assert (resumed.levelno, resumed.getMessage(), resumed.refusals_not_logged) == (
        logging.WARNING,
        "database accepts writes again",
        1,
    )
    outages.refused(StoreFull("full"), "database or disk is full")
    assert caplog.records[-1].levelno == logging.ERROR, "after recovery, the next refusal is logged at once"
