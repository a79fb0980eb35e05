"""The two kinds of failure, told apart where they happen (DESIGN.md).

*Transient*: the store or the broker cannot take anything right now (down, timeout, overload, lock or
serialization conflict). The consume loop retries with backoff and, past its attempts, exits without
committing; the supervisor restarts the worker.

*Data*: this input can never succeed (a value the store refuses: encoding, constraint, type, parse; a
message too large). The consume loop isolates the offending messages by splitting the batch, parks exactly
those in `dead_letter` with the store's message, and goes on. Retrying a data error as if it were an outage
is a crash loop that stops every project.
"""

from __future__ import annotations

import asyncpg
import orjson


class DataError(Exception):
    """Raised by a step or a sink for input that can never succeed; `reason` is the dead letter's code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# SQLSTATE classes of a refused value: 22 data exception (encoding, range, format), 23 integrity constraint,
# 54 program limit exceeded (index row or jsonb too big). Everything else a Postgres server says (08
# connection, 40 rollback, 53 resources, 55 lock, 57 shutdown) is transient.
_POSTGRES_DATA_CLASSES = ("22", "23", "54")

# A Python exception raised while turning a message into outputs: the message's own fault.
_CODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, UnicodeError,
                OverflowError, orjson.JSONEncodeError)  # fmt: skip


def as_data_error(exc: BaseException) -> DataError | None:
    """The data error `exc` is, or None when it is transient (retry, then exit)."""
    if isinstance(exc, DataError):
        return exc
    if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.InterfaceError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate[:2] in _POSTGRES_DATA_CLASSES:
            return DataError("postgres_refused", f"{sqlstate} {exc}")
        return None
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(
        exc, ValueError
    ):  # an argument asyncpg can't encode
        return DataError("postgres_refused", str(exc))
    # ClickHouseError and ProduceFailed know which of their failures are about the rows
    refused = getattr(exc, "refuses_data", None)
    if refused is not None:
        return DataError(exc.refusal, str(exc)) if refused else None  # type: ignore[attr-defined]
    if isinstance(exc, _CODE_ERRORS) and not isinstance(exc, asyncpg.InterfaceError):
        return DataError("process_failed", f"{type(exc).__name__}: {exc}")
    return None
