"""/privacy and /terms: the pages the Teams app links to, served by `reinforce serve` itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import build
from bot.settings import SettingsError, load_settings
from bot.web import make_web_app
from storage.db import upgrade


@asynccontextmanager
async def _served(tmp_path: Path, **settings: Any) -> AsyncIterator[str]:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    server = TestServer(make_web_app(build(load_settings(database_url=url, **settings))), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, response.content_type, await response.text()


async def test_the_privacy_page_says_what_is_kept_who_sees_it_and_for_how_long(tmp_path: Path) -> None:
    async with _served(tmp_path, reinforce_retention_days=30) as url:
        status, kind, page = await _get(f"{url}/privacy")
    assert (status, kind) == (200, "text/html")
    assert "deleted 30 days after" in page
    assert "never a figure drawn from fewer than 5" in page
    assert "consent" in page and "optout" in page


async def test_the_terms_link_to_the_privacy_statement_in_force(tmp_path: Path) -> None:
    async with _served(tmp_path) as url:
        status, kind, page = await _get(f"{url}/terms")
    assert (status, kind) == (200, "text/html")
    assert 'href="/privacy"' in page
    async with _served(tmp_path, reinforce_privacy_url="https://intranet.example.com/privacy?app=reinforce&v=2") as url:
        _status, _kind, page = await _get(f"{url}/terms")
    assert 'href="https://intranet.example.com/privacy?app=reinforce&amp;v=2"' in page


def test_page_urls_are_kept_as_given_and_the_microsoft_urls_checked() -> None:
    settings = load_settings(reinforce_privacy_url="https://example.com/privacy", reinforce_public_url="https://reinforce.example.com")
    assert settings.reinforce_privacy_url == "https://example.com/privacy"
    assert settings.reinforce_public_url == "https://reinforce.example.com/"
    assert settings.microsoft_graph_url == "https://graph.microsoft.com/v1.0/"
    assert settings.microsoft_login_url == "https://login.microsoftonline.com/"
    with pytest.raises(SettingsError, match=r"MICROSOFT_LOGIN_URL: must be an https:// URL"):
        load_settings(microsoft_login_url="http://127.0.0.1:9/")
    with pytest.raises(SettingsError, match=r"REINFORCE_TERMS_URL: must be an http:// or https:// URL"):
        load_settings(reinforce_terms_url="terms.html")
