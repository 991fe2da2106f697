"""Composition root: everything the processes need, built from one Settings object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.base import ChatPort, RehearsalPort
from bot.delivery import Deliverer
from bot.digests import digest_message
from bot.files import load_scenarios
from bot.inbound import InboundHandler
from bot.programs import ProgramSource
from bot.ratelimit import Limits, RateLimiter
from bot.rehearsals import Rehearsals
from bot.settings import Settings
from nudges.messages import Message
from nudges.weeks import IsoWeek
from storage.db import Database
from storage.outbox import Claimed

DEFAULT_SCENARIOS = Path(__file__).resolve().parent.parent / "examples" / "scenarios.yaml"


@dataclass
class App:
    settings: Settings
    db: Database
    programs: ProgramSource
    inbound: InboundHandler
    rehearsals: Rehearsals
    chats: dict[str, ChatPort] = field(default_factory=dict)
    deliverer: Deliverer = field(init=False)
    slack: Any = None  # adapters.slack.app.SlackAdapter when Slack is configured
    teams: Any = None  # adapters.teams.app.TeamsAdapter when Teams is configured

    def __post_init__(self) -> None:
        self.deliverer = Deliverer(self.db, self.chats, limiter=RateLimiter(rate_limits(self.settings)))
        self.deliverer.renderers["digest"] = self._render_digest
        self.deliverer.renderers.update(self.rehearsals.renderers())

    async def _render_digest(self, row: Claimed, now: datetime) -> Message:
        program = await self.programs.get()
        return await digest_message(self.db, program, row.payload["cohort"], IsoWeek.parse(row.payload["week"]), now)

    async def start(self) -> None:
        """Open what needs a running event loop (HTTP connection pools)."""
        if self.slack is not None:
            await self.slack.start()
        if self.teams is not None:
            await self.teams.start()

    async def close(self) -> None:
        await self.rehearsals.drain()
        if hasattr(self.rehearsals.coach, "aclose"):
            await self.rehearsals.coach.aclose()
        if self.slack is not None:
            await self.slack.stop()
        if self.teams is not None:
            await self.teams.stop()
        await self.db.close()


def build(settings: Settings) -> App:
    """The application for ``settings``: only the platforms that are configured are built."""
    db = Database(settings.database_url)
    programs = ProgramSource(db)
    chats: dict[str, ChatPort] = {}
    book = load_scenarios(settings.reinforce_scenarios or str(DEFAULT_SCENARIOS))
    rehearsals = Rehearsals(db, programs, book, coach_for(settings), chats)
    inbound = InboundHandler(db, programs, chats, rehearsals)
    app = App(settings=settings, db=db, programs=programs, inbound=inbound, rehearsals=rehearsals, chats=chats)
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
    if settings.teams_enabled:
        from adapters.teams.app import TeamsAdapter
        from storage.addresses import AddressBook

        app.teams = TeamsAdapter(
            inbound,
            AddressBook(db, "teams"),
            app_id=settings.microsoft_app_id,
            app_password=settings.microsoft_app_password.get_secret_value() if settings.microsoft_app_password else None,
            tenant_id=settings.microsoft_app_tenant_id,
            app_type=settings.microsoft_app_type,
        )
        chats["teams"] = app.teams.chat
    return app


def coach_for(settings: Settings) -> RehearsalPort:
    """The LLM when one is configured, else the offline rubric check (labeled "no AI")."""
    if not settings.llm_configured:
        from adapters.rubric import RubricCoach

        return RubricCoach()
    from adapters.llm import OpenAiLlm

    return OpenAiLlm(
        model=settings.reinforce_llm_model,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        timeout=settings.reinforce_llm_timeout,
        max_retries=settings.reinforce_llm_max_retries,
    )


def rate_limits(settings: Settings) -> Limits:
    per_tenant = {"teams": settings.reinforce_teams_rate_per_tenant}
    if settings.reinforce_slack_rate_per_workspace is not None:
        per_tenant["slack"] = settings.reinforce_slack_rate_per_workspace
    return Limits(
        per_conversation={"slack": settings.reinforce_slack_rate_per_channel, "teams": settings.reinforce_teams_rate_per_conversation},
        per_tenant=per_tenant,
    )


def configuration_report(settings: Settings) -> list[str]:
    """One line per integration saying whether it is on and, if not, what would turn it on."""
    lines = []
    if settings.slack_client_id:
        lines.append("Slack: multi-workspace app; installs at /slack/install, events at /slack/events")
    elif settings.slack_bot_token:
        lines.append("Slack: single-workspace app; events at /slack/events")
    else:
        lines.append(
            "Slack: not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth)"
        )
    if settings.slack_configured and settings.slack_app_token:
        lines.append("Slack: Socket Mode on (SLACK_APP_TOKEN): no public URL needed")
    if settings.teams_configured:
        lines.append(f"Teams: bot {settings.microsoft_app_id} ({settings.microsoft_app_type}); messages at /api/messages")
    elif settings.teams_enabled:
        lines.append("Teams: local development (REINFORCE_TEAMS_DEV): /api/messages accepts unauthenticated requests")
    else:
        lines.append(
            "Teams: not configured (set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD, or REINFORCE_TEAMS_DEV=1 for local development)"
        )
    if settings.llm_configured:
        lines.append(f"LLM: {settings.openai_base_url or 'OpenAI'} with model {settings.reinforce_llm_model}")
    else:
        lines.append("LLM: not configured; rehearsal feedback uses the offline rubric check (set OPENAI_API_KEY or OPENAI_BASE_URL)")
    return lines
