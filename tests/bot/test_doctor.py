"""`reinforce doctor` against the fakes: a healthy installation passes, and each thing an admin can
get wrong is named with its fix. Slack through slack_sdk and the fake Web API, Teams tokens through
MSAL and the fake identity platform (HTTPS, test CA), the LLM through the openai client and the
fake chat-completions server; the state comes through the product's own doors (program load,
app installs, the worker's tick)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.checks import Check
from bot.digests import queue_digest
from bot.doctor import diagnose, exit_status, render_json, render_text
from bot.files import load_program
from bot.identity import Identities
from bot.programs import store_program
from bot.settings import Settings
from bot.worker import tick_job
from nudges.weeks import IsoWeek
from storage.db import Database
from tests.fakes.bot_connector import team_install
from tests.fakes.identity import FakeIdentity, TestCA, running_fake_identity
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.rig import BOT, EXAMPLE, MONDAY, SECRET, SPONSOR_CHANNEL, TENANT, Rig, running_rig

APP_ID = "0f3c8d52-7a1e-4b7e-9a3d-2f6c1e8b9a10"
APP_SECRET = "the-client-secret"


@dataclass
class World:
    rig: Rig
    identity: FakeIdentity
    llm: FakeOpenAI

    def settings(self, **overrides: Any) -> Settings:
        """What the operator set: the same database and services as the running installation."""
        options: dict[str, Any] = {
            "database_url": self.rig.db.url,
            "slack_bot_token": "xoxb-rig",
            "slack_signing_secret": SECRET,
            "slack_api_url": self.rig.slack.url,
            "microsoft_app_id": APP_ID,
            "microsoft_app_password": APP_SECRET,
            "microsoft_app_tenant_id": TENANT,
            "microsoft_app_type": "SingleTenant",
            "microsoft_login_url": self.identity.url,
            "openai_base_url": self.llm.base_url,
            "openai_api_key": "sk-test-key-0123456789",
            **overrides,
        }
        return Settings(**options)

    async def set_up(self, *, teams: bool = True, skip_install: str | None = None) -> None:
        """Everything the docs say to do after creating the apps: the bot invited to the private
        review channel (the sponsor channel is public), the Teams app added to the sponsors' team and
        installed for the Teams members, and a worker running."""
        self.rig.slack.add_channel("C0SPONSOR", "pilot-a-sponsors")
        self.rig.slack.add_channel("C0REVIEW", "coach-review", private=True)
        self.rig.slack.invite("C0REVIEW")
        program = await self.rig.app.programs.get()
        members = [m.email for c in program.cohorts for m in c.members if m.platform == "teams"]
        installer = self.rig.teams_account(members[0])
        if teams:
            assert await self.rig.teams_post(team_install(self.rig.teams.url, TENANT, BOT, installer, SPONSOR_CHANNEL)) == 201
        for email in members if teams else ():
            if email != skip_install:
                await self.rig.teams_install(email)
        await tick_job(self.rig.app)  # the worker's tick, which records its heartbeat


@pytest.fixture
async def world(db: Database, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    ca = TestCA.make(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_file))  # MSAL (requests) trusts the fake identity platform
    async with running_rig(db_url) as rig, running_fake_identity(ca, tenant=TENANT) as identity, fake_openai() as llm:
        identity.clients[APP_ID] = APP_SECRET
        llm.responder = lambda _body: "ready"
        yield World(rig, identity, llm)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def _problems(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks if check.status == "problem"}


async def test_a_healthy_installation_passes_every_check(world: World) -> None:
    await world.set_up()

    checks = await diagnose(world.settings())

    assert _problems(checks) == {}, render_text(checks)
    assert exit_status(checks) == 0
    found = _by_name(checks)
    expected = {
        "database", "program", "slack.token", "slack.scopes", "slack.people", "slack.channel.C0SPONSOR", "slack.channel.C0REVIEW",
        "teams.token", f"teams.channel.{SPONSOR_CHANNEL}", "teams.members", "llm", "worker", "outbox", "deliveries",
    }  # fmt: skip
    assert expected <= found.keys()
    assert {c.status for c in checks} == {"ok"}
    assert "is a member" in found["slack.channel.C0REVIEW"].detail
    assert "chat:write.public" in found["slack.channel.C0SPONSOR"].detail
    assert world.identity.requests[-1]["scope"] == "https://api.botframework.com/.default"
    assert world.llm.requests[-1].body["model"] == "gpt-4o-mini"
    assert render_text(checks).endswith("all checks passed")


async def test_what_is_not_configured_is_said_and_is_not_a_problem(world: World) -> None:
    await world.set_up(teams=False)
    # wave-b's digest is for its Teams channel: it waits in the outbox, and that is no lag here.
    program = await world.rig.app.programs.get()
    await queue_digest(world.rig.db, program, "wave-b", IsoWeek.of(MONDAY), datetime.now(UTC) - timedelta(hours=1))

    checks = await diagnose(world.settings(microsoft_app_id=None, openai_base_url=None, openai_api_key=None))

    found = _by_name(checks)
    assert found["teams"].status == found["llm"].status == "not_configured"
    # The Teams members of the program are said to get nothing, without failing the check.
    assert found["teams.people"].status == "not_configured"
    assert "11 take part on teams" in found["teams.people"].detail
    assert found["outbox"].status == "ok"
    assert "1 more wait for a platform not configured here" in found["outbox"].detail
    assert exit_status(checks) == 0, render_text(checks)


async def test_a_bad_slack_token_is_named_with_its_fix(world: World) -> None:
    await world.set_up()
    world.rig.slack.revoked.add("xoxb-rig")

    checks = await diagnose(world.settings())

    token = _problems(checks)["slack.token"]
    assert "invalid_auth" in token.detail
    assert "SLACK_BOT_TOKEN" in token.fix
    assert exit_status(checks) == 1


async def test_a_missing_scope_is_named_with_its_fix(world: World) -> None:
    await world.set_up()
    world.rig.slack.scopes.discard("users:read.email")

    checks = await diagnose(world.settings())

    assert list(_problems(checks)) == ["slack.scopes"]
    scopes = _problems(checks)["slack.scopes"]
    assert "lacks users:read.email" in scopes.detail
    assert "Reinstall to Workspace" in scopes.fix
    assert exit_status(checks) == 1


async def test_a_bot_not_in_a_private_channel_is_named_with_its_fix(world: World) -> None:
    await world.set_up()
    world.rig.slack.channels["C0REVIEW"].bot_member = False  # removed from the channel

    checks = await diagnose(world.settings())

    assert list(_problems(checks)) == ["slack.channel.C0REVIEW"]
    channel = _problems(checks)["slack.channel.C0REVIEW"]
    assert "review channel of pilot-a and review channel of wave-b" in channel.detail
    assert "invite @Reinforce" in channel.fix
    assert exit_status(checks) == 1


async def test_an_unlinked_coach_is_named_with_its_fix(world: World, tmp_path: Path) -> None:
    await world.set_up()
    # The program owner names a coach who has no account in the workspace under that email.
    changed = tmp_path / "program.yaml"
    changed.write_text(EXAMPLE.read_text().replace("coaches: [coach@example.com]", "coaches: [new.coach@example.com]"))
    now = datetime.now(UTC)
    await store_program(world.rig.db, load_program(str(changed)), str(changed), now)
    await Identities(world.rig.db, world.rig.app.chats).link_program(now)

    checks = await diagnose(world.settings())

    assert list(_problems(checks)) == ["slack.people"]
    people = _problems(checks)["slack.people"]
    assert "new.coach@example.com (coach)" in people.detail
    assert "reinforce program load FILE" in people.fix


async def test_a_configured_but_unreachable_llm_is_named_with_its_fix(world: World) -> None:
    await world.set_up()

    checks = await diagnose(world.settings(openai_base_url="http://127.0.0.1:9/v1"))

    assert list(_problems(checks)) == ["llm"]
    llm = _problems(checks)["llm"]
    assert "unreachable" in llm.detail
    assert "OPENAI_BASE_URL" in llm.fix


async def test_a_model_the_server_refuses_is_named_with_its_fix(world: World) -> None:
    await world.set_up()
    world.llm.fail(404, "The model `gpt-9` does not exist or you do not have access to it.")

    checks = await diagnose(world.settings(reinforce_llm_model="gpt-9"))

    llm = _problems(checks)["llm"]
    assert "misconfigured" in llm.detail and "gpt-9" in llm.detail
    assert "REINFORCE_LLM_MODEL" in llm.fix


async def test_a_stopped_worker_is_named_with_its_fix(world: World) -> None:
    await world.set_up()

    checks = await diagnose(world.settings(), now=datetime.now(UTC) + timedelta(minutes=5))

    assert list(_problems(checks)) == ["worker"]
    worker = _problems(checks)["worker"]
    assert "the last heartbeat was 5 min ago" in worker.detail
    assert "start `reinforce worker`" in worker.fix


async def test_a_wrong_teams_secret_and_a_member_without_the_app_are_named_with_their_fixes(world: World) -> None:
    await world.set_up(skip_install="carla@example.com")
    world.identity.clients[APP_ID] = "a-newer-secret"

    checks = await diagnose(world.settings())

    assert list(_problems(checks)) == ["teams.token", "teams.members"]
    token, members = _problems(checks)["teams.token"], _problems(checks)["teams.members"]
    assert "invalid_client" in token.detail
    assert "MICROSOFT_APP_PASSWORD" in token.fix
    assert "carla@example.com (participant)" in members.detail
    assert "reinforce teams install COHORT" in members.fix


async def test_the_json_report_has_one_object_per_check_and_masks_secrets(world: World) -> None:
    import json

    await world.set_up()
    world.rig.slack.revoked.add("xoxb-rig")

    report = json.loads(render_json(await diagnose(world.settings())))

    assert report["ok"] is False
    assert {tuple(sorted(c)) for c in report["checks"]} == {("detail", "fix", "name", "status")}
    assert {c["status"] for c in report["checks"]} <= {"ok", "problem", "not_configured"}
    assert next(c for c in report["checks"] if c["name"] == "slack.token")["status"] == "problem"
    assert "xoxb-rig" not in json.dumps(report)


def test_on_an_empty_database_the_command_reports_what_it_could_not_check_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_", "REINFORCE_", "DATABASE_URL"))}
    # An OAuth (multi-workspace) set-up keeps its workspaces' tokens in the database, which has no tables yet.
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}", SLACK_CLIENT_ID="cid", SLACK_CLIENT_SECRET="cs", SLACK_SIGNING_SECRET="s")
    done = subprocess.run([sys.executable, "-m", "bot", "doctor"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("problem database: the database has no Reinforce tables yet -> fix: run `reinforce db upgrade`")
    assert any(line.startswith("problem platforms: could not be checked") for line in lines)
    assert lines[-1] == "2 problems found"
