"""What the Slack adapter knows of channels and workspaces: the answers that mean "the bot is not in
this channel", what auth.test and conversations.info say, and the words that tell a person how to
let the bot in."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MENTION", "NOT_A_MEMBER", "ChannelState", "Workspace", "invite_fix", "not_found_fix"]

# What Slack answers a call in a channel the bot is not in: a public channel it has not joined
# (posting there needs chat:write.public, reading its history needs membership), or a channel
# Slack does not show it at all (a private channel it was not invited to, or a wrong id).
NOT_A_MEMBER = ("not_in_channel", "channel_not_found")
MENTION = "@Reinforce"  # the bot's display name (slack/manifest.yml), as people type it to invite it


@dataclass(frozen=True)
class Workspace:
    """What auth.test says about a bot token: its workspace, its bot user, and the scopes the
    workspace granted it (the x-oauth-scopes header of any Web API answer)."""

    team_id: str
    team: str
    bot_user_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class ChannelState:
    """What conversations.info says about a channel, as far as posting there is concerned."""

    id: str
    name: str
    private: bool
    member: bool
    archived: bool


def invite_fix(channel: str, name: str | None) -> str:
    """How a person lets the bot into a private channel: the words an admin is sent."""
    where = f"#{name}" if name else f"the private channel {channel}"
    return f"invite {MENTION} to {where} (open the channel in Slack and type /invite {MENTION})"


def not_found_fix(channel: str) -> str:
    """What to do about a channel id Slack shows the bot nothing of."""
    return f"if it is a private channel, {invite_fix(channel, None)}; otherwise correct the channel id in the program file"
