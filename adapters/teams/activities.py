"""What an activity must carry before the bot runs on it: botbuilder calls the serviceUrl it is
given and indexes into the sender, recipient and conversation, and their ids are stored.

Teams always sends these; only an unauthenticated local-development endpoint (or a bug) can
receive anything else, which then gets a 400 rather than a 500.
"""

from __future__ import annotations

from botbuilder.schema import Activity

from adapters.base import holds_nul

# Column sizes of what is stored from an activity (storage.models.ConversationRef): a member
# is "tenant:aad", a channel its conversation id. Teams' own ids are far shorter.
MAX_TENANT, MAX_USER, MAX_CONVERSATION = 100, 150, 300
# Activity ids go into the URL of a reply or an update.
MAX_ACTIVITY_ID = 200


def _address_problem(activity: Activity) -> str | None:
    """Why the activity's service URL or ids cannot be answered to, or None."""
    url = activity.service_url
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2000:
        return "serviceUrl is not a URL"
    for name, value in (("id", activity.id), ("replyToId", activity.reply_to_id)):
        if value is not None and (not isinstance(value, str) or len(value) > MAX_ACTIVITY_ID):
            return f"{name} is not an activity id"
    return None


def routing_problem(activity: Activity) -> str | None:
    """Why ``activity`` cannot be answered as Teams would expect, or None. Names fields, never values."""
    problem = _address_problem(activity)
    if problem is not None:
        return problem
    for name, account, limit in (
        ("from", activity.from_property, MAX_USER),
        ("recipient", activity.recipient, MAX_USER),
        ("conversation", activity.conversation, MAX_CONVERSATION),
    ):
        if account is None or not isinstance(account.id, str) or not account.id or len(account.id) > limit:
            return f"{name}.id is missing or too long"
    aad = activity.from_property.aad_object_id
    if aad is not None and (not isinstance(aad, str) or len(aad) > MAX_USER):
        return "from.aadObjectId is not an id"
    tenant = activity.conversation.tenant_id
    if tenant is not None and (not isinstance(tenant, str) or len(tenant) > MAX_TENANT):
        return "conversation.tenantId is not an id"
    if holds_nul(
        [
            activity.text,
            activity.value,
            activity.channel_data,
            activity.id,
            activity.reply_to_id,
            aad,
            tenant,
            activity.from_property.id,
            activity.from_property.name,
            activity.conversation.id,
        ]
    ):
        # Teams never sends one, and PostgreSQL refuses it in any text, even a lookup.
        return "a field holds a NUL character"
    data = activity.channel_data
    if data is not None and not isinstance(data, dict):
        return "channelData is not an object"
    listed = (data or {}).get("tenant")
    if listed is not None and not (
        isinstance(listed, dict) and isinstance(listed.get("id", ""), str) and len(listed.get("id", "")) <= MAX_TENANT
    ):
        return "channelData.tenant is not an id"
    return None
