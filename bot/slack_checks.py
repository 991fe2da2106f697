"""`reinforce doctor` for Slack: the bot token, the scopes it was granted, the people linked, the channels it posts in."""

from __future__ import annotations

from adapters.base import DeliveryError
from adapters.slack.channels import MENTION, ChannelState, Workspace, invite_fix, not_found_fix
from adapters.slack.chat import SlackChat
from adapters.slack.scopes import BOT_SCOPES
from bot.checks import Check, ProgramChannel, channels_of, listing, ok, problem
from nudges.program import Program

__all__ = ["slack_checks"]

REINSTALL = (
    "give the app the scopes in slack/manifest.yml (api.slack.com/apps -> your app -> App Manifest), then reinstall it "
    "(Install App -> Reinstall to Workspace) and put the Bot User OAuth Token it shows in SLACK_BOT_TOKEN"
)
CHANNEL_ID = "in Slack, open the channel's details: its id (C...) is at the bottom of the About tab"


async def slack_checks(chat: SlackChat, program: Program | None, unlinked: list[str] | None) -> list[Check]:
    """The Slack checks in order; the later ones are left out once the token is refused."""
    try:
        workspaces = await chat.workspaces()
    except DeliveryError as exc:
        return [
            problem(
                "slack.token",
                f"Slack refused the bot token: {exc.reason}",
                "copy the Bot User OAuth Token (xoxb-...) from api.slack.com/apps -> your app -> Install App into SLACK_BOT_TOKEN "
                "(reinstall the app if the token was revoked)",
            )
        ]
    if not workspaces:
        return [problem("slack.token", "no workspace has installed the app yet", "open https://<your host>/slack/install and approve")]
    checks = [ok("slack.token", ", ".join(f"{w.team or w.team_id} ({w.team_id}) as bot user {w.bot_user_id}" for w in workspaces))]
    checks.append(_scopes(workspaces))
    if unlinked is not None:
        checks.append(_people(unlinked))
    if program is not None:
        granted = frozenset.intersection(*(w.scopes for w in workspaces))
        checks += [await _channel(chat, channel, granted) for channel in channels_of(program, "slack")]
    return checks


def _scopes(workspaces: list[Workspace]) -> Check:
    missing = {w.team_id: sorted(set(BOT_SCOPES) - w.scopes) for w in workspaces}
    lacking = {team: scopes for team, scopes in missing.items() if scopes}
    if not lacking:
        return ok("slack.scopes", f"all {len(BOT_SCOPES)} scopes the app uses are granted")
    where = "; ".join(f"{team} lacks {', '.join(scopes)}" for team, scopes in lacking.items())
    return problem("slack.scopes", where, REINSTALL)


def _people(unlinked: list[str]) -> Check:
    if not unlinked:
        return ok("slack.people", "everyone of the program who uses Slack is linked to their Slack account")
    return problem(
        "slack.people",
        f"{len(unlinked)} not linked to a Slack account, so they get nothing and cannot act: {listing(unlinked)}",
        "each needs a Slack account in the workspace under the email the program file gives (or correct the email in the file); "
        "then run `reinforce program load FILE` again (anyone who writes to the bot first is linked then)",
    )


async def _channel(chat: SlackChat, channel: ProgramChannel, granted: frozenset[str]) -> Check:
    name, uses = f"slack.channel.{channel.id}", " and ".join(channel.uses)
    try:
        state = await chat.channel(channel.id)
    except DeliveryError as exc:
        return problem(name, f"{uses}: Slack did not say whether the bot can post there: {exc.reason}", "run `reinforce doctor` again")
    if state is None:
        return problem(
            name,
            f"{uses}: Slack shows {MENTION} no channel {channel.id}",
            f"{not_found_fix(channel.id)} ({CHANNEL_ID})",
        )
    return _postable(name, uses, state, granted)


def _postable(name: str, uses: str, state: ChannelState, granted: frozenset[str]) -> Check:
    where = f"{uses}: #{state.name}"
    if state.archived:
        return problem(name, f"{where} is archived", "unarchive it, or name another channel in the program file")
    if state.member:
        return ok(name, f"{where}: {MENTION} is a member")
    if state.private:
        return problem(name, f"{where} is private and {MENTION} is not in it", invite_fix(state.id, state.name))
    if granted & {"chat:write.public", "channels:join"}:
        how = "posts there without joining (chat:write.public)" if "chat:write.public" in granted else "joins it to post"
        return ok(name, f"{where} is public; {MENTION} is not a member yet and {how}")
    return problem(
        name, f"{where} is public, {MENTION} is not in it and may not join it", f"invite {MENTION} to #{state.name}, or {REINSTALL}"
    )
