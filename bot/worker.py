"""The worker process: APScheduler runs the tick every minute, and the delivery loop runs
continuously beside it. Both are safe to run in several processes at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import metrics
from bot.app import App
from bot.delivery import utc_now
from bot.jobs import tick
from bot.lifecycle import purge_expired
from bot.metrics import start_metrics_site
from nudges.program import ProgramError
from storage import heartbeats

log = logging.getLogger(__name__)
TICK_SECONDS = 60
PROCESS = f"worker@{socket.gethostname()}:{os.getpid()}"
IDLE_POLL_SECONDS = 2.0


async def tick_job(app: App) -> None:
    """Purge what is past retention, then queue what is due now; a missing program is
    reported, not fatal."""
    now = utc_now()
    try:
        async with app.db.session() as session:  # `reinforce doctor` tells from it that a worker runs
            await heartbeats.beat(session, PROCESS, now)
    except Exception:
        log.exception("could not record the worker's heartbeat")
        metrics.ERRORS.labels("heartbeat").inc()
    try:
        # Before the program check: old notes and transcripts go even with no program loaded.
        await purge_expired(app.db, app.settings.reinforce_retention_days, now)
    except Exception:  # the tick's queuing must not wait for the purge; the next tick tries again
        log.exception("retention purge failed; trying again at the next tick")
        metrics.ERRORS.labels("retention").inc()
    try:
        program = await app.programs.get()
    except ProgramError as exc:
        log.warning("%s", exc)
        return
    report = await tick(app.db, program, now)
    if report.total():
        log.info("tick queued %s", ", ".join(f"{n} {kind}" for kind, n in sorted(report.queued.items())))


async def delivery_loop(app: App, stop: asyncio.Event, idle_poll: float = IDLE_POLL_SECONDS) -> None:
    """Deliver whatever is due, then look again; waits ``idle_poll`` seconds only when idle."""
    while not stop.is_set():
        try:
            program = await app.programs.get()
            report = await app.deliverer.deliver_due(program, utc_now)
        except ProgramError:
            report = None
        except Exception:  # keep delivering: the outbox keeps the work, the error is logged and counted
            log.exception("delivery loop failed; trying again shortly")
            report = None
        if report and (report.sent or report.failed or report.retrying or report.verified):
            log.info("delivered %d, verified %d, retrying %d, failed %d", report.sent, report.verified, report.retrying, report.failed)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), idle_poll)


async def run_worker(
    app: App, stop: asyncio.Event | None = None, tick_seconds: float = TICK_SECONDS, metrics_at: tuple[str, int] | None = None
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set). Ticks only insert under unique keys and
    deliveries are leased, so two workers never send the same message twice. With
    ``metrics_at`` (host, port) the worker serves its own /metrics there."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    metrics_site = None
    if metrics_at is not None:
        token = app.settings.reinforce_metrics_token
        metrics_site = await start_metrics_site(app.db, token.get_secret_value() if token else None, *metrics_at)
        log.info("worker metrics at http://%s:%d/metrics", *metrics_at)
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        tick_job, "interval", seconds=tick_seconds, args=[app], next_run_time=utc_now(), max_instances=1, coalesce=True, id="tick"
    )
    scheduler.start()
    delivering = asyncio.create_task(delivery_loop(app, stop)) if app.chats else None
    log.info("worker started: tick every %d s, delivery %s", tick_seconds, "running" if delivering else "off (no chat platform configured)")
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        if delivering is not None:
            await delivering
        if metrics_site is not None:
            await metrics_site.cleanup()
        await app.close()
        log.info("worker stopped")
