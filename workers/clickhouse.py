"""ClickHouse access: one interface, two backends chosen by the URL scheme.

    chdb:///abs/path  or  chdb://relative/path     chDB, the real engine in this process, data in that directory
    clickhouse://user:password@host:9000/database   a ClickHouse server through asynch (native protocol, lz4,
                                                     pooled; `?pool_min_size=1&pool_max_size=8`)

Parameters are written one way by every caller, as ClickHouse placeholders: `WHERE event = {event:String}`.
chDB binds them natively. For a server they are bound client-side: each placeholder becomes an escaped literal
cast to the declared type (`CAST('x' AS String)`; integers bare, so `LIMIT {n:UInt32}` works on old servers;
`{t:Identifier}` a quoted identifier). asynch's own `%(name)s` formatting is not used, as it would also read
every `%` in the SQL. Datetimes are instants: aware ones are converted, naive ones are taken as UTC.

`query` returns rows as dicts of JSON-ready values, the same on both backends: integers as int (UInt64 too),
floats, strings, None, lists for arrays and tuples; DateTime and DateTime64 as 'YYYY-MM-DD hh:mm:ss[.ffffff]'
strings in the column's time zone (UTC unless the column names one: chDB sessions run with
session_timezone = 'UTC'); Date as 'YYYY-MM-DD'; UUID, IP addresses and Enum as strings; Decimal as float.
chDB renders nan and inf as None.

`settings` (readonly, max_execution_time, ...) go natively to a server. On chDB they become a trailing
`SETTINGS` clause, so the SQL must not end with its own SETTINGS or FORMAT clause. Both backends refuse a
string holding several statements (chDB would otherwise run them all, and a trailing SETTINGS would only
cover the last one).

chDB: one data directory per process (a second process cannot open it). Inside the process one session does
every write (execute, insert: serialized) and a few reader sessions answer `query`; a single session runs one
statement at a time and refuses queries while a streaming insert is open, separate sessions run together.
Inserts stream the batch as Arrow IPC (ArrowStream) through `send_insert`, the fastest robust way measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import structlog

from workers.metrics import CLICKHOUSE_INSERT_SECONDS, CLICKHOUSE_ROWS

log = structlog.get_logger(__name__)

T = TypeVar("T")


# codes that mean "not now" rather than "never": timeouts, memory and part limits, too many queries, a
# read-only replica, Keeper trouble
_TRANSIENT_CODES = frozenset({159, 160, 164, 202, 203, 209, 210, 236, 241, 242, 252, 285, 319, 394, 425, 999})


class ClickHouseError(Exception):
    """ClickHouse refused the statement (bad SQL, unknown table, readonly, bad values): bad input."""

    refusal = "clickhouse_refused"

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def refuses_data(self) -> bool:
        """True when retrying the same rows can never succeed (workers.errors sorts failures by it)."""
        return self.code not in _TRANSIENT_CODES


class ClickHouseUnavailable(Exception):
    """ClickHouse could not be reached or was lost: infrastructure, retry later."""


class ClickHouse(Protocol):
    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...

    async def close(self) -> None: ...


async def connect(url: str) -> ClickHouse:
    """Open the backend the URL names; ClickHouseUnavailable if it cannot be reached or opened."""
    if url.startswith("chdb://"):
        return await ChdbClickHouse.open(url)
    if url.startswith("clickhouse://"):
        return await ServerClickHouse.open(url)
    raise ValueError("a ClickHouse URL starts with chdb:// (embedded) or clickhouse:// (server)")


# SQL text: placeholders, literals, identifiers ---------------------------------------------------------------

# String literals, quoted identifiers and comments are matched (and left alone) so that a placeholder or a ';'
# inside them is not taken for one.
_SQL_PARTS = re.compile(
    r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`|--[^\n]*|/\*.*?\*/"""
    r"""|\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}""",
    re.DOTALL,
)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER_TYPE = re.compile(r"U?Int(?:8|16|32|64|128|256)")
_TIME_ZONE = re.compile(r"DateTime(?:64)?\(\s*(?:\d+\s*,\s*)?'([^']+)'\s*\)")
_ERROR_CODE = re.compile(r"Code: (\d+)\.")
_QUOTED_CHARS = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\0": "\\0",
    "\b": "\\b",
    "\f": "\\f",
}
_QUOTE_TABLE = str.maketrans(_QUOTED_CHARS)
_IDENTIFIER_TABLE = str.maketrans(
    {"\\": "\\\\", "`": "\\`", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}
)
# chDB parses parameter values in the TSV 'escaped' format: `\N` is NULL, `\n` a newline, raw tabs break it
_ESCAPED_TABLE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def placeholders(sql: str) -> dict[str, str]:
    """The `{name:Type}` placeholders of a statement, outside literals and comments: name -> type."""
    found: dict[str, str] = {}
    for match in _SQL_PARTS.finditer(sql):
        if match.group(1) is not None:
            found.setdefault(match.group(1), match.group(2))
    return found


