"""The `reinforce teams` commands: the app package for this installation, and installing the app for a cohort's Teams members."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.cli import CliError
from bot.settings import Settings

__all__ = ["install", "package"]

PERMISSION_HINT = (
    "the app registration needs the Microsoft Graph application permissions TeamsAppInstallation.ReadWriteSelfForUser.All "
    "and User.Read.All, with an administrator's consent (docs/teams.md, Installing the app for a cohort)"
)


def package(out: Path, settings: Settings) -> int:
    """`reinforce teams package --out FILE.zip`."""
    from adapters.teams.package import PackageError, build_manifest, write_package

    if not out.parent.is_dir():
        raise CliError(f"cannot write {out}: the folder {out.parent} does not exist")
    try:
        manifest = build_manifest(
            settings.microsoft_app_id, settings.reinforce_public_url, settings.reinforce_privacy_url, settings.reinforce_terms_url
        )
        names = write_package(out, manifest)
    except PackageError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    developer = manifest["developer"]
    print(f"wrote {out} ({', '.join(names)}): manifest {manifest['manifestVersion']} for app {manifest['id']}")
    print(f"  website {developer['websiteUrl']}, privacy {developer['privacyUrl']}, terms {developer['termsOfUseUrl']}")
    return 0


async def install(cohort_key: str, catalog_id: str | None, settings: Settings) -> int:
    """`reinforce teams install COHORT [--catalog-id ID]`; exit status 1 when someone was not found."""
    from adapters.teams.graph import GraphError
    from bot.installs import InstallError, graph_from, install_for_members, teams_members
    from bot.programs import program_in_force
    from storage.db import Database, schema_problem

    catalog_id = catalog_id or settings.reinforce_teams_catalog_id
    if not catalog_id:
        raise CliError(
            "the app's catalog id is not set: pass --catalog-id or set REINFORCE_TEAMS_CATALOG_ID "
            "(Teams admin center, Manage apps, Reinforce: App ID)"
        )
    try:
        graph = graph_from(settings)
    except InstallError as exc:
        raise CliError(str(exc)) from None
    if problem := await asyncio.to_thread(schema_problem, settings.database_url):
        raise CliError(problem)
    db = Database(settings.database_url)
    try:
        cohort = (await program_in_force(db)).cohort(cohort_key)
    finally:
        await db.close()
    emails = teams_members(cohort)
    if not emails:
        print(f"{cohort.key} has no members on Teams: nothing to install")
        return 0
    try:
        async with graph:
            report = await install_for_members(graph, catalog_id, emails, lambda line: print(line, flush=True))
    except GraphError as exc:
        hint = f"\n{PERMISSION_HINT}" if exc.status == 403 else ""
        raise CliError(f"{exc}{hint}") from None
    print(report.summary(cohort.key))
    if report.not_found:
        print(
            f"reinforce: {len(report.not_found)} of them are not in the directory under that email: "
            "correct it in the program file (their user principal name) and run this again",
            file=sys.stderr,
        )
        return 1
    return 0
