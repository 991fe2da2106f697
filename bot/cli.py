"""The `reinforce` command line (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bot.masking import mask, mask_logging
from bot.settings import Settings, SettingsError, load_settings
from nudges.program import ProgramError
from nudges.weeks import IsoWeek


class CliError(Exception):
    """A failure explained in one or more lines for the operator; exit status 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reinforce", description="Weekly leadership check-ins, nudges and digests in Slack and Teams.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the whole loop on embedded defaults with simulated managers")
    demo.add_argument("--weeks", type=_bounded(1, 52), default=8, help="weeks to simulate (default 8)")
    demo.add_argument("--managers", type=_bounded(10, 5000), default=40, help="simulated managers, split between two cohorts (default 40)")
    demo.add_argument("--out", type=Path, help="folder for reinforce.db, the transcript and the digest (default: a new temporary folder)")

    serve = commands.add_parser("serve", help="run the web process (webhooks, /healthz, /metrics)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=_bounded(1, 65535), help="default: $PORT")
    _metrics_arguments(serve, "serve /metrics on this port instead of the webhook port")

    worker = commands.add_parser("worker", help="run the scheduler and delivery worker")
    _metrics_arguments(worker, "serve the worker's /metrics on this port (default: none)")

    rehearse = commands.add_parser("rehearse", help="rehearse a stakeholder pitch in the terminal (your turns from stdin; `done` ends)")
    rehearse.add_argument("scenario", nargs="?", help="scenario key (default: the first in the scenario file)")

    tick = commands.add_parser("tick", help="queue everything due at an instant, deliver it, and exit")
    tick.add_argument("--at", type=_instant, help="ISO-8601 instant with a time zone, e.g. 2026-01-05T09:00:00+01:00 (default: now)")

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", help="apply migrations up to the latest")

    program = commands.add_parser("program", help="load or show the program file")
    program_commands = program.add_subparsers(dest="program_command", required=True, metavar="COMMAND")
    load = program_commands.add_parser("load", help="validate a program file and load it")
    load.add_argument("file")
    program_commands.add_parser("show", help="show the program in force")

    digest = commands.add_parser("digest", help="compute a cohort digest: text, JSON, or queue it for the sponsor channel")
    digest.add_argument("cohort", metavar="COHORT")
    digest.add_argument(
        "--week", type=_iso_week, help="ISO week such as 2026-W10 (default: what the sponsor channel gets now: the last closed week)"
    )
    digest.add_argument(
        "--json", action="store_true", help='print the figures as JSON (suppressed figures are null with "suppressed": true)'
    )
    digest.add_argument("--post", action="store_true", help="queue the digest for the cohort's sponsor channel (once per cohort-week)")

    export = commands.add_parser("export", help="anonymized signals as CSV (keyed pseudonyms; needs REINFORCE_PSEUDONYM_KEY)")
    export.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    export.add_argument("--cohort", metavar="C", help="only this cohort's signals")

    forget = commands.add_parser("forget", help="delete everything held about a person (email or platform id); audited")
    forget.add_argument("person", metavar="PERSON", help="an email, or a platform id such as T0001:U123 (Slack) or TENANT:AAD-ID (Teams)")

    doctor = commands.add_parser("doctor", help="check a live installation end to end; exit status 1 on any problem")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON, for monitoring")

    teams = commands.add_parser("teams", help="the Microsoft Teams app: its package, and installing it for a cohort")
    teams_commands = teams.add_subparsers(dest="teams_command", required=True, metavar="COMMAND")
    package = teams_commands.add_parser("package", help="build the app package (manifest and icons) for this installation")
    package.add_argument("--out", type=Path, required=True, metavar="FILE.zip")
    install = teams_commands.add_parser("install", help="install the app for every Teams member of a cohort (Microsoft Graph)")
    install.add_argument("cohort", metavar="COHORT")
    install.add_argument("--catalog-id", help="the app's id in your Teams app catalog (default: $REINFORCE_TEAMS_CATALOG_ID)")
    return parser


def _metrics_arguments(parser: argparse.ArgumentParser, port_help: str) -> None:
    parser.add_argument("--metrics-port", type=_bounded(1, 65535), help=port_help)
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port (default 127.0.0.1)")


def _iso_week(text: str) -> IsoWeek:
    try:
        return IsoWeek.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 date and time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add one, e.g. {text}+00:00")
    return value.astimezone(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        return asyncio.run(_dispatch(args, settings)) or 0
    except SettingsError as exc:
        _complain(str(exc))
        return 2
    except (CliError, ProgramError) as exc:
        _complain(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`reinforce digest X --json | head`): no traceback for that.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _complain(text: str) -> None:
    """Error lines for the operator, on stderr; masked, since they may quote a URL or a token."""
    for line in mask(text).splitlines():
        print(f"reinforce: {line}", file=sys.stderr)


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    try:
        return await _COMMANDS[args.command](args, settings)
    except DBAPIError as exc:
        if exc.statement is not None:  # connected, and a statement failed: a bug, not the operator's to fix
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else exc.__class__.__name__
        raise CliError(f"cannot use the database at {settings.database_url}: {reason}") from None


async def _demo(args: argparse.Namespace) -> int:
    from bot.demo import DemoError, run_demo

    out = args.out or Path(tempfile.mkdtemp(prefix="reinforce-demo-"))
    try:
        await run_demo(out, weeks=args.weeks, managers=args.managers, out=sys.stdout)
    except DemoError as exc:
        raise CliError(str(exc)) from None
    return 0


async def _db_upgrade(settings: Settings) -> int:
    from storage.db import upgrade

    await asyncio.to_thread(upgrade, settings.database_url)
    print("database is at the latest schema")
    return 0


async def _program(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build
    from bot.files import read_program
    from bot.identity import Identities
    from bot.programs import describe_program, load_report, store_program

    loaded = read_program(args.file) if args.program_command == "load" else None
    await _check_schema(settings)
    app = build(settings)
    try:
        if loaded is not None:
            program, now = loaded.program, datetime.now(UTC)
            saved = await store_program(app.db, program, args.file, now)
            await app.start()
            identities = Identities(app.db, app.chats)
            unlinked = await identities.link_program(now, _progress("linking people to their chat accounts")) if app.chats else []
            # Warnings: loaded all the same, since each is a choice the owner may have meant.
            print("\n".join(load_report(args.file, program, saved, unlinked, loaded.warnings)))
        else:
            print(await describe_program(app.db))
    finally:
        await app.close()
    return 0


async def _digest(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from bot.app import build
    from bot.digests import DigestError, cohort_digest, queue_digest, scheduled_digest
    from bot.programs import program_in_force
    from nudges.digest import render_text
    from nudges.digest_formats import figures

    await _check_schema(settings)
    now = datetime.now(UTC)
    week = args.week or IsoWeek.of(now)
    app = build(settings)
    try:
        program = await program_in_force(app.db)
        spec = program.cohort(args.cohort)
        if args.post:
            # Posting goes through the delivery worker, which sends only on configured
            # platforms: refuse now rather than queue a post nothing here can deliver.
            if spec.sponsor_channel is None:
                raise CliError(f"cannot post: cohort {spec.key!r} has no sponsor_channel in the program file")
            if spec.sponsor_channel.platform not in app.chats:
                raise CliError(
                    f"cannot post: the sponsor channel of {spec.key!r} is on {spec.sponsor_channel.platform}, "
                    f"and no {spec.sponsor_channel.platform} connection is configured here (see `reinforce serve` for what to set)"
                )
        try:
            # Without --week: what the sponsor channel would get now (last closed week, and the
            # counts so far of the week still open); with it: that week as it stands.
            digest = await (cohort_digest if args.week else scheduled_digest)(app.db, program, spec.key, week, now)
            queued = await queue_digest(app.db, program, spec.key, week, now) if args.post else None
        except DigestError as exc:
            raise CliError(str(exc)) from None
        print(json.dumps(figures(digest), indent=2, ensure_ascii=False) if args.json else render_text(digest))
        if queued is not None:
            # On stderr, so that `--json --post` still prints nothing but JSON on stdout.
            where = f"{queued.platform} channel {queued.channel}"
            state = "queued for" if queued.queued else "was already queued for"
            print(f"reinforce: the {week} digest {state} {where} (outbox key {queued.key}); the worker delivers it", file=sys.stderr)
    finally:
        await app.close()
    return 0


async def _export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.export import ExportError, export_signals
    from storage.db import Database

    if settings.reinforce_pseudonym_key is None:
        raise CliError(
            "REINFORCE_PSEUDONYM_KEY is not set: exports are refused without a key for the pseudonyms "
            "(set it to a long random secret and keep it safe)"
        )
    if not args.out.parent.is_dir():
        raise CliError(f"cannot write {args.out}: the folder {args.out.parent} does not exist")
    await _check_schema(settings)
    db = Database(settings.database_url)
    try:
        key = settings.reinforce_pseudonym_key.get_secret_value().encode()
        result = await export_signals(db, key, args.out, datetime.now(UTC), cohort=args.cohort)
    except ExportError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    finally:
        await db.close()
    print(f"wrote {result.rows} signals to {result.path} (pseudonymous: no names, emails, platform ids or notes)")
    for note in result.notes():
        print(note)
    return 0


async def _forget(args: argparse.Namespace, settings: Settings) -> int:
    from bot.lifecycle import LifecycleError, forget_lines, forget_person, forget_warning
    from storage.db import Database

    await _check_schema(settings)
    db = Database(settings.database_url)
    try:
        report = await forget_person(db, args.person, "cli", datetime.now(UTC))
    except LifecycleError as exc:
        raise CliError(str(exc)) from None
    finally:
        await db.close()
    for line in forget_lines(report):
        print(line)
    if warning := forget_warning(report):
        print(f"reinforce: {warning}", file=sys.stderr)
    return 0


async def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from bot.doctor import diagnose, exit_status, render_json, render_text

    checks = await diagnose(settings)
    print(render_json(checks) if args.json else render_text(checks))
    return exit_status(checks)


async def _teams(args: argparse.Namespace, settings: Settings) -> int:
    from bot.teams_commands import install, package

    if args.teams_command == "package":
        return package(args.out, settings)
    return await install(args.cohort, args.catalog_id, settings)


async def _check_schema(settings: Settings) -> None:
    from storage.db import schema_problem

    if problem := await asyncio.to_thread(schema_problem, settings.database_url):
        raise CliError(problem)


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    await _check_schema(settings)
    from bot.app import build, configuration_report
    from bot.metrics import start_metrics_site
    from bot.web import make_runner

    log = _process_logging("reinforce.serve")
    for line in configuration_report(settings):
        log.info("%s", line)
    app = build(settings)
    settle()
    runner = make_runner(app, metrics=not args.metrics_port)
    await runner.setup()
    port = args.port or settings.port
    await web.TCPSite(runner, args.host, port).start()
    log.info("serving on http://%s:%d (/healthz%s)", args.host, port, "" if args.metrics_port else ", /metrics")
    metrics_site = None
    if args.metrics_port:
        token = settings.reinforce_metrics_token
        metrics_site = await start_metrics_site(app.db, token.get_secret_value() if token else None, args.metrics_host, args.metrics_port)
        log.info("metrics at http://%s:%d/metrics", args.metrics_host, args.metrics_port)
    socket_mode = None
    if app.slack is not None and settings.slack_app_token:
        socket_mode = await app.slack.connect_socket_mode(settings.slack_app_token.get_secret_value())
        log.info("Slack Socket Mode connected")
    try:
        await asyncio.Event().wait()
    finally:
        if socket_mode is not None:
            await socket_mode.close_async()
        if metrics_site is not None:
            await metrics_site.cleanup()
        await runner.cleanup()
    return 0


async def _rehearse(args: argparse.Namespace, settings: Settings) -> int:
    """The DM rehearsal in the terminal: same scenarios, same coach port, nothing stored."""
    from bot.app import DEFAULT_SCENARIOS, coach_for
    from bot.files import load_scenarios
    from bot.rehearsals import finish, take_turn
    from nudges.rehearsal import Rehearsal, render_intro

    scenario = load_scenarios(settings.reinforce_scenarios or str(DEFAULT_SCENARIOS)).get(args.scenario)
    coach = coach_for(settings)
    interactive = sys.stdin.isatty()
    print(render_intro(scenario, coach.source).plain(), flush=True)
    rehearsal, finished = Rehearsal(scenario), None
    try:
        while finished is None:
            if interactive:
                print("you> ", end="", flush=True)
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:  # end of input counts as done
                finished = await finish(coach, rehearsal.leader_says("done"))
                print(finished.message.plain())
                break
            if not line.strip():
                continue
            rehearsal, message, _usage, finished = await take_turn(coach, rehearsal, line)
            print(("" if interactive else f"you> {line.strip()}\n") + message.plain(), flush=True)
    finally:
        if hasattr(coach, "aclose"):
            await coach.aclose()
    return 0


async def _tick(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build
    from bot.jobs import tick
    from bot.lifecycle import purge_expired

    await _check_schema(settings)
    at = args.at or datetime.now(UTC)
    app = build(settings)
    await app.start()
    try:
        # Never ahead of the real clock: a tick --at in the future must not delete early.
        purged = await purge_expired(app.db, settings.reinforce_retention_days, min(at, datetime.now(UTC)))
        if purged.total():
            print(
                f"purged what is older than {settings.reinforce_retention_days} days: {purged.notes} notes, "
                f"{purged.transcripts} rehearsal transcripts, {purged.feedback} feedback texts"
            )
        program = await app.programs.get()
        report = await tick(app.db, program, at)
        queued = ", ".join(f"{n} {kind}" for kind, n in sorted(report.queued.items())) or "nothing new"
        print(f"tick at {at.isoformat()}: queued {queued}")
        if not app.chats:
            print("no chat platform is configured: queued messages stay in the outbox")
            return 0
        delivered = await app.deliverer.deliver_due(program, lambda: at)
        print(f"delivered {delivered.sent}, verified {delivered.verified}, retrying {delivered.retrying}, failed {delivered.failed}")
    finally:
        await app.close()
    return 0


async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build, configuration_report
    from bot.worker import run_worker

    await _check_schema(settings)
    log = _process_logging("reinforce.worker")
    for line in configuration_report(settings):
        log.info("%s", line)
    app = build(settings)
    settle()
    await run_worker(app, metrics_at=(args.metrics_host, args.metrics_port) if args.metrics_port else None)
    return 0


def _progress(what: str) -> Callable[[int, int], None]:
    """Prints ``what: done/total`` on stderr now and then, for work that takes minutes."""

    def show(done: int, total: int) -> None:
        if total >= 50 and (done % 100 == 0 or done == total):
            print(f"reinforce: {what}: {done}/{total}", file=sys.stderr, flush=True)

    return show


def _process_logging(name: str) -> logging.Logger:
    """Logging for the long-running processes (serve, worker)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mask_logging()  # whatever any library logs: no URL password or token reaches the log
    # slack_sdk formats a debug line with each request's whole payload, and one with each
    # response, whenever its client logger's own level is unset (it tests logger.level,
    # not the effective level): a level of its own keeps that work for real debugging.
    for sdk in ("slack_sdk.web.async_base_client", "slack_sdk.web.base_client"):
        logging.getLogger(sdk).setLevel(logging.INFO)
    return logging.getLogger(name)


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], Awaitable[int]]] = {
    "demo": lambda args, _settings: _demo(args),
    "serve": _serve,
    "worker": _worker,
    "tick": _tick,
    "rehearse": _rehearse,
    "db": lambda _args, settings: _db_upgrade(settings),
    "program": _program,
    "digest": _digest,
    "export": _export,
    "forget": _forget,
    "doctor": _doctor,
    "teams": _teams,
}


def settle() -> None:
    """Start-up is over: what it built lives as long as the process, so the garbage
    collector's full passes need not walk it again and again (gc.freeze)."""
    gc.collect()
    gc.freeze()
