"""The routing check in front of botbuilder: activities as Teams sends them pass; a missing or
oversized id, or a serviceUrl that is not one, is named."""

from __future__ import annotations

from typing import Any

import pytest
from botbuilder.schema import Activity

from adapters.teams.activities import routing_problem
from tests.fakes.bot_connector import card_submit, channel_message, personal_install, team_install, text_message

URL, TENANT, BOT = "https://smba.example/", "tenant-0001", "28:reinforce-dev"
ACCOUNT = {"id": "29:abc", "name": "Carla", "aadObjectId": "3f73846a-7e80-5a2b-be18-322dfc5ebe0b"}


def _activity(body: dict[str, Any]) -> Activity:
    return Activity().deserialize(body)


@pytest.mark.parametrize(
    "body",
    [
        text_message(URL, TENANT, BOT, ACCOUNT, "help"),
        card_submit(URL, TENANT, BOT, ACCOUNT, "1:1", {"reinforce": "checklist"}),
        personal_install(URL, TENANT, BOT, ACCOUNT),
        personal_install(URL, TENANT, BOT, ACCOUNT, kind="installationUpdate", remove=True),
        team_install(URL, TENANT, BOT, ACCOUNT, "19:team@thread.tacv2"),
        channel_message(URL, TENANT, BOT, ACCOUNT, "19:team@thread.tacv2", "help"),
    ],
    ids=["text", "submit", "install", "uninstall", "team-install", "mention"],
)
def test_activities_as_teams_sends_them_pass(body: dict[str, Any]) -> None:
    assert routing_problem(_activity(body)) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"serviceUrl": None}, "serviceUrl"),
        ({"serviceUrl": "javascript:alert(1)"}, "serviceUrl"),
        ({"from": None}, "from.id"),
        ({"recipient": {"name": "x"}}, "recipient.id"),
        ({"conversation": {"id": "c" * 301}}, "conversation.id"),
        ({"from": {**ACCOUNT, "aadObjectId": "a" * 151}}, "aadObjectId"),
        ({"conversation": {"id": "a:1", "tenantID": "t" * 101}}, "tenantId"),  # the schema's spelling
        ({"channelData": {"tenant": {"id": "t" * 101}}}, "channelData.tenant"),
        ({"id": "i" * 201}, "id"),
        ({"replyToId": "r" * 201}, "replyToId"),
        ({"text": "pause\x00"}, "NUL"),
        ({"value": {"note": ["\x00"]}}, "NUL"),
    ],
)
def test_what_teams_would_not_send_is_named(change: dict[str, Any], field: str) -> None:
    problem = routing_problem(_activity({**text_message(URL, TENANT, BOT, ACCOUNT, "help"), **change}))
    assert problem is not None and field in problem
