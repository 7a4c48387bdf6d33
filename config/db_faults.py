"""Database faults an operator must act on, named in one log line and answered with 503.

A database that is stopped, read-only (a hot standby after a failover, or
`default_transaction_read_only`), out of disk or out of connections is not a bug in
the request: the client should retry later, and the operator should read *why* in one
line, not dig through a traceback. PostgreSQL says which it is by SQLSTATE; Django
wraps the driver's error and keeps it as `__cause__`.

`database_fault` names the fault (or None for an error that is a bug, which keeps its
500 and its traceback). The OTLP receiver answers in OTLP's own shape with it;
`DatabaseFaultMiddleware` covers every other page and endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from config.errors import error_body

logger = logging.getLogger("spyglass.database")

READ_ONLY = "database is read-only"
DISK_FULL = "disk full"
TOO_MANY_CONNECTIONS = "database has too many connections"
UNAVAILABLE = "database unavailable"

# SQLSTATE -> fault (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_BY_SQLSTATE = {
    "25006": READ_ONLY,  # read_only_sql_transaction (hot standby, default_transaction_read_only)
    "53100": DISK_FULL,  # disk_full ("could not extend file ...: No space left on device")
    "53300": TOO_MANY_CONNECTIONS,  # too_many_connections
    "57P03": UNAVAILABLE,  # cannot_connect_now (starting up, shutting down)
}
RETRY_AFTER_SECONDS = 5


def database_fault(exc: BaseException) -> str | None:
    """The operator's name for this database error, or None when it is not a fault of
    the database's state (a bug: a constraint, a bad query)."""
    if not isinstance(exc, DatabaseError):
        return None
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate in _BY_SQLSTATE:
        return _BY_SQLSTATE[sqlstate]
    if isinstance(exc, OperationalError | InterfaceError):
        return UNAVAILABLE  # connection refused or lost, server gone
    return None


def log_fault(fault: str, exc: BaseException, what: str) -> None:
    """One line: the fault first (what to grep for), then the server's own words."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    logger.error("%s: %s (%s)", what, fault, detail)


class DatabaseFaultMiddleware:
    """A database fault anywhere (a page, the REST API, feedback) is a 503 with
    Retry-After naming the fault, not a 500 (the receivers answer theirs themselves)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        fault = database_fault(exception)
        if fault is None:
            return None
        log_fault(fault, exception, f"{request.method} {request.path} failed")
        message = f"Temporarily unavailable: {fault}. Nothing was changed; retry later."
        if request.path.startswith("/api/"):
            response = HttpResponse(orjson.dumps(error_body("unavailable", message)), status=503,
                                    content_type="application/json")
        else:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
