"""Every environment variable Reinforce reads, validated once at start.

This is the only module that reads the environment; the resulting ``Settings`` is passed
down from the composition root. A bad value stops the process with one line naming the
variable, never a traceback.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.masking import mask
from storage.db import DatabaseUrlError, check_url


class SettingsError(ValueError):
    """One or more bad environment variables, one line each."""


class _VarError(ValueError):
    """A cross-variable problem, attributed to the variable that must change."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(problem)
        self.variable = variable


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value if value.endswith("/") else value + "/"


def _page_url(value: str | None) -> str | None:
    """An http(s) URL of a page, kept as given (no slash added)."""
    if value is not None:
        _http_url(value)
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, env_ignore_empty=True, extra="ignore", frozen=True)

    database_url: str = "sqlite:///reinforce.db"
    port: int = Field(default=3978, ge=1, le=65535)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    microsoft_app_id: str | None = None
    microsoft_app_password: SecretStr | None = None
    microsoft_app_tenant_id: str | None = None
    microsoft_app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = "MultiTenant"

    reinforce_teams_dev: bool = False  # serve /api/messages unauthenticated, for local development only
    # Microsoft Graph (`reinforce teams install`), with a token for the same app credentials from
    # the Microsoft identity platform (the authority is this URL followed by the tenant id).
    microsoft_graph_url: str = "https://graph.microsoft.com/v1.0/"
    microsoft_login_url: str = "https://login.microsoftonline.com/"
    reinforce_teams_catalog_id: str | None = None  # the app's id in the organisation's Teams app catalog

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    reinforce_llm_model: str = "gpt-4o-mini"
    reinforce_llm_timeout: float = Field(default=30.0, gt=0, le=600)
    reinforce_llm_max_retries: int = Field(default=2, ge=0, le=10)
    reinforce_scenarios: str | None = None  # scenario file; default: examples/scenarios.yaml

    reinforce_pseudonym_key: SecretStr | None = None
    reinforce_metrics_token: SecretStr | None = None  # when set, /metrics wants "Authorization: Bearer <token>"
    reinforce_public_url: str | None = None  # where people reach `reinforce serve` (https://host/)
    # The privacy statement and terms of use the Teams app links to; default: the pages
    # `reinforce serve` has at /privacy and /terms of REINFORCE_PUBLIC_URL.
    reinforce_privacy_url: str | None = None
    reinforce_terms_url: str | None = None
    reinforce_retention_days: int = Field(default=400, ge=1, le=3650)

    # Seconds `reinforce serve` gives a client to send a request's headers, then its body; a
    # slower client is disconnected (docs/operations.md: put a reverse proxy in front).
    reinforce_header_timeout: float = Field(default=5.0, gt=0, le=600)
    reinforce_body_timeout: float = Field(default=10.0, gt=0, le=600)

    # Sends per second the delivery engine allows itself (the platforms' published limits).
    reinforce_slack_rate_per_channel: float = Field(default=1.0, gt=0)
    reinforce_slack_rate_per_workspace: float | None = Field(default=None, gt=0)
    reinforce_teams_rate_per_conversation: float = Field(default=7.0, gt=0)
    reinforce_teams_rate_per_tenant: float = Field(default=30.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            return check_url(value)
        except DatabaseUrlError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("slack_api_url", "openai_base_url", "microsoft_graph_url", "reinforce_public_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("reinforce_privacy_url", "reinforce_terms_url")
    @classmethod
    def _pages(cls, value: str | None) -> str | None:
        return _page_url(value)

    @field_validator("microsoft_login_url")
    @classmethod
    def _login_url(cls, value: str) -> str:
        # MSAL accepts only https authorities.
        if urlparse(value).scheme != "https":
            raise ValueError("must be an https:// URL (the Microsoft identity platform accepts nothing else)")
        return str(_http_url(value))

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if self.slack_client_id and not self.slack_client_secret:
            raise _VarError("SLACK_CLIENT_SECRET", "is required when SLACK_CLIENT_ID is set (OAuth install)")
        if self.slack_client_secret and not self.slack_client_id:
            raise _VarError("SLACK_CLIENT_ID", "is required when SLACK_CLIENT_SECRET is set (OAuth install)")
        if (self.slack_bot_token or self.slack_client_id) and not (self.slack_signing_secret or self.slack_app_token):
            raise _VarError("SLACK_SIGNING_SECRET", "is required to verify Slack requests (or set SLACK_APP_TOKEN for Socket Mode)")
        if self.microsoft_app_id:
            if self.microsoft_app_type != "UserAssignedMSI" and not self.microsoft_app_password:
                raise _VarError("MICROSOFT_APP_PASSWORD", "is required when MICROSOFT_APP_ID is set")
            if self.microsoft_app_type != "MultiTenant" and not self.microsoft_app_tenant_id:
                raise _VarError("MICROSOFT_APP_TENANT_ID", f"is required for MICROSOFT_APP_TYPE={self.microsoft_app_type}")
        return self

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_bot_token or self.slack_client_id)

    @property
    def teams_configured(self) -> bool:
        return bool(self.microsoft_app_id)

    @property
    def teams_enabled(self) -> bool:
        """Teams is served: with credentials, or unauthenticated for local development."""
        return self.teams_configured or self.reinforce_teams_dev

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)


_SECRET_FIELDS = {name for name, f in Settings.model_fields.items() if f.annotation == SecretStr | None}


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment (and ``overrides``); raises SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("\n".join(_describe(err) for err in exc.errors())) from None


def _describe(err: Any) -> str:
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, _VarError):
        return f"{cause.variable}: {cause}"
    field = str(err["loc"][0]) if err["loc"] else ""
    problem = err["msg"].removeprefix("Value error, ")
    if field == "port" and err["type"] in ("int_parsing", "greater_than_equal", "less_than_equal"):
        problem = "must be a whole number between 1 and 65535"
    elif err["type"] in ("int_parsing", "float_parsing"):
        problem = "must be a number"
    elif err["type"] == "bool_parsing":
        problem = "must be true or false (1 or 0)"
    elif err["type"] == "literal_error":
        problem = "must be one of " + err["ctx"]["expected"]
    if field not in _SECRET_FIELDS and isinstance(err.get("input"), str):
        problem += f" (got {mask(err['input'])!r})"
    return f"{field.upper()}: {problem}"
