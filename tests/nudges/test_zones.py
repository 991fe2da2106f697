"""Tests for nudges/zones.py: every name zoneinfo knows is a place, UTC, or refused naming a zone to use."""

from __future__ import annotations

import re
from importlib import resources
from zoneinfo import ZoneInfo, available_timezones

import pytest

from nudges.zones import zone_problem


def _places() -> set[str]:
    """tzdata's zone.tab: one zone per place, the names a program file should use."""
    table = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    return {line.split("\t")[2] for line in table.splitlines() if line and not line.startswith("#")}


PLACES = _places()


def test_every_place_and_utc_is_accepted() -> None:
    assert [name for name in sorted(PLACES | {"UTC", "Etc/UTC"}) if zone_problem(name) is not None] == []


@pytest.mark.parametrize("name", sorted(available_timezones() - PLACES - {"UTC", "Etc/UTC"}))
def test_every_other_name_is_refused_and_any_zone_it_names_is_a_place(name: str) -> None:
    problem = zone_problem(name)

    assert problem is not None
    for suggested in re.findall(r"\b[A-Z][a-z]+/[A-Za-z_/-]+", problem.split(" is ", 1)[1]):
        if suggested.startswith(("docs/", "Etc/", "Area/")):  # a link, "Etc/GMT names", "an Area/City name"
            continue
        assert suggested in PLACES, (name, suggested)
        ZoneInfo(suggested)


def test_an_unknown_name_is_left_to_zoneinfo() -> None:
    assert zone_problem("Europe/Atlantis") is None