def bind(sql: str, params: Mapping[str, Any]) -> str:
    """`sql` with each `{name:Type}` replaced by the escaped value of params[name] (client-side binding)."""

    def replace(match: re.Match[str]) -> str:
        name, type_ = match.group(1), match.group(2)
        if name is None:
            return match.group(0)
        if name not in params:
            raise ClickHouseError(f"Substitution `{name}` is not set (no value for {{{name}:{type_}}})", 456)
        return _typed_literal(name, type_, params[name])

    return _SQL_PARTS.sub(replace, sql)


def quote_identifier(name: str) -> str:
    return "`" + name.translate(_IDENTIFIER_TABLE) + "`"


def _table_name(name: str) -> str:
    return name if _PLAIN_NAME.fullmatch(name) else quote_identifier(name)


def _column_list(columns: Sequence[str]) -> str:
    return ", ".join(c if _SETTING_NAME.fullmatch(c) else quote_identifier(c) for c in columns)


def _base_type(type_: str) -> str:
    """`Nullable(LowCardinality(String))` -> `String`."""
    inner = type_.strip()
    for wrapper in ("Nullable(", "LowCardinality("):
        if inner.startswith(wrapper) and inner.endswith(")"):
            return _base_type(inner[len(wrapper) : -1])
    return inner


def _instant(value: datetime, type_: str) -> datetime:
    """A datetime as wall time in the zone of the declared type (UTC unless the type names one)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    zone = _TIME_ZONE.search(type_)
    target: tzinfo = ZoneInfo(zone.group(1)) if zone else UTC
    return aware.astimezone(target).replace(tzinfo=None)


def _datetime_text(value: datetime, type_: str) -> str:
    wall = _instant(value, type_)
    fraction = _base_type(type_).startswith("DateTime64") or not _base_type(type_).startswith("DateTime")
    return wall.isoformat(sep=" ", timespec="microseconds" if fraction else "seconds")


def _literal(value: Any, text: bool = False, type_: str = "") -> str:
    """A SQL literal for one value, every string escaped; datetimes as UTC instants.

    `text`: the plain form ClickHouse reads in a parameter's text (chDB arrays): no functions, no parentheses,
    datetimes as wall time in the zone `type_` names (UTC if none).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            number = str(value)  # nan, inf, -inf
        else:
            number = repr(value)
        return number if text or not number.startswith("-") else f"({number})"
    if isinstance(value, str):
        return "'" + value.translate(_QUOTE_TABLE) + "'"
    if isinstance(value, datetime):
        if text:
            wall = _instant(value, type_)
            return f"'{wall.isoformat(sep=' ', timespec='microseconds' if wall.microsecond else 'seconds')}'"
        moment = _datetime_text(value, "DateTime64" if value.microsecond else "DateTime")
        if value.microsecond:
            return f"toDateTime64('{moment}', 6, 'UTC')"
        return f"toDateTime('{moment}', 'UTC')"
    if isinstance(value, date):
        return f"'{value.isoformat()}'" if text else f"toDate('{value.isoformat()}')"
    if isinstance(value, UUID | Decimal):
        return f"'{value}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v, text, type_) for v in value) + "]"
    raise TypeError(f"cannot bind a {type(value).__name__}")


def _typed_literal(name: str, type_: str, value: Any) -> str:
    if type_.strip() == "Identifier":
        if not isinstance(value, str):
            raise ClickHouseError(f"parameter {name}: an Identifier must be a str", 457)
        return quote_identifier(value)
    base = _base_type(type_)
    try:
        if isinstance(value, int) and not isinstance(value, bool) and _INTEGER_TYPE.fullmatch(base):
            return _literal(value)
        if isinstance(value, datetime) and base.startswith("DateTime"):
            literal = f"toDateTime64('{_datetime_text(value, 'DateTime64')}', 6, 'UTC')"
            if not base.startswith("DateTime64"):
                literal = f"toDateTime('{_datetime_text(value, 'DateTime')}', 'UTC')"
            return f"CAST({literal} AS {type_})"
        return f"CAST({_literal(value)} AS {type_})"
    except TypeError as exc:
        raise ClickHouseError(f"parameter {name}: {exc} as {type_}", 457) from exc


