"""The web process: one aiohttp server for the platforms' webhooks, health and metrics."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import text

from bot.app import App
from bot.metrics import add_metrics

log = logging.getLogger(__name__)
APP_KEY = web.AppKey("reinforce", App)


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers; 503 otherwise, so a load balancer stops routing here."""
    app = request.app[APP_KEY]
    try:
        async with app.db.session() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not healthy"; the reason is logged, not shown
        log.warning("health check failed: %s", exc.__class__.__name__)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok"})


def make_web_app(app: App, *, metrics: bool = True) -> web.Application:
    """The web process's routes; ``metrics=False`` when /metrics is served on a port of its own."""
    web_app = web.Application()
    web_app[APP_KEY] = app
    web_app.router.add_get("/healthz", healthz)
    if metrics:
        add_metrics(web_app, app.db, _token(app))
    if app.slack is not None and app.slack.signing_secret:
        web_app.router.add_post("/slack/events", app.slack.handle)
        if app.slack.app.oauth_flow is not None:
            web_app.router.add_get("/slack/install", app.slack.handle)
            web_app.router.add_get("/slack/oauth_redirect", app.slack.handle)
    if app.teams is not None:
        web_app.router.add_post("/api/messages", app.teams.handle)

    async def start(_web_app: web.Application) -> None:
        await app.start()

    async def close(_web_app: web.Application) -> None:
        await app.close()

    web_app.on_startup.append(start)
    web_app.on_cleanup.append(close)
    return web_app


def _token(app: App) -> str | None:
    token = app.settings.reinforce_metrics_token
    return token.get_secret_value() if token else None
