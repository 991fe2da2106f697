"""Tests for nudges/scenarios.py: the example scenarios load, bad files are explained, prompts come from the file."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.files import load_scenarios
from nudges.program import ProgramError
from nudges.scenarios import CRITERIA, CRITERION_GUIDE, ROLEPLAY_RULES, ScenarioError, feedback_prompt, parse_scenarios, stakeholder_prompt

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scenarios.yaml"


@cache
def _example_data() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture
def data() -> dict[str, Any]:
    """A fresh, mutable copy of examples/scenarios.yaml as parsed YAML."""
    return copy.deepcopy(_example_data())


def only_problem(data: Any, source: str = "bad.yaml") -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenarios(data, source)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


# --- the example file ---------------------------------------------------------------------


def test_example_file_has_the_three_documented_scenarios() -> None:
    book = load_scenarios(str(EXAMPLE))

    assert [s.key for s in book.scenarios] == ["vp-decision-huddles", "director-support-headcount", "peer-decision-rubric"]


def test_every_example_scenario_has_objections_priorities_and_the_full_rubric() -> None:
    for scenario in load_scenarios(str(EXAMPLE)).scenarios:
        assert len(scenario.stakeholder.objections) >= 3, scenario.key
        assert scenario.stakeholder.priorities, scenario.key
        assert scenario.criteria == CRITERIA, scenario.key
        assert 1 <= scenario.turn_limit <= 20


def test_default_scenario_is_the_first_and_unknown_keys_name_the_known_ones() -> None:
    book = load_scenarios(str(EXAMPLE))

    assert book.get().key == "vp-decision-huddles"
    assert book.get("peer-decision-rubric").stakeholder.role == "Platform team lead"
    with pytest.raises(ScenarioError, match=r"no scenario 'nope'.*vp-decision-huddles, director-support-headcount"):
        book.get("nope")


def test_empty_rubric_text_falls_back_to_the_generic_guide() -> None:
    scenario = load_scenarios(str(EXAMPLE)).get()

    assert scenario.guide("brevity") == CRITERION_GUIDE["brevity"]
    assert "six weeks" in scenario.guide("clear_ask")


def test_rubric_left_out_means_all_six_criteria_and_order_is_fixed(data: dict[str, Any]) -> None:
    del data["scenarios"][0]["rubric"]
    data["scenarios"][1]["rubric"] = {"brevity": None, "clear_ask": "Names two people."}

    book = parse_scenarios(data, "ok.yaml")

    assert book.scenarios[0].criteria == CRITERIA
    assert book.scenarios[1].criteria == ("clear_ask", "brevity")


def test_turn_limit_defaults_to_six(data: dict[str, Any]) -> None:
    del data["scenarios"][0]["turn_limit"]

    assert parse_scenarios(data).scenarios[0].turn_limit == 6


# --- errors name the file, the field and the problem --------------------------------------


def test_a_scenario_error_is_a_program_error_so_the_cli_reports_it_alike() -> None:
    assert issubclass(ScenarioError, ProgramError)


def test_misspelled_key_is_named_by_scenario_key(data: dict[str, Any]) -> None:
    data["scenarios"][1]["stakeholder"]["objection"] = ["x"]

    assert (
        only_problem(data) == "bad.yaml: scenarios[director-support-headcount].stakeholder.objection: "
        "unknown key (check the spelling against examples/scenarios.yaml)"
    )


def test_missing_goal_is_required(data: dict[str, Any]) -> None:
    del data["scenarios"][0]["goal"]

    assert only_problem(data) == "bad.yaml: scenarios[vp-decision-huddles].goal: is required"


def test_unknown_rubric_criterion_lists_the_known_ones(data: dict[str, Any]) -> None:
    data["scenarios"][0]["rubric"]["charisma"] = "Smiles."

    problem = only_problem(data)
    assert problem.startswith("bad.yaml: scenarios[vp-decision-huddles].rubric.charisma: unknown rubric criterion")
    assert "clear_ask, business_outcome, evidence, objection_handling, next_step, brevity" in problem


def test_empty_rubric_is_refused(data: dict[str, Any]) -> None:
    data["scenarios"][0]["rubric"] = {}

    assert only_problem(data).startswith("bad.yaml: scenarios[vp-decision-huddles].rubric: must name at least one criterion")


def test_duplicate_scenario_key_is_refused(data: dict[str, Any]) -> None:
    data["scenarios"][2]["key"] = "vp-decision-huddles"

    assert only_problem(data) == "bad.yaml: scenarios[vp-decision-huddles].key: duplicate scenario key 'vp-decision-huddles'"


def test_scenario_without_objections_is_refused(data: dict[str, Any]) -> None:
    data["scenarios"][0]["stakeholder"]["objections"] = []

    assert only_problem(data).startswith("bad.yaml: scenarios[vp-decision-huddles].stakeholder.objections: ")


@pytest.mark.parametrize("limit", [0, 21, "many"])
def test_turn_limit_out_of_range_is_refused(data: dict[str, Any], limit: object) -> None:
    data["scenarios"][0]["turn_limit"] = limit

    assert only_problem(data).startswith("bad.yaml: scenarios[vp-decision-huddles].turn_limit: ")


def test_every_problem_is_reported_on_its_own_line(data: dict[str, Any]) -> None:
    del data["scenarios"][0]["goal"]
    data["scenarios"][1]["turn_limit"] = 0

    with pytest.raises(ScenarioError) as caught:
        parse_scenarios(data, "bad.yaml")
    assert len(caught.value.problems) == 2
    assert str(caught.value) == "\n".join(caught.value.problems)


def test_a_file_that_is_not_a_mapping_is_explained() -> None:
    assert only_problem(["a", "list"]) == "bad.yaml: the file must be a mapping with the key scenarios"


# --- prompts come from the scenario alone -------------------------------------------------


def test_stakeholder_prompt_holds_the_persona_goal_and_rules() -> None:
    scenario = load_scenarios(str(EXAMPLE)).get()
    prompt = stakeholder_prompt(scenario)

    assert "Dana, VP of Product" in prompt
    for line in scenario.stakeholder.objections + scenario.stakeholder.priorities + list(ROLEPLAY_RULES):
        assert line in prompt
    assert scenario.goal in prompt


def test_feedback_prompt_names_every_criterion_key_and_asks_for_json() -> None:
    scenario = load_scenarios(str(EXAMPLE)).get()
    prompt = feedback_prompt(scenario)

    for criterion in CRITERIA:
        assert f"- {criterion} (" in prompt
    # OpenAI's JSON mode refuses a request whose messages never say "JSON".
    assert "JSON" in prompt
