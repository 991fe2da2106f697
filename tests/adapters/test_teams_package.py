"""`reinforce teams package`: the zip Teams takes, with a manifest valid against the current schema Microsoft documents.

The schema is Microsoft's own file, installed by `make install` from Microsoft's npm package
(see TEAMS_SCHEMA in the Makefile); nothing is fetched here.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(sys.prefix) / "share" / "reinforce" / "MicrosoftTeams.v1.30.schema.json"
APP_ID = "0f3c8d52-7a1e-4b7e-9a3d-2f6c1e8b9a10"


def _schema() -> dict[str, Any]:
    if not SCHEMA.is_file():
        pytest.fail(f"{SCHEMA} is missing: run `make install` (it installs the Teams manifest schema)")
    return json.loads(SCHEMA.read_text())


def reinforce(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_", "REINFORCE_", "DATABASE_URL"))}
    base = {"MICROSOFT_APP_ID": APP_ID, "MICROSOFT_APP_PASSWORD": "secret", "REINFORCE_PUBLIC_URL": "https://reinforce.acme.example/"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, env={**clean, **base, **env}, cwd=ROOT, timeout=120
    )


def _package(tmp_path: Path, **env: str) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    out = tmp_path / "reinforce-teams.zip"
    result = reinforce("teams", "package", "--out", str(out), **env)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    package = zipfile.ZipFile(out)
    return package, json.loads(package.read("manifest.json"))


def test_the_package_is_the_manifest_and_its_icons_at_the_top_valid_against_the_current_schema(tmp_path: Path) -> None:
    package, manifest = _package(tmp_path)
    assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
    schema = _schema()
    jsonschema.validators.validator_for(schema)(schema).validate(manifest)
    assert manifest["manifestVersion"] == schema["properties"]["manifestVersion"]["const"] == "1.30"
    assert manifest["$schema"].endswith("/teams/v1.30/MicrosoftTeams.schema.json")
    assert manifest["id"] == manifest["bots"][0]["botId"] == manifest["webApplicationInfo"]["id"] == APP_ID
    assert manifest["validDomains"] == ["reinforce.acme.example"]
    with Image.open(io.BytesIO(package.read(manifest["icons"]["color"]))) as color:
        assert color.size == (192, 192)
    with Image.open(io.BytesIO(package.read(manifest["icons"]["outline"]))) as outline:
        assert outline.size == (32, 32)
        # Teams wants the outline icon white on transparent.
        rgba = outline.convert("RGBA").tobytes()
        assert {rgba[i : i + 3] for i in range(0, len(rgba), 4) if rgba[i + 3]} <= {b"\xff\xff\xff"}


def test_a_manifest_that_breaks_the_schema_is_caught(tmp_path: Path) -> None:
    _package_file, manifest = _package(tmp_path)
    schema = _schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    manifest["bots"][0]["scopes"] = ["personal", "everywhere"]
    del manifest["developer"]["privacyUrl"]
    assert len(list(validator.iter_errors(manifest))) == 2


def test_privacy_and_terms_are_the_served_pages_unless_the_organisation_names_its_own(tmp_path: Path) -> None:
    _package_file, manifest = _package(tmp_path)
    assert manifest["developer"]["websiteUrl"] == "https://reinforce.acme.example/"
    assert manifest["developer"]["privacyUrl"] == "https://reinforce.acme.example/privacy"
    assert manifest["developer"]["termsOfUseUrl"] == "https://reinforce.acme.example/terms"
    _package_file, manifest = _package(
        tmp_path, REINFORCE_PRIVACY_URL="https://intranet.acme.example/privacy", REINFORCE_TERMS_URL="https://intranet.acme.example/terms"
    )
    assert manifest["developer"]["privacyUrl"] == "https://intranet.acme.example/privacy"
    assert manifest["developer"]["termsOfUseUrl"] == "https://intranet.acme.example/terms"


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"REINFORCE_PUBLIC_URL": ""}, "REINFORCE_PUBLIC_URL is not set: set it to the public https:// URL of `reinforce serve`"),
        ({"REINFORCE_PUBLIC_URL": "http://reinforce.acme.example"}, "REINFORCE_PUBLIC_URL must be an https:// URL for Teams"),
        ({"MICROSOFT_APP_ID": "reinforce-bot"}, "MICROSOFT_APP_ID must be the app registration's Application (client) ID, a GUID"),
    ],
)
def test_what_the_package_needs_is_named_in_one_line(tmp_path: Path, env: dict[str, str], error: str) -> None:
    result = reinforce("teams", "package", "--out", str(tmp_path / "p.zip"), **env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"reinforce: {error}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "p.zip").exists()
