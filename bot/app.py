"""Composition root: everything the processes need, built from one Settings object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.base import ChatPort
from bot.inbound import InboundHandler
from bot.programs import ProgramSource
from bot.settings import Settings
from storage.db import Database


@dataclass
class App:
    settings: Settings
    db: Database
    programs: ProgramSource
    inbound: InboundHandler
    chats: dict[str, ChatPort] = field(default_factory=dict)
    slack: Any = None  # adapters.slack.app.SlackAdapter when Slack is configured

    async def start(self) -> None:
        """Open what needs a running event loop (HTTP connection pools)."""
        if self.slack is not None:
            await self.slack.start()

    async def close(self) -> None:
        if self.slack is not None:
            await self.slack.stop()
        await self.db.close()


def build(settings: Settings) -> App:
    """The application for ``settings``: only the platforms that are configured are built."""
    db = Database(settings.database_url)
    programs = ProgramSource(db)
    chats: dict[str, ChatPort] = {}
    inbound = InboundHandler(db, programs, chats)
    app = App(settings=settings, db=db, programs=programs, inbound=inbound, chats=chats)
    if settings.slack_configured:
        from adapters.slack.app import SlackAdapter

        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        app.slack = SlackAdapter(
            inbound,
            api_url=settings.slack_api_url,
            signing_secret=secret,
            engine=db.engine,
            bot_token=settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None,
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value() if settings.slack_client_secret else None,
        )
        chats["slack"] = app.slack.chat
    return app


def configuration_report(settings: Settings) -> list[str]:
    """One line per integration saying whether it is on and, if not, what would turn it on."""
    lines = []
    if settings.slack_client_id:
        lines.append("Slack: multi-workspace app; installs at /slack/install, events at /slack/events")
    elif settings.slack_bot_token:
        lines.append("Slack: single-workspace app; events at /slack/events")
    else:
        lines.append("Slack: not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth)")
    if settings.slack_configured and settings.slack_app_token:
        lines.append("Slack: Socket Mode on (SLACK_APP_TOKEN): no public URL needed")
    if settings.teams_configured:
        lines.append("Teams: credentials are set, but this version has no Teams adapter yet; Teams requests are not served")
    else:
        lines.append("Teams: not configured (set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD)")
    if settings.llm_configured:
        lines.append(f"LLM: {settings.openai_base_url or 'OpenAI'} with model {settings.reinforce_llm_model}")
    else:
        lines.append("LLM: not configured; rehearsal feedback uses the offline rubric check (set OPENAI_API_KEY or OPENAI_BASE_URL)")
    return lines
