"""Composition root: everything the processes need, built from one Settings object."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.base import ChatPort
from bot.settings import Settings
from storage.db import Database


@dataclass
class App:
    settings: Settings
    db: Database
    chats: dict[str, ChatPort] = field(default_factory=dict)

    async def close(self) -> None:
        await self.db.close()


def build(settings: Settings) -> App:
    """The application for ``settings``. Chat adapters join here as they are built."""
    return App(settings=settings, db=Database(settings.database_url))


def configuration_report(settings: Settings) -> list[str]:
    """One line per integration saying whether it is on and, if not, what would turn it on."""
    lines = []
    if settings.slack_configured:
        lines.append("Slack: credentials are set, but this version has no Slack adapter yet; Slack requests are not served")
    else:
        lines.append("Slack: not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth)")
    if settings.teams_configured:
        lines.append("Teams: credentials are set, but this version has no Teams adapter yet; Teams requests are not served")
    else:
        lines.append("Teams: not configured (set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD)")
    if settings.llm_configured:
        lines.append(f"LLM: {settings.openai_base_url or 'OpenAI'} with model {settings.reinforce_llm_model}")
    else:
        lines.append("LLM: not configured; rehearsal feedback uses the offline rubric check (set OPENAI_API_KEY or OPENAI_BASE_URL)")
    return lines
