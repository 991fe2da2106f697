"""The `reinforce` command line (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError

from bot.settings import Settings, SettingsError, load_settings
from nudges.program import ProgramError


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

    commands.add_parser("worker", help="run the scheduler and delivery worker")

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", help="apply migrations up to the latest")

    program = commands.add_parser("program", help="load or show the program file")
    program_commands = program.add_subparsers(dest="program_command", required=True, metavar="COMMAND")
    load = program_commands.add_parser("load", help="validate a program file and load it")
    load.add_argument("file")
    program_commands.add_parser("show", help="show the program in force")
    return parser


def _bounded(low: int, high: int):  # noqa: ANN202 - argparse type factory
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        return asyncio.run(_dispatch(args, settings)) or 0
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"reinforce: {line}", file=sys.stderr)
        return 2
    except (CliError, ProgramError) as exc:
        for line in str(exc).splitlines():
            print(f"reinforce: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    try:
        match args.command:
            case "demo":
                return await _demo(args)
            case "serve":
                return await _serve(args, settings)
            case "worker":
                return await _worker(settings)
            case "db":
                return await _db_upgrade(settings)
            case "program":
                return await _program(args, settings)
    except OperationalError as exc:
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else exc.__class__.__name__
        raise CliError(f"cannot use the database at {url}: {reason}") from None
    return None


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
    from datetime import UTC, datetime

    from bot.app import build
    from bot.programs import describe_program, resolve_members, store_program
    from nudges.program import load_program

    program = load_program(args.file) if args.program_command == "load" else None
    await _check_schema(settings)
    app = build(settings)
    try:
        if program is not None:
            saved = await store_program(app.db, program, args.file, datetime.now(UTC))
            state = f"loaded as version {saved.version_id}" if saved.changed else f"unchanged (version {saved.version_id})"
            print(f"{args.file}: {program.program} {state}: {saved.cohorts} cohorts, {saved.participants} members")
            if saved.deactivated:
                print(f"{saved.deactivated} memberships no longer in the file were deactivated (their answers are kept)")
            unresolved = await resolve_members(app.db, app.chats) if app.chats else []
            if unresolved:
                print(f"{len(unresolved)} members could not be found and will get no messages until they are:")
                for line in unresolved:
                    print(f"  {line}")
        else:
            print(await describe_program(app.db))
    finally:
        await app.close()
    return 0


async def _check_schema(settings: Settings) -> None:
    from storage.db import schema_problem

    if problem := await asyncio.to_thread(schema_problem, settings.database_url):
        raise CliError(problem)


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    await _check_schema(settings)
    from bot.app import build, configuration_report
    from bot.web import make_web_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("reinforce.serve")
    for line in configuration_report(settings):
        log.info("%s", line)
    app = build(settings)
    # No per-request access log: /metrics counts requests, and the log line costs more
    # than a click's own work under load.
    runner = web.AppRunner(make_web_app(app), access_log=None)
    await runner.setup()
    port = args.port or settings.port
    await web.TCPSite(runner, args.host, port).start()
    log.info("serving on http://%s:%d (/healthz, /metrics)", args.host, port)
    socket_mode = None
    if app.slack is not None and settings.slack_app_token:
        socket_mode = await app.slack.connect_socket_mode(settings.slack_app_token.get_secret_value())
        log.info("Slack Socket Mode connected")
    try:
        await asyncio.Event().wait()
    finally:
        if socket_mode is not None:
            await socket_mode.close_async()
        await runner.cleanup()
    return 0


async def _worker(settings: Settings) -> int:
    from bot.app import build, configuration_report
    from bot.worker import run_worker

    await _check_schema(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for line in configuration_report(settings):
        logging.getLogger("reinforce.worker").info("%s", line)
    await run_worker(build(settings))
    return 0