def _chdb_value(type_: str, value: Any) -> str:
    """A parameter value as chDB reads it: text in the TSV escaped format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # nan, inf, -inf
    if isinstance(value, str):
        return value.translate(_ESCAPED_TABLE)
    if isinstance(value, datetime):
        return _datetime_text(value, type_)
    if isinstance(value, date | UUID | Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return _literal(
            value, text=True, type_=type_
        )  # an array is read in its quoted text form, escapes included
    raise TypeError(f"cannot bind a {type(value).__name__}")


def _chdb_params(sql: str, params: Mapping[str, Any] | None) -> dict[str, str]:
    if not params:
        return {}
    types = placeholders(sql)
    out = {}
    for name, value in params.items():
        type_ = types.get(name, "String")
        try:
            out[name] = _chdb_value(type_, value)
        except TypeError as exc:
            raise ClickHouseError(f"parameter {name}: {exc} as {type_}", 457) from exc
    return out


def _setting_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return _literal(value)
    raise ValueError(f"a setting is a bool, int, float or str, not {type(value).__name__}")


def _with_settings(sql: str, settings: Mapping[str, Any] | None) -> str:
    body = sql.strip().rstrip(";").rstrip()
    if not settings:
        return body
    for key in settings:
        if not _SETTING_NAME.fullmatch(key):
            raise ValueError(f"not a setting name: {key!r}")
    return body + "\nSETTINGS " + ", ".join(f"{k} = {_setting_value(v)}" for k, v in settings.items())


def _code(message: str) -> int | None:
    match = _ERROR_CODE.search(message)
    return int(match.group(1)) if match else None


# Rows as JSON-ready values -----------------------------------------------------------------------------------

_PLAIN_TYPES = ("String", "FixedString", "Int", "UInt", "Float", "Bool", "Nothing")


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="auto")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)  # UUID, IPv4Address, IPv6Address, ...


def _converter(type_: str) -> Callable[[Any], Any] | None:
    """How to make one column's values JSON-ready, from the column's ClickHouse type; None: as they are."""
    base = _base_type(type_)
    if base.startswith(_PLAIN_TYPES):
        return None
    if base.startswith("DateTime64"):
        precision = re.match(r"DateTime64\(\s*(\d+)", base)
        scale = min(int(precision.group(1)), 6) if precision else 3
        width = 19 + (1 + scale if scale else 0)  # 'YYYY-MM-DD hh:mm:ss' and '.' + scale digits

        def datetime64(value: Any) -> Any:
            if value is None:
                return None
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")[:width]

        return datetime64
    if base.startswith("DateTime"):
        return lambda value: None if value is None else value.replace(tzinfo=None).isoformat(sep=" ")
    return _plain


# chDB --------------------------------------------------------------------------------------------------------


class _Sessions:
    """chDB sessions handed out one call at a time, each call on a worker thread.

    A session goes back only when its thread is done, even if the awaiting task was cancelled meanwhile: the
    next call never meets a session still busy with a statement or an open streaming insert.
    """

    def __init__(self, sessions: Sequence[Any]) -> None:
        self.sessions = list(sessions)
        self._free: asyncio.Queue[Any] = asyncio.Queue()
        for session in sessions:
            self._free.put_nowait(session)

    async def run(self, call: Callable[[Any], T]) -> T:
        session = await self._free.get()
        task = asyncio.ensure_future(asyncio.to_thread(call, session))

        def release(done: asyncio.Future[T]) -> None:
            self._free.put_nowait(session)
            if not done.cancelled():
                done.exception()  # retrieved: a cancelled caller must not leave "never retrieved" noise

        task.add_done_callback(release)
        return await asyncio.shield(task)

    async def drain(self) -> list[Any]:
        """Wait until every session is free, and keep them."""
        return [await self._free.get() for _ in self.sessions]


def _chdb_call(call: Callable[[], T]) -> T:
    try:
        return call()
    except RuntimeError as exc:  # chdb.ChdbError is a RuntimeError
        message = str(exc).strip()
        raise ClickHouseError(message, _code(message)) from None


def _single_statement(session: Any, sql: str) -> None:
    """Refuse several statements in one string, using the engine's own parser (chDB would run them all)."""
    if ";" not in sql:
        return
    try:
        session.query("SELECT formatQuery({q:String})", "Null", params={"q": sql.translate(_ESCAPED_TABLE)})
    except RuntimeError as exc:
        if "Multi-statements are not allowed" in str(exc):
            raise ClickHouseError("Syntax error: Multi-statements are not allowed", 62) from None
        # any other parse error is reported by running the statement itself


