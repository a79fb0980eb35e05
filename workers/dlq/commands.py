"""`--list` and `--replay`: what the dead letter index holds, and sending parked messages back.

Both filter by `--reason`, `--stage`, `--since` (last parked at or after), `--id` (repeatable) and take at
most `--max` rows. `--list` prints every state, newest first; `--json` prints one object per line.

`--replay` takes the `parked` rows, oldest first, and re-produces each one's original key and value to
its source topic with the headers `replay_of=<id>` and `attempts=<attempts + 1>`, then marks it
`replayed`; a row whose attempts already reached DLQ_MAX_ATTEMPTS is marked `dead` instead and never
sent. A replayed message that fails again comes back through `dead_letter` and the dlq worker parks its
row again with the new attempts, so each parking is replayed at most once. A produce failure raises
before the rows are marked: they stay parked, and the next replay sends them again (at least once).
`--policy` says what happens to a row whose value no longer parses as a JSON object:

- `stop-on-error` (default): the replay stops at that row; it and the rows after it stay untouched and
  the exit code is 1.
- `skip-invalid`: such rows stay parked and are counted as skipped; the rest are replayed.
- `reinsert`: every row is re-produced as it is.

`--dry-run` prints what would be done, row by row, and changes nothing. The last line counts the rows:
`replayed 12, skipped 0, dead 1` (with `--json`, an object with those counts).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import orjson

from workers.dlq.sql import statement
from workers.kafka import Producer, Record, start_producer
from workers.settings import Settings

POLICIES = ("stop-on-error", "skip-invalid", "reinsert")
CHUNK = 500  # rows per replay transaction: bounds memory and how long rows stay locked
TABLE = ("id", "state", "attempts", "stage", "reason", "source", "last_seen", "uuid", "error")


def _count(raw: str) -> int:
    value = int(raw)
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{raw!r}: not a positive integer")
    return value


def _instant(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="print the indexed dead letters, newest first")
    mode.add_argument("--replay", action="store_true", help="re-produce parked messages to their topics")
    parser.add_argument("--reason", metavar="R", help="only this reason")
    parser.add_argument("--stage", metavar="S", help="only messages parked by this stage")
    parser.add_argument("--since", metavar="ISO", type=_instant, help="only messages last parked since")
    parser.add_argument("--id", metavar="N", type=_count, action="append", help="only this row (repeatable)")
    parser.add_argument("--max", metavar="N", type=_count, help="at most N rows")
    parser.add_argument(
        "--dry-run", action="store_true", help="--replay: print what it would do, change nothing"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--policy", choices=POLICIES, default="stop-on-error",
                        help="--replay: what to do with a value that is not a JSON object")  # fmt: skip


def _filters(args: argparse.Namespace) -> tuple[object, ...]:
    return args.reason, args.stage, args.since, args.id


async def list_command(settings: Settings, args: argparse.Namespace) -> int:
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        rows = await conn.fetch(statement("list.sql"), *_filters(args), args.max)
    finally:
        await conn.close()
    if args.json:
        for row in rows:
            print(orjson.dumps(dict(row)).decode())
    else:
        print(_table(rows))
    return 0


def _table(rows: Sequence[asyncpg.Record]) -> str:
    cells = [TABLE] + [
        (
            str(r["id"]), r["state"], str(r["attempts"]), r["stage"], r["reason"],
            f"{r['source_topic']}/{r['source_partition']}/{r['source_offset']}",
            r["last_seen"].isoformat(timespec="seconds"), r["uuid"] or "", " ".join(r["error"].split())[:80],
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _json_object(value: bytes) -> bool:
    try:
        return isinstance(orjson.loads(value), dict)
    except orjson.JSONDecodeError:
        return False


def _decide(
    rows: Sequence[asyncpg.Record], policy: str, max_attempts: int
) -> list[tuple[asyncpg.Record, str]]:
    """Each row's action, up to and including the row a stop-on-error replay stops at."""
    decided = []
    for row in rows:
        if row["attempts"] >= max_attempts:
            action = "dead"
        elif policy != "reinsert" and not _json_object(row["value"]):
            action = "stopped" if policy == "stop-on-error" else "skipped"
        else:
            action = "replayed"
        decided.append((row, action))
        if action == "stopped":
            break
    return decided


async def _apply(
    conn: asyncpg.Connection, producer: Producer, decided: list[tuple[asyncpg.Record, str]]
) -> None:
    by_topic: dict[str, list[Record]] = {}
    for row, action in decided:
        if action == "replayed":
            headers = (
                ("replay_of", str(row["id"]).encode()),
                ("attempts", str(row["attempts"] + 1).encode()),
            )
            by_topic.setdefault(row["source_topic"], []).append(Record(row["key"], row["value"], headers))
    for topic, records in by_topic.items():
        await producer.send_all(topic, records)
    marks = [(row["id"], action) for row, action in decided if action in ("replayed", "dead")]
    await conn.execute(statement("mark.sql"), [i for i, _ in marks], [state for _, state in marks])


def _report(row: asyncpg.Record, action: str, args: argparse.Namespace) -> None:
    if args.json:
        attempts = row["attempts"] + 1 if action == "replayed" else row["attempts"]
        line = {"id": row["id"], "source_topic": row["source_topic"], "action": action, "attempts": attempts}
        print(orjson.dumps(line).decode())
    elif args.dry_run or action == "stopped":
        what = {
            "replayed": f"replay {row['id']} to {row['source_topic']} (attempt {row['attempts'] + 1})",
            "skipped": f"skip {row['id']}: the value is not a JSON object",
            "dead": f"mark {row['id']} dead after {row['attempts']} attempts",
            "stopped": f"stop at {row['id']}: the value is not a JSON object",
        }[action]
        print(f"would {what}" if args.dry_run else what)


async def replay_command(settings: Settings, args: argparse.Namespace) -> int:
    counts = {"replayed": 0, "skipped": 0, "dead": 0}
    stopped = False
    after, left = 0, args.max
    conn = await asyncpg.connect(settings.postgres_dsn)
    producer: Producer | None = None
    try:
        if not args.dry_run:
            producer = await start_producer(settings)
        while not stopped and left != 0:
            limit = CHUNK if left is None else min(CHUNK, left)
            async with conn.transaction():
                rows = await conn.fetch(statement("replay.sql"), after, *_filters(args), limit)
                decided = _decide(rows, args.policy, settings.dlq_max_attempts)
                if producer is not None:
                    await _apply(conn, producer, decided)
            for row, action in decided:
                _report(row, action, args)
                if action == "stopped":
                    stopped = True
                else:
                    counts[action] += 1
            if len(rows) < limit:
                break
            after = rows[-1]["id"]
            left = None if left is None else left - len(rows)
    finally:
        if producer is not None:
            await producer.stop()
        await conn.close()
    if args.json:
        print(orjson.dumps({**counts, "stopped": stopped, "dry_run": args.dry_run}).decode())
    else:
        prefix = "dry run: " if args.dry_run else ""
        print(f"{prefix}replayed {counts['replayed']}, skipped {counts['skipped']}, dead {counts['dead']}")
    return 1 if stopped else 0
