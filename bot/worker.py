"""The worker process: an APScheduler loop that delivers the outbox."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import App
from bot.checkins import deliver_outbox
from bot.programs import program_in_force
from nudges.program import ProgramError

log = logging.getLogger(__name__)
DELIVERY_INTERVAL_SECONDS = 30


async def deliver_job(app: App) -> None:
    """Deliver whatever is due (the start-up report already said if no platform is configured)."""
    if not app.chats:
        log.debug("no chat platform is configured: queued messages stay queued")
        return
    try:
        program = await program_in_force(app.db)
    except ProgramError as exc:
        log.info("%s", exc)
        return
    report = await deliver_outbox(app.db, program, app.chats, datetime.now(UTC))
    if report.sent or report.failed or report.retrying:
        log.info("delivered %d, retrying %d, failed %d", report.sent, report.retrying, report.failed)


async def run_worker(app: App) -> None:
    """Run until SIGINT/SIGTERM. Jobs are idempotent, so two workers never double-send."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(deliver_job, "interval", seconds=DELIVERY_INTERVAL_SECONDS, args=[app], next_run_time=datetime.now(UTC),
                      max_instances=1, coalesce=True, id="deliver")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    scheduler.start()
    log.info("worker started: delivering every %d s", DELIVERY_INTERVAL_SECONDS)
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await app.close()
        log.info("worker stopped")