def _arrow_stream(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    import pyarrow as pa

    width = len(columns)
    for row in rows:
        if len(row) != width:
            raise ClickHouseError(f"a row has {len(row)} values for {width} columns", 7)
    arrays = []
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            try:  # integers past Int64 (UInt64 columns)
                arrays.append(pa.array(values, type=pa.uint64()))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                raise ClickHouseError(
                    f"column {name}: values of mixed or unsupported types: {exc}", 53
                ) from None
    table = pa.Table.from_arrays(arrays, names=list(columns))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _data_directory(location: str) -> Path:
    path = Path(location).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open_session(path: Path) -> Any:
    from chdb.session import Session

    try:
        session = Session(str(path))
        session.query("SET session_timezone = 'UTC'", "Null")
    except RuntimeError as exc:
        raise ClickHouseUnavailable(f"cannot open chDB at {path}: {_why_not(path, exc)}") from None
    return session


def _why_not(path: Path, exc: Exception) -> str:
    status = path / "status"
    if status.exists():
        with status.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except OSError as lock_error:
                if lock_error.errno in (errno.EWOULDBLOCK, errno.EACCES):
                    return (
                        "the directory is in use by another process (only one process may open a chDB"
                        " directory; with chdb:// the writer and the query API share one process)"
                    )
    return str(exc).strip()


class ChdbClickHouse:
    """The embedded backend: one writer session, `readers` reader sessions, all on one data directory."""

    def __init__(self, path: Path, writer: _Sessions, readers: _Sessions) -> None:
        self.path = path
        self._writer = writer
        self._readers = readers
        self._closed = False

    @classmethod
    async def open(cls, url: str) -> ChdbClickHouse:
        location, _, query = url.removeprefix("chdb://").partition("?")
        options = dict(parse_qsl(query))
        readers = int(options.pop("readers", "4"))
        if options or not location or readers < 1:
            raise ValueError(f"chDB URL: chdb:///abs/path or chdb://relative/path [?readers=N], got {url!r}")
        path = await asyncio.to_thread(_data_directory, unquote(location))
        sessions: list[Any] = []
        try:
            for _ in range(1 + readers):
                sessions.append(await asyncio.to_thread(_open_session, path))
        except BaseException:
            for session in sessions:
                session.close()
            raise
        log.info("clickhouse_connected", backend="chdb", path=str(path), readers=readers)
        return cls(path, _Sessions(sessions[:1]), _Sessions(sessions[1:]))

    def _check_open(self) -> None:
        if self._closed:
            raise ClickHouseUnavailable("the chDB connection is closed")

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._check_open()
        statement, values = _with_settings(sql, None), _chdb_params(sql, params)

        def run(session: Any) -> None:
            _single_statement(session, statement)
            _chdb_call(lambda: session.query(statement, "Null", params=values))

        await self._writer.run(run)

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        self._check_open()
        statement, values = _with_settings(sql, settings), _chdb_params(sql, params)

        def run(session: Any) -> list[dict[str, Any]]:
            _single_statement(session, statement)
            result = _chdb_call(lambda: session.query(statement, "JSON", params=values))
            data = result.bytes()
            rows: list[dict[str, Any]] = orjson.loads(data)["data"] if data else []
            return rows

        return await self._readers.run(run)

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self._check_open()
        if not rows:
            return
        started = time.perf_counter()
        statement = f"INSERT INTO {_table_name(table)} ({_column_list(columns)})"

        def run(session: Any) -> None:
            data = _arrow_stream(columns, rows)

            def stream() -> None:
                with session.send_insert(statement, "ArrowStream") as inserter:
                    inserter.append(data)
                    inserter.finish()

            _chdb_call(stream)

        await self._writer.run(run)
        CLICKHOUSE_ROWS.labels(table).inc(len(rows))
        CLICKHOUSE_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        sessions = await self._writer.drain() + await self._readers.drain()
        for session in sessions:
            await asyncio.to_thread(session.close)
        log.info("clickhouse_closed", backend="chdb", path=str(self.path))


# ClickHouse server through asynch ----------------------------------------------------------------------------


def _is_network_error(exc: BaseException) -> bool:
    from asynch.errors import (
        AsynchPoolError,
        NetworkError,
        OperationalError,
        PartiallyConsumedQueryError,
        SocketTimeoutError,
        UnexpectedPacketFromServerError,
    )

    lost = (
        NetworkError,
        SocketTimeoutError,
        AsynchPoolError,
        OperationalError,
        UnexpectedPacketFromServerError,
        PartiallyConsumedQueryError,
        OSError,
        EOFError,
        asyncio.TimeoutError,
    )
    return isinstance(exc, lost)


class ServerClickHouse:
    """The server backend: an asynch pool; a lost connection is retried once on a fresh one."""

    def __init__(self, pool: Any, target: str) -> None:
        self._pool = pool
        self._target = target

    @classmethod
    async def open(cls, url: str) -> ServerClickHouse:
        from asynch import Pool

        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query))
        minsize = int(options.pop("pool_min_size", "1"))
        maxsize = int(options.pop("pool_max_size", "8"))
        if options:
            raise ValueError(
                f"ClickHouse URL: unknown options {sorted(options)} (pool_min_size, pool_max_size)"
            )
        host, port = parts.hostname or "127.0.0.1", parts.port or 9000
        database = parts.path.strip("/") or "default"
        pool = Pool(
            minsize=minsize,
            maxsize=maxsize,
            host=host,
            port=port,
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=database,
            compression=True,
        )
        target = f"{host}:{port}/{database}"
        try:
            await pool.startup()
        except Exception as exc:
            if _is_network_error(exc):
                raise ClickHouseUnavailable(f"cannot reach ClickHouse at {target}: {exc}") from exc
            raise
        log.info("clickhouse_connected", backend="server", target=target, pool=f"{minsize}..{maxsize}")
        return cls(pool, target)

    async def _run(self, call: Callable[[Any], Any]) -> Any:
        from asynch.errors import ClickHouseException, ServerException

        for attempt in (1, 2):
            try:
                async with self._pool.connection() as conn:
                    try:
                        async with conn.cursor() as cursor:
                            return await call(cursor)
                    except Exception:
                        # never hand a failed connection out again: after a syntax error 18.16 leaves a second
                        # exception packet on the stream, which the pool's next ping would read as its answer
                        with contextlib.suppress(Exception):
                            await conn.close()
                        raise
            except ServerException as exc:
                message = (exc.message or "").strip() or f"ClickHouse refused the statement (code {exc.code})"
                raise ClickHouseError(message, exc.code) from exc
            except Exception as exc:
                if not _is_network_error(exc):
                    if isinstance(exc, ClickHouseException):
                        raise ClickHouseError(str(exc), exc.code) from exc
                    raise
                if attempt == 2:
                    raise ClickHouseUnavailable(f"ClickHouse at {self._target}: {exc}") from exc
                log.warning("clickhouse_reconnecting", target=self._target, error=str(exc))
        raise AssertionError("unreachable")

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        statement = _with_settings(bind(sql, params or {}), None)

        async def call(cursor: Any) -> None:
            await cursor.execute(statement)

        await self._run(call)

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        statement = _with_settings(bind(sql, params or {}), None)

        async def call(cursor: Any) -> list[dict[str, Any]]:
            if settings:
                cursor.set_settings(dict(settings))
            await cursor.execute(statement)
            rows = await cursor.fetchall()
            description = cursor.description or []
            names = [column[0] for column in description]
            converters = [(i, c) for i, c in enumerate(_converter(column[1]) for column in description) if c]
            if not converters:
                return [dict(zip(names, row, strict=True)) for row in rows]
            out = []
            for row in rows:
                values = list(row)
                for i, convert in converters:
                    values[i] = convert(values[i])
                out.append(dict(zip(names, values, strict=True)))
            return out

        result: list[dict[str, Any]] = await self._run(call)
        return result

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        started = time.perf_counter()
        statement = f"INSERT INTO {_table_name(table)} ({_column_list(columns)}) VALUES"
        data = rows if isinstance(rows, list | tuple) else list(rows)

        async def call(cursor: Any) -> None:
            try:
                await cursor.execute(statement, data)
            except (TypeError, ValueError, OverflowError, AttributeError) as exc:
                raise ClickHouseError(f"rows do not fit the columns of {table}: {exc!r}", 53) from exc

        await self._run(call)
        CLICKHOUSE_ROWS.labels(table).inc(len(rows))
        CLICKHOUSE_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)

    async def close(self) -> None:
        await self._pool.shutdown()
        log.info("clickhouse_closed", backend="server", target=self._target)
