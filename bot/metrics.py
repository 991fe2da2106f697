"""Prometheus metrics: what each process counts, the outbox read from the database when scraped,
and the /metrics endpoint that serves both.

Counters live in the process that does the counting (deliveries in the worker, clicks in the
web process), so each process serves its own /metrics: `reinforce serve` on its webhook port
or on a port of its own, `reinforce worker --metrics-port`. The outbox figures are the same
from any process, because they are computed from the database at scrape time.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from storage import outbox
from storage.db import Database

DELIVERIES = Counter("reinforce_deliveries", "Outbox deliveries by kind and outcome", ["kind", "status"])
RETRIES = Counter("reinforce_delivery_retries", "Deliveries put back for another attempt", ["platform", "reason"])
RATE_LIMITED = Counter("reinforce_rate_limited", "Platform answers of 429 Too Many Requests", ["platform"])
CLICKS = Counter("reinforce_clicks", "Checklist answer clicks by outcome", ["status"])
ERRORS = Counter("reinforce_errors", "Errors logged by the application", ["where"])
OUTBOX_LAG = Gauge("reinforce_outbox_lag_seconds", "Age of the oldest due, unsent delivery (read from the database)")
OUTBOX_PENDING = Gauge("reinforce_outbox_pending", "Deliveries not sent yet, due or not (read from the database)")
OUTBOX_FAILED = Gauge("reinforce_outbox_failed", "Deliveries that failed for good (read from the database)")

DB_KEY = web.AppKey("metrics_db", Database)
TOKEN_KEY = web.AppKey("metrics_token", str)


async def read_outbox(db: Database, now: datetime) -> None:
    """Set the outbox gauges from the database."""
    async with db.session() as session:
        backlog = await outbox.backlog(session, now)
    OUTBOX_LAG.set((now - backlog.oldest_due).total_seconds() if backlog.oldest_due else 0.0)
    OUTBOX_PENDING.set(backlog.pending)
    OUTBOX_FAILED.set(backlog.failed)


async def serve_metrics(request: web.Request) -> web.Response:
    """GET /metrics: 401 without the bearer token when one is configured."""
    token = request.app.get(TOKEN_KEY)
    if token and not _bearer_matches(request.headers.get("Authorization", ""), token):
        return web.Response(status=401, text="a bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    try:
        await read_outbox(request.app[DB_KEY], datetime.now(UTC))
    except Exception:  # the counters are still worth serving; the database's state is /healthz's to report
        ERRORS.labels("metrics").inc()
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def add_metrics(web_app: web.Application, db: Database, token: str | None) -> None:
    """Serve /metrics from ``web_app``, reading the outbox from ``db``."""
    web_app[DB_KEY] = db
    if token:
        web_app[TOKEN_KEY] = token
    web_app.router.add_get("/metrics", serve_metrics)


def metrics_app(db: Database, token: str | None) -> web.Application:
    """A web app that serves only /metrics: for the worker, or for serve on a port of its own."""
    web_app = web.Application()
    add_metrics(web_app, db, token)
    return web_app


async def start_metrics_site(db: Database, token: str | None, host: str, port: int) -> web.AppRunner:
    """Serve /metrics on ``host``:``port`` until the returned runner is cleaned up."""
    runner = web.AppRunner(metrics_app(db, token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
