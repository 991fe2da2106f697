"""docs/slack.md, steps 5 to 10, done in order as an admin would, against the fake Slack Web API:
the secrets set, `db upgrade`, `program load`, `serve` (answering Slack's URL verification), the bot
invited to the private review channel, `worker`, and `reinforce doctor` after each step, ending
with every check passed. Each command is the real `reinforce`, in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.files import load_program
from storage import heartbeats
from storage.db import Database
from tests.fakes.slack import FakeSlack, running_fake_slack, sign
from tests.rig import EXAMPLE, TEAM, slack_user_of

ROOT = Path(__file__).resolve().parents[2]
TOKEN, SECRET = "xoxb-setup-1", "the-signing-secret"


@dataclass
class Admin:
    """The admin's shell: the environment they set, and the processes they started."""

    slack: FakeSlack
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    started: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def run(self, *args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env=self.env,
            cwd=self.folder,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def start(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env=self.env,
            cwd=self.folder,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.started.append(process)

    async def doctor(self) -> tuple[int, dict[str, dict[str, Any]]]:
        status, out, err = await self.run("doctor", "--json")
        assert out, err
        return status, {check["name"]: check for check in json.loads(out)["checks"]}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_", "REINFORCE_", "DATABASE_URL"))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    """A workspace with the program's people in it, a public sponsor channel and a private review
    channel the bot is not in yet (the state right after steps 1-4)."""
    async with running_fake_slack() as slack:
        program = load_program(str(EXAMPLE))
        people = {m.email for c in program.cohorts for m in c.members if m.platform == "slack"}
        people |= {"vp.product@example.com", "owner@example.com", "coach@example.com"}
        for email in sorted(people):
            slack.add_user(email, TEAM, slack_user_of(email))
        slack.add_channel("C0SPONSOR", "pilot-sponsors")
        slack.add_channel("C0REVIEW", "coach-review", private=True)
        admin = Admin(slack, tmp_path, _clean_env())
        try:
            yield admin
        finally:
            for process in admin.started:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), timeout=30)


async def _until(condition: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await condition():
            return result
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_the_documented_slack_steps_end_with_every_check_passed(admin: Admin) -> None:
    # Step 5: the secrets (and where the database is, and, for the test, where Slack is).
    admin.env.update(
        SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=admin.slack.url, DATABASE_URL=f"sqlite:///{admin.folder / 'r.db'}"
    )
    status, checks = await admin.doctor()
    assert status == 1
    assert checks["slack.token"]["status"] == checks["slack.scopes"]["status"] == "ok"
    assert checks["database"]["status"] == "problem" and "reinforce db upgrade" in checks["database"]["fix"]

    # Step 6.
    assert (await admin.run("db", "upgrade"))[0] == 0
    assert (await admin.doctor())[1]["database"]["status"] == "ok"

    # Step 7: the program file, with the channel ids copied from Slack.
    (admin.folder / "program.yaml").write_text(EXAMPLE.read_text())
    status, out, err = await admin.run("program", "load", "program.yaml")
    assert status == 0, err
    status, checks = await admin.doctor()
    assert checks["program"]["status"] == checks["slack.people"]["status"] == "ok"

    # Step 8: serve, and Slack's verification of the Events request URL.
    port = _free_port()
    await admin.start("serve", "--host", "127.0.0.1", "--port", str(port))
    async with aiohttp.ClientSession() as http:

        async def healthy() -> bool:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await _until(healthy)
        body = json.dumps({"token": "legacy", "challenge": "3eZbrw1aBm2r", "type": "url_verification"})
        headers = {"Content-Type": "application/json", **sign(SECRET, body)}
        async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as response:
            assert response.status == 200
            assert "3eZbrw1aBm2r" in await response.text()

    # Step 9: the private review channel needs an invitation; the public sponsor channel does not.
    status, checks = await admin.doctor()
    assert checks["slack.channel.C0REVIEW"]["status"] == "problem"
    assert "invite @Reinforce" in checks["slack.channel.C0REVIEW"]["fix"]
    assert checks["slack.channel.C0SPONSOR"]["status"] == "ok"
    admin.slack.invite("C0REVIEW")
    assert (await admin.doctor())[1]["slack.channel.C0REVIEW"]["status"] == "ok"

    # Step 10: the worker; its first tick records its heartbeat.
    await admin.start("worker")
    database = Database(admin.env["DATABASE_URL"])
    try:

        async def beating() -> bool:
            async with database.session() as session:
                return await heartbeats.newest(session, "worker") is not None

        await _until(beating)
    finally:
        await database.close()
    status, out, err = await admin.run("doctor")
    assert status == 0, out + err
    assert out.strip().endswith("all checks passed"), out
    assert "problem" not in out
