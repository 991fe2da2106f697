"""`reinforce doctor`: checks a live installation end to end and says, for each problem, how to fix it.

Each check reads what the running installation reads (the database, the platforms' APIs with
the configured credentials, the LLM endpoint) and changes nothing. A platform or LLM that is
not configured is reported as such, not as a problem.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

from adapters.base import LlmError
from bot.app import App, build
from bot.checks import Check, listing, not_configured, ok, problem, unlinked_people
from bot.masking import mask
from bot.settings import Settings
from nudges.program import Program, ProgramError
from storage import failures, heartbeats, outbox
from storage.db import schema_problem

__all__ = ["WORKER_SILENT_AFTER", "diagnose", "exit_status", "render_json", "render_text"]

log = logging.getLogger(__name__)

# The worker beats every minute (bot.worker.TICK_SECONDS); three missed beats mean it is gone.
WORKER_SILENT_AFTER = timedelta(minutes=3)
# A row due longer than this and still unsent: the worker is not keeping up, or not delivering.
OUTBOX_LAG = timedelta(minutes=10)
FAILURES_SINCE = timedelta(days=7)
LLM_TIMEOUT = 20.0
START_WORKER = "start `reinforce worker` (the Procfile's worker process), and read its log if it stopped"


async def diagnose(settings: Settings, now: datetime | None = None) -> list[Check]:
    """Every check, in the order an operator fixes things: database, program, platforms, LLM, worker."""
    now = now or datetime.now(UTC)
    database = await _database(settings)
    checks = [database]
    app = build(settings)
    await app.start()
    try:
        program = None
        if database.status == "ok":
            program_check, program = await _program(app)
            checks.append(program_check)
        checks += await _safely("platforms", _platforms(app, settings, program, database_ok=database.status == "ok"))
        checks.append(await _llm(settings))
        if database.status == "ok":
            checks += await _safely("deliveries", _deliveries(app, settings, now))
    finally:
        await app.close()
    return checks


async def _safely(name: str, checks: Awaitable[list[Check]]) -> list[Check]:
    """The checks, or one problem saying they could not be made: a check that breaks must not hide the others."""
    try:
        return await checks
    except Exception as exc:
        log.debug("doctor: the %s checks failed", name, exc_info=True)  # said in the report, which is what the operator reads
        first = (str(exc).strip().splitlines() or [""])[0]
        detail = f"could not be checked: {exc.__class__.__name__}: {first}"
        return [problem(name, detail, "fix the problems above first (the database, most often), then run `reinforce doctor` again")]


def exit_status(checks: list[Check]) -> int:
    return 1 if any(c.status == "problem" for c in checks) else 0


def render_text(checks: list[Check]) -> str:
    problems = sum(c.status == "problem" for c in checks)
    summary = f"{problems} problem{'s' if problems != 1 else ''} found" if problems else "all checks passed"
    return "\n".join([*(mask(c.line()) for c in checks), summary])


def render_json(checks: list[Check]) -> str:
    body = {"ok": not exit_status(checks), "checks": [{k: mask(v) for k, v in c.as_json().items()} for c in checks]}
    return json.dumps(body, indent=2, ensure_ascii=False)


async def _database(settings: Settings) -> Check:
    try:
        found = await asyncio.to_thread(schema_problem, settings.database_url)
    except Exception as exc:  # whatever the driver raises: the operator reads its first line
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [exc.__class__.__name__])[0]
        return problem("database", f"cannot use {settings.database_url}: {reason}", "check DATABASE_URL and that the database server runs")
    if found is not None:
        return problem("database", found.split(": run")[0], "run `reinforce db upgrade`")
    return ok("database", "reachable and at the latest migration")


async def _program(app: App) -> tuple[Check, Program | None]:
    try:
        program = await app.programs.get()
    except ProgramError as exc:
        return problem("program", str(exc).split(": run")[0], "run `reinforce program load FILE`"), None
    members = sum(len(c.members) for c in program.cohorts)
    return ok("program", f"{program.program}: {len(program.cohorts)} cohorts, {members} members"), program


async def _platforms(app: App, settings: Settings, program: Program | None, database_ok: bool) -> list[Check]:
    configured = [p for p in ("slack", "teams") if p in app.chats and (p != "teams" or settings.teams_configured)]
    unlinked = await unlinked_people(app.db, configured) if database_ok and program is not None else None
    checks: list[Check] = []
    if app.slack is not None:
        from bot.slack_checks import slack_checks

        checks += await slack_checks(app.slack.chat, program, None if unlinked is None else unlinked.get("slack", []))
    else:
        checks.append(not_configured("slack", "SLACK_BOT_TOKEN (or SLACK_CLIENT_ID for OAuth installs) is not set (docs/slack.md)"))
    if settings.teams_configured:
        from bot.teams_checks import teams_checks

        checks += await teams_checks(
            settings, app.db if database_ok else None, program, None if unlinked is None else unlinked.get("teams", [])
        )
    elif settings.teams_enabled:
        checks.append(
            problem(
                "teams",
                "local-development mode (REINFORCE_TEAMS_DEV=1): /api/messages accepts requests without authentication",
                "set MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID and unset REINFORCE_TEAMS_DEV (docs/teams.md)",
            )
        )
    else:
        checks.append(not_configured("teams", "MICROSOFT_APP_ID is not set (docs/teams.md)"))
    for platform in sorted(set(unlinked or {}) - set(configured)):
        people = unlinked[platform] if unlinked else []
        # Not configured is the operator's choice (a later wave, say); what it means is said all the same.
        checks.append(
            not_configured(
                f"{platform}.people",
                f"{len(people)} take part on {platform}, which is not configured here, so they get nothing until it is "
                f"(docs/{platform}.md): {listing(people)}",
            )
        )
    return checks


async def _llm(settings: Settings) -> Check:
    if not settings.llm_configured:
        return not_configured("llm", "OPENAI_API_KEY / OPENAI_BASE_URL not set: rehearsal feedback uses the offline rubric check")
    from adapters.llm import OpenAiLlm

    where = f"{settings.openai_base_url or 'OpenAI'} with model {settings.reinforce_llm_model}"
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    timeout = min(settings.reinforce_llm_timeout, LLM_TIMEOUT)
    async with OpenAiLlm(
        model=settings.reinforce_llm_model, base_url=settings.openai_base_url, api_key=key, timeout=timeout, max_retries=0
    ) as llm:
        try:
            await llm.complete([{"role": "user", "content": "Reply with the one word: ready"}])
        except LlmError as exc:
            return problem(
                "llm", f"{where}: {exc.kind}: {exc.detail}", _LLM_FIXES.get(exc.kind, "read the server's answer above and its log")
            )
    return ok("llm", f"{where} answered (structured-output support: not checked yet)")


_LLM_FIXES = {
    "unreachable": "check OPENAI_BASE_URL and that the server runs and is reachable from here",
    "timeout": "check OPENAI_BASE_URL and that the server runs and is reachable from here (it did not answer in time)",
    "misconfigured": "check OPENAI_API_KEY, and that REINFORCE_LLM_MODEL names a model this server offers",
    "rate_limited": "the server refuses this key for now: check the account's quota and rate limits",
}


async def _deliveries(app: App, settings: Settings, now: datetime) -> list[Check]:
    # What the worker delivers here: rows for a platform not configured wait for it, so they are no lag.
    delivered = [p for p in app.chats if p != "teams" or settings.teams_configured]
    async with app.db.session() as session:
        beat = await heartbeats.newest(session, "worker")
        backlog = await outbox.backlog(session, now, delivered)
        waiting = (await outbox.backlog(session, now)).pending - backlog.pending
        failing = await failures.failing_channels(session)
        failed, reasons = await failures.recent(session, now - FAILURES_SINCE)
    checks = [_worker(beat, now), _outbox(backlog, waiting, now)]
    if failing:
        for channel in failing:
            checks.append(
                problem(f"deliveries.{channel.platform}.{channel.channel}", f"the latest {channel.kind} post there failed", channel.reason)
            )
    common = "; ".join(f"{g.count} {g.kind}: {g.reason}" for g in reasons)
    checks.append(ok("deliveries", f"{failed} failed in the last {FAILURES_SINCE.days} days" + (f" ({common})" if common else "")))
    return checks


def _worker(beat: datetime | None, now: datetime) -> Check:
    if beat is None:
        return problem("worker", "no worker has run yet: nothing is scheduled or delivered", START_WORKER)
    age = now - beat
    if age > WORKER_SILENT_AFTER:
        return problem("worker", f"the last heartbeat was {_ago(age)} ago: no worker is running", START_WORKER)
    return ok("worker", f"alive (last heartbeat {_ago(age)} ago)")


def _outbox(backlog: outbox.Backlog, elsewhere: int, now: datetime) -> Check:
    lag = now - backlog.oldest_due if backlog.oldest_due is not None else timedelta(0)
    detail = f"{backlog.pending} waiting, {backlog.failed} failed for good"
    if elsewhere:
        detail += f" ({elsewhere} more wait for a platform not configured here)"
    if lag > OUTBOX_LAG:
        return problem(
            "outbox",
            f"{detail}; the oldest has been due for {_ago(lag)}",
            "the worker is not keeping up or not delivering: check that `reinforce worker` runs and read its log",
        )
    return ok("outbox", f"{detail}; " + (f"the oldest due {_ago(lag)} ago" if backlog.oldest_due is not None else "nothing overdue"))


def _ago(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h" if seconds < 172800 else f"{seconds // 86400} days"
