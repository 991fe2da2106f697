"""The `reinforce` command as an operator runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "program.yaml"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_", "REINFORCE_"))}
    env.pop("DATABASE_URL", None)
    env.pop("PORT", None)
    env.update(extra)
    return env


def reinforce(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=_env(**env), cwd=ROOT, timeout=120)


def test_a_bad_environment_variable_is_named_in_one_line_without_a_traceback() -> None:
    result = reinforce("db", "upgrade", PORT="eighty")
    assert result.returncode == 2
    assert result.stderr == "reinforce: PORT: must be a whole number between 1 and 65535 (got 'eighty')\n"


def test_a_bad_program_file_is_one_line_naming_file_line_and_field(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cohorts"][0]["checklist"] = ["decision_huddle", "escalate_24h"]
    bad = tmp_path / "bad.yaml"
    text = yaml.safe_dump(data)
    bad.write_text(text)
    line = text.splitlines().index("  checklist:") + 1
    result = reinforce("program", "load", str(bad), DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}")
    assert result.returncode == 1
    expected = f"reinforce: {bad}:{line}: cohorts[pilot-a].checklist: must list exactly 3 behaviors, got 2 (see docs/program.md#cohorts)\n"
    assert result.stderr == expected
    assert "Traceback" not in result.stdout + result.stderr


def test_program_load_prints_warnings_and_loads_all_the_same(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace('    sponsor_channel: {platform: teams, id: "19:wave-b-sponsors@thread.tacv2"}\n', "")
    no_digest = tmp_path / "no-digest.yaml"
    no_digest.write_text(text)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reinforce("db", "upgrade", DATABASE_URL=url)
    result = reinforce("program", "load", str(no_digest), DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert "loaded as version 1" in result.stdout
    line = text.splitlines().index("  - key: wave-b") + 1
    assert f"warning: {no_digest}:{line}: cohorts[wave-b].sponsor_channel: not set: the cohort will get no digest" in result.stdout


def test_db_upgrade_program_load_and_show_on_both_databases(db_url: str) -> None:
    upgraded = reinforce("db", "upgrade", DATABASE_URL=db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    loaded = reinforce("program", "load", str(EXAMPLE), DATABASE_URL=db_url)
    assert loaded.returncode == 0, loaded.stderr
    assert re.search(r"Product leadership pilot loaded as version 1: 2 cohorts, 34 members", loaded.stdout)
    again = reinforce("program", "load", str(EXAMPLE), DATABASE_URL=db_url)
    assert "unchanged (version 1)" in again.stdout
    shown = reinforce("program", "show", DATABASE_URL=db_url)
    assert shown.returncode == 0, shown.stderr
    assert "pilot-a — Pilot A: starts 2026-01-05, 12 weeks, 18 members, compared with wave-b" in shown.stdout
    assert "wave-b — Wave B" in shown.stdout


def test_program_show_before_any_load_says_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reinforce("db", "upgrade", DATABASE_URL=url)
    result = reinforce("program", "show", DATABASE_URL=url)
    assert result.returncode == 1
    assert result.stderr == "reinforce: no program is loaded yet: run `reinforce program load FILE` first\n"


def test_an_unreachable_database_is_one_clear_line() -> None:
    result = reinforce("program", "show", DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:1/nothing")
    assert result.returncode == 1
    assert result.stderr.startswith("reinforce: cannot use the database at postgresql://postgres:***@127.0.0.1:1/nothing: ")
    assert "hunter2" not in result.stderr and result.stderr.count("\n") == 1


def test_a_database_url_the_driver_refuses_is_one_masked_line_not_a_traceback() -> None:
    result = reinforce("program", "show", DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:5432/test?bogus=1")
    assert result.returncode == 1
    assert result.stderr == (
        'reinforce: cannot use the database at postgresql://postgres:***@127.0.0.1:5432/test?bogus=1: invalid connection option "bogus"\n'
    )


def test_the_long_running_processes_mask_what_any_library_logs() -> None:
    """serve and worker install the masking filter on the log handlers: a URL with a password
    or a token, logged by any library (here a stand-in logger), reaches stderr masked."""
    script = (
        "import logging; from bot.cli import _process_logging; _process_logging('reinforce.serve'); "
        "logging.getLogger('some.library').warning('connecting to %s with %s', "
        "'postgresql://reinforce:hunter2@db.internal/reinforce', 'Bearer hunter2hunter2')"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert "connecting to postgresql://reinforce:***@db.internal/reinforce with Bearer ***" in result.stderr
    assert "hunter2" not in result.stderr


def test_demo_leaves_the_answers_and_signals_it_printed_in_its_database(tmp_path: Path) -> None:
    out = tmp_path / "x"
    result = reinforce("demo", "--weeks", "4", "--managers", "40", "--out", str(out))
    assert result.returncode == 0, result.stderr
    printed = re.search(r"Stored (\d+) answers and (\d+) behavior signals in (.+)", result.stdout)
    assert printed and Path(printed[3]) == out / "reinforce.db"
    with sqlite3.connect(out / "reinforce.db") as conn:
        answers = conn.execute("SELECT count(*) FROM checkin_answers").fetchone()[0]
        signals = conn.execute("SELECT count(*) FROM behavior_signals").fetchone()[0]
    assert (answers, signals) == (int(printed[1]), int(printed[2])) and answers > 0
    assert "week 4 (2026-W05): sent" in result.stdout and "Participation:" in result.stdout
    assert "A coach approved it; the leader is told: Rubric check, no AI — approved by a coach" in result.stdout
    digest = (out / "digest.txt").read_text()
    assert digest.startswith("Product leadership pilot — Pilot A, week 4 of 12")
    assert "Week closed on" in digest and "  this week: " in digest  # the last week's behavior figures, once it closed
    assert (out / "digest.png").read_bytes().startswith(b"\x89PNG")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_answers_health_and_metrics_and_says_what_is_not_configured(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reinforce("db", "upgrade", DATABASE_URL=url)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(DATABASE_URL=url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200 and b'"ok"' in body
        metrics_status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert metrics_status == 200 and b"python_info" in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert "Slack: not configured (set SLACK_BOT_TOKEN" in output
    assert "Teams: not configured" in output


def test_worker_starts_explains_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reinforce("db", "upgrade", DATABASE_URL=url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"],
        env=_env(DATABASE_URL=url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "worker started" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "Slack: not configured" in output and "worker stopped" in output


@pytest.mark.parametrize("args", [["demo", "--weeks", "0"], ["demo", "--managers", "many"]])
def test_bad_demo_arguments_are_usage_errors(args: list[str]) -> None:
    result = reinforce(*args)
    assert result.returncode == 2 and "reinforce demo: error: argument" in result.stderr


def test_commands_on_an_unmigrated_database_say_to_run_db_upgrade(tmp_path: Path) -> None:
    result = reinforce("program", "load", str(EXAMPLE), DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}")
    assert result.returncode == 1
    assert result.stderr == "reinforce: the database has no Reinforce tables yet: run `reinforce db upgrade`\n"


def test_demo_never_replaces_a_database_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "reinforce.db").write_bytes(b"precious")
    result = reinforce("demo", "--weeks", "1", "--out", str(tmp_path))
    assert result.returncode == 1 and "a demo did not create" in result.stderr
    assert (tmp_path / "reinforce.db").read_bytes() == b"precious"


def test_forget_deletes_a_member_says_what_went_and_warns_while_the_program_file_lists_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert reinforce("db", "upgrade", DATABASE_URL=url).returncode == 0
    assert reinforce("program", "load", str(EXAMPLE), DATABASE_URL=url).returncode == 0
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("SELECT count(*) FROM people WHERE email = 'ana@example.com'").fetchone() == (1,)
    forgotten = reinforce("forget", "ana@example.com", DATABASE_URL=url)
    assert forgotten.returncode == 0, forgotten.stderr
    assert forgotten.stdout.startswith("forgot ana@example.com: deleted ")
    assert "1 person record" in forgotten.stdout
    assert "the next `reinforce program load` adds them again" in forgotten.stderr
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("SELECT count(*) FROM people WHERE email = 'ana@example.com'").fetchone() == (0,)
    again = reinforce("forget", "ana@example.com", DATABASE_URL=url)
    assert again.returncode == 0
    assert again.stdout.startswith("nothing held about ana@example.com")


def test_forget_of_something_that_names_nobody_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert reinforce("db", "upgrade", DATABASE_URL=url).returncode == 0
    result = reinforce("forget", "ana", DATABASE_URL=url)
    assert result.returncode == 1
    assert result.stderr.startswith("reinforce: 'ana' is neither an email nor a platform id")
    assert result.stderr.count("\n") == 1


def _rehearse(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "rehearse", *args], input=stdin, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120
    )


def test_rehearse_in_the_terminal_plays_the_stakeholder_then_gives_rubric_feedback_with_its_review_status() -> None:
    result = _rehearse("Can we trial a weekly decision huddle for six weeks? It cut rework 20% in team B.\ndone\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("== Rehearsal: ") and "scripted, no AI" in out
    assert "you> Can we trial a weekly decision huddle" in out
    assert "Rubric check, no AI — not reviewed" in out
    assert "Clear ask: 5/5" in out and "You said: “It cut rework 20% in team B.”" in out


def test_rehearse_in_the_terminal_flags_a_sensitive_pitch_for_coach_review() -> None:
    result = _rehearse("Otherwise I will put Sam on a PIP.\ndone\n", "vp-decision-huddles")
    assert result.returncode == 0, result.stderr
    assert "Rubric check, no AI — awaiting coach review" in result.stdout


def test_rehearse_an_unknown_scenario_is_one_line_naming_the_known_ones() -> None:
    result = _rehearse("done\n", "nope")
    assert result.returncode == 1
    assert result.stderr == "reinforce: no scenario 'nope' (known: vp-decision-huddles, director-support-headcount, peer-decision-rubric)\n"
