"""What every worker shares: uvloop, JSON logs, /metrics, signals and the drain timeout."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from types import CoroutineType

import structlog
import uvloop
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from workers.metrics import WorkerMetrics
from workers.registry import Worker
from workers.settings import Settings

log = structlog.get_logger("workers.runtime")


def configure_logging(level: str) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


async def serve_metrics(prefixes: tuple[str, ...], host: str, port: int) -> web.AppRunner:
    registry = WorkerMetrics(prefixes)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _run(worker: Worker, settings: Settings) -> int:
    name, metrics_port = worker.name, worker.metrics_port(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    metrics = await serve_metrics(worker.metrics, settings.metrics_host, metrics_port)
    log.info("worker_starting", worker=name, metrics_port=metrics_port)
    task = asyncio.create_task(worker.main(settings, stopping), name=name)
    code = 0
    try:
        await asyncio.wait([task, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            log.info("worker_draining", worker=name, timeout_seconds=settings.drain_timeout_seconds)
            try:
                await asyncio.wait_for(asyncio.shield(task), settings.drain_timeout_seconds)
            except TimeoutError:
                log.error("drain_timeout", worker=name, stuck_at=_where(task))
                task.cancel()
                code = 1
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("worker_failed", worker=name, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            code = 1
    finally:
        await metrics.cleanup()
    log.info("worker_stopped", worker=name, exit_code=code)
    return code


def _where(task: asyncio.Task[None]) -> str:
    """Where a task that did not finish in time is waiting: its chain of coroutines, outermost first, down
    to the one awaiting a future (a task's own stack shows only its outermost coroutine)."""
    lines: list[str] = []
    awaited: object = task.get_coro()
    while isinstance(awaited, CoroutineType) and awaited.cr_frame is not None:
        frame = awaited.cr_frame
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = awaited.cr_await
    return "\n".join(lines)


def run(worker: Worker, settings: Settings) -> int:
    """Run one worker until it finishes or a signal asks it to stop; returns the exit code."""
    configure_logging(settings.log_level)
    return uvloop.run(_run(worker, settings))
