"""Installing the Teams app for every Teams member of a cohort (`reinforce teams install`), so the bot can reach people who never added it.

Each member is found in the directory by the email the program file gives (their user
principal name) and the app installed in their personal scope through Microsoft Graph. Graph
answers 409 for an app that is already installed, so running it again installs nothing
twice. Teams then sends the bot the install's conversationUpdate, which links the member as
a personal install by hand would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.teams.graph import AppToken, Graph
from bot.settings import Settings
from nudges.program import Cohort

__all__ = ["InstallError", "InstallReport", "graph_from", "install_for_members", "teams_members"]


class InstallError(ValueError):
    """What the operator must set before the app can be installed."""


@dataclass
class InstallReport:
    installed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)

    def summary(self, cohort: str) -> str:
        total = len(self.installed) + len(self.already) + len(self.not_found)
        return (
            f"{cohort}: installed for {len(self.installed)}, already installed for {len(self.already)}, "
            f"not found {len(self.not_found)} (of {total} Teams members)"
        )


def teams_members(cohort: Cohort) -> list[str]:
    """The emails of the cohort's members who take part on Teams, in program-file order."""
    return [member.email for member in cohort.members if member.platform == "teams"]


def graph_from(settings: Settings) -> Graph:
    """Graph with an app-only token for the bot's own app registration (MICROSOFT_APP_*)."""
    if not settings.microsoft_app_id:
        raise InstallError("MICROSOFT_APP_ID is not set: Teams is not configured here (see docs/teams.md)")
    if settings.microsoft_app_password is None:
        raise InstallError(
            "MICROSOFT_APP_PASSWORD is not set: installing through Microsoft Graph needs the app registration's client secret "
            "(a managed identity cannot be used from this command)"
        )
    if not settings.microsoft_app_tenant_id:
        raise InstallError("MICROSOFT_APP_TENANT_ID is not set: Graph tokens are issued by your organisation's directory (tenant)")
    token = AppToken(
        settings.microsoft_app_id,
        settings.microsoft_app_password.get_secret_value(),
        settings.microsoft_app_tenant_id,
        settings.microsoft_login_url,
        settings.microsoft_graph_url,
    )
    return Graph(settings.microsoft_graph_url, token)


async def install_for_members(graph: Graph, catalog_id: str, emails: list[str], say: Callable[[str], None]) -> InstallReport:
    """Install the catalog app ``catalog_id`` for each of ``emails``, one line each through ``say``.

    Raises GraphError (after the lines of the members already done) when Graph or the token
    endpoint refuses the app itself, such as a permission not granted: the same would happen
    for every member, and running the command again after the fix is safe."""
    report = InstallReport()
    for email in emails:
        user = await graph.user_id(email)
        if user is None:
            report.not_found.append(email)
            say(f"{email}: not found in the directory (no user has this user principal name)")
        elif await graph.install_app(user, catalog_id):
            report.installed.append(email)
            say(f"{email}: installed")
        else:
            report.already.append(email)
            say(f"{email}: already installed")
    return report
