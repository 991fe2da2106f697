"""Requests that are not from Slack: each is refused with 401, never a 500, and costs the log
one line that names the reason and never holds the body (a stranger chooses the body, and
how often to send it)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from storage.db import upgrade
from tests.fakes.slack import block_action, interaction_body, sign
from tests.rig import SECRET, TEAM, running_rig

MARKER = "STRANGER-BODY-MARKER"
BODY = interaction_body(block_action(TEAM, "UANA", "DUANA", "1767600001.000100", MARKER, action_ts="1767610000.000100"))
NOW = str(int(time.time()))
FORGED = {
    "non-numeric timestamp": {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=" + "0" * 64},
    "huge timestamp": {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=" + "0" * 64},
    "bad signature": {"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=" + "0" * 64},
    "wrong secret": sign("another-secret", BODY),
    "stale": sign(SECRET, BODY, timestamp=int(time.time()) - 6 * 60),
    "unsigned": {},
}


def logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records at INFO and above, as `reinforce serve` writes them (it runs without aiohttp's
    access log, which the test server keeps)."""
    return [r for r in caplog.records if r.levelno >= logging.INFO and r.name != "aiohttp.access"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    return url


async def test_every_forged_request_gets_401_and_one_log_line_without_its_body(url: str, caplog: pytest.LogCaptureFixture) -> None:
    # The level is set before the app is built: bolt fixes its loggers' levels when it is
    # made, as `reinforce serve` configures logging before it builds the app.
    caplog.set_level(logging.INFO)
    async with running_rig(url) as rig:
        caplog.clear()
        for name, headers in FORGED.items():
            async with rig.http.post(
                f"{rig.url}/slack/events", data=BODY.encode(), headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
            ) as response:
                assert response.status == 401, name
        records = logged(caplog)
        assert len(records) == len(FORGED), [r.getMessage() for r in records]
        assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
        assert not any(MARKER in r.getMessage() or "payload" in r.getMessage() for r in records)
        assert "the timestamp is not a number" in records[0].getMessage()
        assert "more than 5 minutes off" in records[4].getMessage()
        # Slack's own requests still go through.
        assert "`checkin`" in await rig.slack_command("ana@example.com", "help")


async def test_a_forged_body_that_is_not_even_utf8_is_one_line_too(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_rig(url) as rig:
        caplog.clear()
        status, _text = await rig.slack_post(b"payload=\xff\xfe" + MARKER.encode(), signed=False)
        assert status == 401
        (record,) = logged(caplog)
        assert "unsigned" in record.getMessage() and MARKER not in record.getMessage()
