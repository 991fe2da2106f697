"""`reinforce teams install COHORT` end to end: the real command, MSAL and aiohttp against a fake
identity platform (HTTPS, with a CA made here) and a fake Microsoft Graph."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.graph import FakeGraph, running_fake_graph
from tests.fakes.identity import FakeIdentity, TestCA, running_fake_identity

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "program.yaml"
APP_ID = "0f3c8d52-7a1e-4b7e-9a3d-2f6c1e8b9a10"
CATALOG_ID = "5b1e0f7c-3c2d-4e55-8a61-7f0d9c3b2a11"
# pilot-a's Teams members in examples/program.yaml
PILOT_A_TEAMS = ["carla", "farid", "ines", "liam", "olga", "rosa"]


@dataclass
class Rig:
    identity: FakeIdentity
    graph: FakeGraph
    env: dict[str, str]

    async def reinforce(self, *args: str, **env: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env={**self.env, **env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_", "REINFORCE_", "DATABASE_URL"))}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with examples/program.yaml loaded through the product's own commands, made once
    for the module (each test works on a copy)."""
    path = tmp_path_factory.mktemp("loaded") / "r.db"
    for command in (("db", "upgrade"), ("program", "load", str(EXAMPLE))):
        env = {**_clean_env(), "DATABASE_URL": f"sqlite:///{path}"}
        done = subprocess.run([sys.executable, "-m", "bot", *command], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
async def rig(tmp_path: Path, loaded: Path) -> AsyncIterator[Rig]:
    ca = TestCA.make(tmp_path)
    shutil.copy(loaded, tmp_path / "r.db")
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    async with running_fake_identity(ca, tenant="tenant-1") as identity, running_fake_graph(identity) as graph:
        identity.clients[APP_ID] = "the-secret"
        graph.catalog.add(CATALOG_ID)
        rig = Rig(identity, graph, {**_clean_env(), **database})
        rig.env.update(
            MICROSOFT_APP_ID=APP_ID,
            MICROSOFT_APP_PASSWORD="the-secret",
            MICROSOFT_APP_TENANT_ID="tenant-1",
            MICROSOFT_APP_TYPE="SingleTenant",
            MICROSOFT_LOGIN_URL=identity.url,
            MICROSOFT_GRAPH_URL=graph.url,
            REINFORCE_TEAMS_CATALOG_ID=CATALOG_ID,
            REQUESTS_CA_BUNDLE=str(ca.ca_file),  # MSAL (requests) trusts the test CA
        )
        yield rig


def _directory(graph: FakeGraph, *names: str) -> dict[str, str]:
    ids = {name: f"{name}-aad-id" for name in names}
    for name, user_id in ids.items():
        graph.add_user(f"{name}@example.com", user_id)
    return ids


async def test_installs_for_each_teams_member_once_and_says_who_was_not_found(rig: Rig) -> None:
    ids = _directory(rig.graph, *PILOT_A_TEAMS[:-1])  # rosa is not in the directory
    rig.graph.installed.add((ids["carla"], CATALOG_ID))  # carla added the app herself
    status, out, err = await rig.reinforce("teams", "install", "pilot-a")
    assert status == 1, err
    assert out.splitlines() == [
        "carla@example.com: already installed",
        "farid@example.com: installed",
        "ines@example.com: installed",
        "liam@example.com: installed",
        "olga@example.com: installed",
        "rosa@example.com: not found in the directory (no user has this user principal name)",
        "pilot-a: installed for 4, already installed for 1, not found 1 (of 6 Teams members)",
    ]
    assert err == (
        "reinforce: 1 of them are not in the directory under that email: "
        "correct it in the program file (their user principal name) and run this again\n"
    )
    assert rig.graph.installed == {(ids[name], CATALOG_ID) for name in PILOT_A_TEAMS[:-1]}
    assert {c.body["teamsApp@odata.bind"] for c in rig.graph.installs()} == {f"{rig.graph.url}appCatalogs/teamsApps/{CATALOG_ID}"}
    # One app-only token for the bot's own app, reused for every call of the run.
    assert len(rig.identity.requests) == 1
    token_request = rig.identity.requests[0]
    assert (token_request["client_id"], token_request["grant_type"]) == (APP_ID, "client_credentials")
    assert token_request["scope"] == rig.graph.url.removesuffix("v1.0/") + ".default"

    # Again, once rosa's email is corrected in the directory: only she gets an install.
    rig.graph.add_user("rosa@example.com", "rosa-aad-id")
    posts_before = len(rig.graph.installs())
    status, out, err = await rig.reinforce("teams", "install", "pilot-a")
    assert (status, err) == (0, "")
    assert out.splitlines()[-1] == "pilot-a: installed for 1, already installed for 5, not found 0 (of 6 Teams members)"
    assert len(rig.graph.installs()) == posts_before + 6  # each member asked once; Graph's 409 says "already"
    assert len(rig.graph.installed) == 6


async def test_throttling_is_waited_out(rig: Rig) -> None:
    _directory(rig.graph, *PILOT_A_TEAMS)
    rig.graph.throttle.update(GET=2, POST=1)
    status, out, err = await rig.reinforce("teams", "install", "pilot-a")
    assert status == 0, err
    assert out.splitlines()[-1] == "pilot-a: installed for 6, already installed for 0, not found 0 (of 6 Teams members)"


async def test_a_wrong_client_secret_is_one_line_with_entras_reason(rig: Rig) -> None:
    status, out, err = await rig.reinforce("teams", "install", "pilot-a", MICROSOFT_APP_PASSWORD="not-the-secret")
    assert status == 1
    assert out == ""
    assert err == (
        f"reinforce: {rig.identity.url}tenant-1 refused a token for Microsoft Graph: invalid_client: "
        "AADSTS7000215: Invalid client secret provided.\n"
    )
    assert "not-the-secret" not in err
    assert rig.graph.calls == []


async def test_a_missing_application_permission_stops_at_the_first_member_with_graphs_reason(rig: Rig) -> None:
    _directory(rig.graph, *PILOT_A_TEAMS)
    rig.graph.granted = {"User.Read.All"}
    status, out, err = await rig.reinforce("teams", "install", "pilot-a")
    assert (status, out) == (1, "")
    assert err.startswith("reinforce: Microsoft Graph answered 403 to POST users/carla-aad-id/teamwork/installedApps: Forbidden: ")
    first, hint = err.splitlines()
    assert "TeamsAppInstallation.ReadWriteSelfForUser.All" in first
    assert hint == (
        "reinforce: the app registration needs the Microsoft Graph application permissions "
        "TeamsAppInstallation.ReadWriteSelfForUser.All and User.Read.All, with an administrator's consent "
        "(docs/teams.md, Installing the app for a cohort)"
    )


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"REINFORCE_TEAMS_CATALOG_ID": ""}, "the app's catalog id is not set: pass --catalog-id or set REINFORCE_TEAMS_CATALOG_ID"),
        ({"MICROSOFT_APP_TENANT_ID": "", "MICROSOFT_APP_TYPE": "MultiTenant"}, "MICROSOFT_APP_TENANT_ID is not set"),
        ({"MICROSOFT_LOGIN_URL": "https://127.0.0.1:1/"}, "cannot reach https://127.0.0.1:1/tenant-1 for a token (ConnectionError)"),
        ({"MICROSOFT_APP_TENANT_ID": "tenant-2"}, "cannot get a token from https://127.0.0.1:"),
    ],
)
async def test_what_the_command_needs_is_named_in_one_line(rig: Rig, env: dict[str, str], error: str) -> None:
    status, _out, err = await rig.reinforce("teams", "install", "pilot-a", **env)
    assert status == 1
    assert err.startswith(f"reinforce: {error}") and err.count("\n") == 1
    assert rig.graph.calls == []


async def test_an_unknown_cohort_and_a_cohort_without_teams_members(rig: Rig, tmp_path: Path) -> None:
    status, _out, err = await rig.reinforce("teams", "install", "pilot-z")
    assert status == 1 and "pilot-z" in err and err.count("\n") == 1
    slack_only = tmp_path / "slack-only.yaml"
    slack_only.write_text(EXAMPLE.read_text().replace("platform: teams", "platform: slack"))
    status, _out, err = await rig.reinforce("program", "load", str(slack_only))
    assert status == 0, err
    status, out, err = await rig.reinforce("teams", "install", "pilot-a", "--catalog-id", CATALOG_ID)
    assert (status, out, err) == (0, "pilot-a has no members on Teams: nothing to install\n", "")
    assert rig.graph.calls == []
