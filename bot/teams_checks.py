"""`reinforce doctor` for Teams: the app's credentials obtain a token, the program's channels and members can be reached."""

from __future__ import annotations

import asyncio
from typing import Any

import msal
import msal.exceptions
import requests

from bot.checks import Check, ProgramChannel, channels_of, listing, ok, problem
from bot.settings import Settings
from nudges.program import Program
from storage import addresses
from storage.db import Database

__all__ = ["BOT_FRAMEWORK_SCOPE", "teams_checks"]

BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"  # what the bot's token is for: the Bot Connector
CREDENTIALS_FIX = (
    "check MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD (a client secret of the app registration, not its id) and "
    "MICROSOFT_APP_TENANT_ID against the Azure Bot's Configuration page (docs/teams.md)"
)


async def teams_checks(settings: Settings, db: Database | None, program: Program | None, unlinked: list[str] | None) -> list[Check]:
    """The Teams checks in order; those that read the database are left out without one."""
    checks = [await _token(settings)]
    if db is not None and program is not None:
        checks += [await _channel(db, channel) for channel in channels_of(program, "teams")]
    if unlinked is not None:
        checks.append(_members(unlinked))
    return checks


async def _token(settings: Settings) -> Check:
    kind = settings.microsoft_app_type
    if kind == "UserAssignedMSI":
        return ok(
            "teams.token", "user-assigned managed identity: Azure hands its tokens only to the host it is assigned to; not checked here"
        )
    # A single-tenant bot's tokens come from its own tenant; a multi-tenant one's from Bot Framework's.
    tenant = settings.microsoft_app_tenant_id if kind == "SingleTenant" else "botframework.com"
    authority = settings.microsoft_login_url.rstrip("/") + f"/{tenant}"
    password = settings.microsoft_app_password.get_secret_value() if settings.microsoft_app_password else ""
    refusal = await asyncio.to_thread(_token_refusal, settings.microsoft_app_id or "", password, authority)
    if refusal is not None:
        return problem("teams.token", f"no token for app {settings.microsoft_app_id} ({kind}) from {authority}: {refusal}", CREDENTIALS_FIX)
    return ok("teams.token", f"app {settings.microsoft_app_id} ({kind}) obtains a Bot Framework token from {authority}")


def _token_refusal(client_id: str, secret: str, authority: str) -> str | None:
    """MSAL's client-credentials flow, as botbuilder runs it before each send (blocking); what went wrong, or None."""
    try:
        # instance_discovery=False: the authority is the configured one (MICROSOFT_LOGIN_URL), as for Graph.
        app = msal.ConfidentialClientApplication(
            client_id, client_credential=secret, authority=authority, instance_discovery=False, timeout=30
        )
        result: dict[str, Any] = app.acquire_token_for_client(scopes=[BOT_FRAMEWORK_SCOPE])
    except requests.RequestException as exc:
        return f"the identity platform did not answer ({exc.__class__.__name__})"
    except (ValueError, msal.exceptions.MsalError) as exc:  # a wrong tenant, or the endpoint failing
        return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    if "access_token" in result:
        return None
    description = (str(result.get("error_description") or "").strip().splitlines() or [""])[0]
    return f"{result.get('error')}: {description}"


async def _channel(db: Database, channel: ProgramChannel) -> Check:
    name, uses = f"teams.channel.{channel.id}", " and ".join(channel.uses)
    async with db.session() as session:
        found = await addresses.find(session, "teams", channel.id)
    if found is None:
        return problem(
            name,
            f"{uses}: the bot has no conversation reference for it, so it cannot post there",
            "add the Reinforce app to the team that holds the channel (Teams: the team's ... -> Manage team -> Apps), "
            "then @mention Reinforce once in that channel",
        )
    return ok(name, f"{uses}: reference stored {found.updated_at:%Y-%m-%d}")


def _members(unlinked: list[str]) -> Check:
    if not unlinked:
        return ok("teams.members", "every Teams member of the program has the app (or is in a team that has it)")
    return problem(
        "teams.members",
        f"{len(unlinked)} without the Reinforce app (nor in a team that has it), so the bot cannot write to them: {listing(unlinked)}",
        "`reinforce teams install COHORT` installs it for a cohort's members (docs/teams.md), or they add it in Teams (Apps -> Reinforce)",
    )
