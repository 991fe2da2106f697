"""Which bot scopes the Slack app needs, and why: the one list behind slack/manifest.yml and the OAuth install.

Each entry names a Web API method the app calls (or an event it subscribes to, or a feature it
uses) and the bot-token scopes Slack's reference page for it lists, narrowed to the
conversations Reinforce uses (DMs, public and private channels; never group DMs). A test finds
every slack_sdk method the code calls and fails when one is missing here, and checks that the
manifest grants exactly ``BOT_SCOPES``.
"""

from __future__ import annotations

__all__ = ["BOT_SCOPES", "EVENTS", "FEATURES", "WEB_API"]

# Web API method -> bot scopes it needs (docs.slack.dev/reference/methods/<method>).
WEB_API: dict[str, tuple[str, ...]] = {
    "auth.test": (),  # who the token is; slack_bolt calls it to authorize requests
    "oauth.v2.access": (),  # the OAuth install's code exchange (slack_bolt)
    "chat.postMessage": (
        "chat:write",
        # Digests and review posts go to public channels the bot may not be in.
        "chat:write.public",
    ),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    # The retry check after a crash reads the latest messages where a delivery went: a
    # member's DM, and the sponsor and review channels, public or private.
    "conversations.history": ("im:history", "channels:history", "groups:history"),
    "conversations.open": ("im:write",),  # a member's DM, to read its history
    "conversations.join": ("channels:join",),  # a public channel, before posting to it
    # `reinforce doctor`, and the name of a channel the bot cannot post in: public and private channels.
    "conversations.info": ("channels:read", "groups:read"),
    "users.lookupByEmail": ("users:read.email",),  # linking people at `program load`
    # A user on first contact: the profile's email needs users:read.email too.
    "users.info": ("users:read", "users:read.email"),
    # files.upload_v2 (the digest chart) is these two calls.
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "views.open": (),  # the note dialog
    "views.publish": (),  # App Home
}

# Event subscription (settings.event_subscriptions.bot_events) -> bot scopes it needs
# (docs.slack.dev/reference/events/<event>).
EVENTS: dict[str, tuple[str, ...]] = {
    "app_home_opened": (),
    "message.im": ("im:history",),  # typed commands and rehearsal turns in the DM
    "user_change": ("users:read",),  # a deactivated user is unlinked and paused
}

# App feature (features.<name> in the manifest) -> bot scopes it needs.
FEATURES: dict[str, tuple[str, ...]] = {
    "slash_commands": ("commands",),  # /reinforce
}

# What the manifest grants and the OAuth install asks for: every scope above, no other.
BOT_SCOPES: tuple[str, ...] = tuple(
    sorted({scope for table in (WEB_API, EVENTS, FEATURES) for scopes in table.values() for scope in scopes})
)
