"""The Teams app package: teams/manifest.json filled in for this installation, zipped with its two icons as Teams wants them.

Teams takes a zip with manifest.json and the icons it names at the top level (no folder).
The manifest in the repository carries placeholders; the package gets the app registration's
id, the public host of `reinforce serve`, and the privacy and terms pages (served at /privacy
and /terms unless the organisation names its own).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

__all__ = ["MANIFEST_DIR", "PackageError", "build_manifest", "write_package"]

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "teams"
APP_ID_PLACEHOLDER = "{{MICROSOFT_APP_ID}}"
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class PackageError(ValueError):
    """The package cannot be built; the message says which setting to change."""


def _https(name: str, url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme != "https" or not parsed.hostname:
        raise PackageError(f"{name} must be an https:// URL for Teams (got {url!r})")
    return url


def build_manifest(
    app_id: str | None,
    public_url: str | None,
    privacy_url: str | None = None,
    terms_url: str | None = None,
    source: Path = MANIFEST_DIR,
) -> dict[str, Any]:
    """teams/manifest.json with ``app_id`` (MICROSOFT_APP_ID) and the URLs of this installation."""
    if not app_id or not _GUID.fullmatch(app_id):
        raise PackageError(
            "MICROSOFT_APP_ID must be the app registration's Application (client) ID, a GUID such as "
            f"00000000-0000-0000-0000-000000000000 (got {app_id!r})"
        )
    if not public_url:
        raise PackageError("REINFORCE_PUBLIC_URL is not set: set it to the public https:// URL of `reinforce serve`")
    site = _https("REINFORCE_PUBLIC_URL", public_url)
    manifest: dict[str, Any] = json.loads((source / "manifest.json").read_text().replace(APP_ID_PLACEHOLDER, app_id.lower()))
    manifest["developer"].update(
        websiteUrl=site,
        privacyUrl=_https("REINFORCE_PRIVACY_URL", privacy_url) if privacy_url else urljoin(site, "privacy"),
        termsOfUseUrl=_https("REINFORCE_TERMS_URL", terms_url) if terms_url else urljoin(site, "terms"),
    )
    manifest["validDomains"] = [urlparse(site).hostname]
    return manifest


def write_package(out: Path, manifest: dict[str, Any], source: Path = MANIFEST_DIR) -> list[str]:
    """Write the zip to ``out``: manifest.json and the icons it names, at the top level. Returns the names written."""
    icons = [manifest["icons"][kind] for kind in ("color", "outline")]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for icon in icons:
            package.write(source / icon, arcname=icon)
    return ["manifest.json", *icons]
