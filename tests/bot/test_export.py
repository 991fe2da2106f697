"""The anonymized export: one CSV row per signal, keyed pseudonyms, nothing identifying, audited."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.export import HEADER, ExportError, Pseudonyms, export_signals
from bot.files import load_program
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage.db import Database
from storage.models import AuditEntry, Person
from tests.bot.test_digests import EXAMPLE, answer_every_week, load

KEY = b"test-pseudonym-key-of-32-bytes!!"
NOW = datetime(2026, 3, 9, 9, tzinfo=UTC)


@pytest.fixture
async def signals(db: Database) -> Database:
    await load(db, load_program(str(EXAMPLE)))
    await answer_every_week(db, upto=IsoWeek(2026, 3))  # 34 members x 2 weeks x 3 behaviors
    return db


def read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


async def test_export_writes_one_row_per_signal_with_keyed_pseudonyms_only(signals: Database, tmp_path: Path) -> None:
    out = tmp_path / "signals.csv"

    result = await export_signals(signals, KEY, out, NOW)

    rows = read(out)
    assert rows[0] == list(HEADER)
    assert result.rows == len(rows) - 1 == 34 * 2 * 3
    async with signals.session() as session:
        ana = await session.scalar(select(Person).where(Person.email == "ana@example.com"))
        emails = (await session.scalars(select(Person.email))).all()
    assert ana is not None
    expected = hmac.new(KEY, f"person:{ana.id}".encode(), hashlib.sha256).hexdigest()[:16]
    assert rows[1] == [expected, "pilot-a", "decision_huddle", "2026-W02", "1", "checkin"]
    text = out.read_text()
    assert not any(email in text or email.split("@")[0] in text.lower() for email in emails)
    assert len({r[0] for r in rows[1:]}) == 34


async def test_export_of_one_cohort_has_only_its_signals(signals: Database, tmp_path: Path) -> None:
    out = tmp_path / "wave.csv"

    result = await export_signals(signals, KEY, out, NOW, cohort="wave-b")

    assert result.rows == 16 * 2 * 3
    assert {r[1] for r in read(out)[1:]} == {"wave-b"}


async def test_export_is_audited_without_its_content(signals: Database, tmp_path: Path) -> None:
    await export_signals(signals, KEY, tmp_path / "s.csv", NOW, cohort="pilot-a", actor="cli")

    async with signals.session() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "export.signals"))
    assert entry is not None
    assert (entry.actor, entry.subject, entry.at, entry.detail) == ("cli", "pilot-a", NOW, {"rows": 108, "file": "s.csv"})


async def test_export_of_an_unknown_cohort_leaves_no_file(signals: Database, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()

    with pytest.raises(ExportError, match="no cohort 'nope'"):
        await export_signals(signals, KEY, folder / "x.csv", NOW, cohort="nope")

    assert list(folder.iterdir()) == []


def test_pseudonyms_depend_on_the_key_and_are_stable_for_a_person() -> None:
    one, two = b"1" * 32, b"2" * 32
    first, second = Pseudonyms(one), Pseudonyms(two)

    assert first(7) == first(7) == Pseudonyms(one)(7)
    assert first(7) != second(7) and first(7) != first(8)
    assert len(first(7)) == 16


@pytest.mark.parametrize("key", ["", "x" * 31, "é" * 15])  # 0, 31 and 30 bytes
def test_a_key_shorter_than_32_bytes_is_refused(key: str) -> None:
    with pytest.raises(ExportError, match=f"is {len(key.encode())} bytes; it must be at least 32 bytes"):
        Pseudonyms(key.encode())


def test_a_key_of_32_bytes_in_utf8_is_enough() -> None:
    assert len(Pseudonyms(("é" * 16).encode())(1)) == 16  # 16 characters, 32 bytes


async def small_wave(db: Database) -> None:
    """The example program with a minimum group of 17: pilot-a's 18 people pass, wave-b's 16 do not."""
    data = load_program(str(EXAMPLE)).model_dump(mode="json")
    data["min_group_size"] = 17
    await load(db, Program.model_validate(data))


async def test_a_cohort_with_fewer_people_than_the_minimum_group_is_left_out_and_named(signals: Database, tmp_path: Path) -> None:
    await small_wave(signals)
    out = tmp_path / "all.csv"

    result = await export_signals(signals, KEY, out, NOW)

    assert {r[1] for r in read(out)[1:]} == {"pilot-a"} and result.rows == 18 * 2 * 3
    assert result.left_out == ("wave-b",)
    assert result.notes() == [
        "left out wave-b: signals from fewer than 17 people (the program's min_group_size), whose cohort key alone would point at them"
    ]
    async with signals.session() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "export.signals"))
    assert entry is not None and entry.detail["left_out"] == ["wave-b"]


async def test_asking_for_a_cohort_below_the_minimum_group_alone_is_refused(signals: Database, tmp_path: Path) -> None:
    await small_wave(signals)

    with pytest.raises(ExportError, match="cohort 'wave-b' has signals from fewer than 17 people"):
        await export_signals(signals, KEY, tmp_path / "wave.csv", NOW, cohort="wave-b")

    assert not (tmp_path / "wave.csv").exists()


def test_cli_export_without_a_key_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REINFORCE_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")

    code = main(["export", "--out", str(tmp_path / "s.csv")])

    _out, err = capsys.readouterr()
    assert code == 1
    assert err == (
        "reinforce: REINFORCE_PSEUDONYM_KEY is not set: exports are refused without a key for the pseudonyms "
        "(set it to a long random secret and keep it safe)\n"
    )
    assert not (tmp_path / "s.csv").exists()


def test_cli_export_with_a_key_writes_the_file(
    loaded_sqlite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REINFORCE_PSEUDONYM_KEY", KEY.decode())
    monkeypatch.setenv("DATABASE_URL", loaded_sqlite)
    out = tmp_path / "cli.csv"

    code = main(["export", "--out", str(out), "--cohort", "wave-b"])

    assert code == 0
    rows = len(read(out)) - 1
    assert capsys.readouterr().out == f"wrote {rows} signals to {out} (pseudonymous: no names, emails, platform ids or notes)\n"
    assert rows == 16 * 9 * 3 and {row[1] for row in read(out)[1:]} == {"wave-b"}


def test_cli_export_says_which_cohorts_it_left_out(
    loaded_sqlite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_small_wave_at(loaded_sqlite))
    monkeypatch.setenv("REINFORCE_PSEUDONYM_KEY", KEY.decode())
    monkeypatch.setenv("DATABASE_URL", loaded_sqlite)

    code = main(["export", "--out", str(tmp_path / "cli.csv")])

    assert code == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("left out wave-b: signals from fewer than 17 people")


def test_cli_export_with_a_short_key_is_refused_in_one_line(
    loaded_sqlite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REINFORCE_PSEUDONYM_KEY", "short")
    monkeypatch.setenv("DATABASE_URL", loaded_sqlite)

    code = main(["export", "--out", str(tmp_path / "cli.csv")])

    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("reinforce: the pseudonym key (REINFORCE_PSEUDONYM_KEY) is 5 bytes; it must be at least 32 bytes (UTF-8)")
    assert not (tmp_path / "cli.csv").exists()


async def _small_wave_at(url: str) -> None:
    db = Database(url)
    try:
        await small_wave(db)
    finally:
        await db.close()
