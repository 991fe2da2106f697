"""Installs the Teams app manifest schema that tests/adapters/test_teams_package.py validates
against: the current version Microsoft documents, from Microsoft's own npm package, checked
against its SHA-256. Run by `make install` (from the package registry, like the Python
packages); tests never download anything.

    python tests/schemas/teams_manifest_schema.py DEST
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "1.30"
PACKAGE = "https://registry.npmjs.org/@microsoft/app-manifest/-/app-manifest-1.1.2.tgz"
MEMBER = f"package/build/json-schemas/teams/v{VERSION}/MicrosoftTeams.schema.json"
SHA256 = "3339690aacd9049bc65ade66b258982803d8c6c6d3897a23f8a057b6ebe35479"


def main(dest: str) -> int:
    with urllib.request.urlopen(PACKAGE, timeout=60) as response, tarfile.open(fileobj=io.BytesIO(response.read())) as archive:
        member = archive.extractfile(MEMBER)
        schema = member.read() if member is not None else None
    if schema is None:
        print(f"{PACKAGE} has no {MEMBER}", file=sys.stderr)
        return 1
    if hashlib.sha256(schema).hexdigest() != SHA256:
        print(f"{MEMBER} in {PACKAGE} is not the expected file (SHA-256 differs)", file=sys.stderr)
        return 1
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_bytes(schema)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
