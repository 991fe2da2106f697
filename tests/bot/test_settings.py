"""Settings: defaults work with an empty environment; bad values name the variable in one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings
from storage.db import upgrade
from tests.rig import SECRET, running_rig, wait_for

VARIABLES = [
    "DATABASE_URL",
    "PORT",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
    "SLACK_API_URL",
    "MICROSOFT_APP_ID",
    "MICROSOFT_APP_PASSWORD",
    "MICROSOFT_APP_TENANT_ID",
    "MICROSOFT_APP_TYPE",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "REINFORCE_LLM_MODEL",
    "REINFORCE_PSEUDONYM_KEY",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_an_empty_environment_gives_the_embedded_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///reinforce.db"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert not (settings.slack_configured or settings.teams_configured or settings.llm_configured)


def test_every_contract_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "DATABASE_URL": "postgresql://u@db/reinforce",
        "PORT": "8080",
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "SLACK_APP_TOKEN": "xapp-1",
        "SLACK_CLIENT_ID": "cid",
        "SLACK_CLIENT_SECRET": "cs",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
        "MICROSOFT_APP_ID": "app",
        "MICROSOFT_APP_PASSWORD": "pw",
        "MICROSOFT_APP_TENANT_ID": "tenant",
        "MICROSOFT_APP_TYPE": "SingleTenant",
        "OPENAI_API_KEY": "sk",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "REINFORCE_LLM_MODEL": "llama",
        "REINFORCE_PSEUDONYM_KEY": "k",
    }
    assert set(values) == set(VARIABLES)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert (s.database_url, s.port, s.slack_api_url, s.openai_base_url) == (
        "postgresql://u@db/reinforce",
        8080,
        "http://127.0.0.1:9/api/",
        "http://127.0.0.1:9/v1/",
    )
    assert (s.microsoft_app_type, s.reinforce_llm_model, s.slack_client_id) == ("SingleTenant", "llama", "cid")
    assert s.reinforce_pseudonym_key.get_secret_value() == "k"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PORT": "eighty"}, "PORT: must be a whole number between 1 and 65535 (got 'eighty')"),
        ({"PORT": "70000"}, "PORT: must be a whole number between 1 and 65535 (got '70000')"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL: uses 'mysql'; Reinforce supports sqlite and postgresql"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL: is not a database URL"),
        ({"SLACK_API_URL": "ftp://x"}, "SLACK_API_URL: must be an http:// or https:// URL"),
        ({"SLACK_BOT_TOKEN": "xoxp-user", "SLACK_SIGNING_SECRET": "s"}, "SLACK_BOT_TOKEN: must be a bot token starting with xoxb-"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET: is required"),
        ({"SLACK_CLIENT_ID": "c", "SLACK_SIGNING_SECRET": "s"}, "SLACK_CLIENT_SECRET: is required when SLACK_CLIENT_ID is set"),
        ({"MICROSOFT_APP_ID": "a"}, "MICROSOFT_APP_PASSWORD: is required when MICROSOFT_APP_ID is set"),
        (
            {"MICROSOFT_APP_ID": "a", "MICROSOFT_APP_PASSWORD": "p", "MICROSOFT_APP_TYPE": "SingleTenant"},
            "MICROSOFT_APP_TENANT_ID: is required",
        ),
        ({"MICROSOFT_APP_TYPE": "Everyone"}, "MICROSOFT_APP_TYPE: must be one of"),
        ({"OPENAI_BASE_URL": "localhost:8000"}, "OPENAI_BASE_URL: must be an http:// or https:// URL"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and message.startswith(expected)


def test_a_malformed_secret_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-very-secret-value")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "very-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("DATABASE_URL", "mysql://reinforce:hunter2@db.internal/reinforce", "mysql://reinforce:***@db.internal/reinforce"),
        ("OPENAI_BASE_URL", "ftp://reinforce:hunter2@llm.internal/v1", "ftp://reinforce:***@llm.internal/v1"),
        ("SLACK_API_URL", "slack.example/api?token=hunter2", "slack.example/api?token=***"),
    ],
)
def test_a_bad_url_is_echoed_without_its_password(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, shown: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{variable}: ") and f"(got {shown!r})" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_web_servers_read_timeouts_are_a_few_seconds_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REINFORCE_HEADER_TIMEOUT", raising=False)
    monkeypatch.delenv("REINFORCE_BODY_TIMEOUT", raising=False)
    defaults = load_settings()
    assert 1 <= defaults.reinforce_header_timeout <= 10 and 1 <= defaults.reinforce_body_timeout <= 30
    monkeypatch.setenv("REINFORCE_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("REINFORCE_BODY_TIMEOUT", "20")
    settings = load_settings()
    assert (settings.reinforce_header_timeout, settings.reinforce_body_timeout) == (2.5, 20.0)
    monkeypatch.setenv("REINFORCE_BODY_TIMEOUT", "0")
    with pytest.raises(SettingsError, match=r"^REINFORCE_BODY_TIMEOUT: "):
        load_settings()


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSOFT_APP_ID", "")
    monkeypatch.setenv("PORT", "")
    settings = load_settings()
    assert settings.microsoft_app_id is None and settings.port == 3978


async def test_secrets_never_reach_the_logs_of_a_busy_web_process(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """Every logger at DEBUG (slack_sdk logs each request it makes at that level) through
    sends, clicks, commands, a forged request and a Teams install."""
    caplog.set_level(logging.DEBUG)
    token, key = "xoxb-1111-2222-tokenvalue", "pseudonym-key-value-3333"
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    async with running_rig(url, slack_bot_token=token, reinforce_pseudonym_key=key) as rig:
        await rig.consent_all()
        await rig.deliver_checklists()
        channel, ts, yes = rig.slack_button("ana@example.com", "q:decision_huddle", "Yes")
        assert await rig.slack_click("ana@example.com", yes, channel=channel, ts=ts) == 200
        assert "Only sponsors" in await rig.slack_command("ana@example.com", "digest pilot-a")
        assert (await rig.slack_post("payload=%7B%7D", signed=False))[0] == 401
        await rig.teams_install("carla@example.com")
        await wait_for(lambda: rig.slack.called("chat.update"))
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "chat.postMessage" in logged  # the SDK's request log was captured
    for secret in (token, SECRET, key):
        assert secret not in logged
