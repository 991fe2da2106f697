"""A fake Microsoft identity platform on 127.0.0.1 over HTTPS, for driving MSAL's client-credentials flow for real.

MSAL refuses authorities that are not https, so the fake serves TLS with a certificate from a
certificate authority made for the test (``TestCA``); whoever runs MSAL trusts that CA through
``REQUESTS_CA_BUNDLE`` (MSAL uses requests). It answers what MSAL asks of a tenant: the
OpenID configuration, and tokens at the v2.0 token endpoint, with Entra's error format for a
wrong client secret.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TestCA:
    """A certificate authority and a server certificate for 127.0.0.1, written under ``folder``."""

    __test__ = False  # not a pytest test class

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def make(cls, folder: Path) -> TestCA:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Reinforce test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        made = cls(folder / "test-ca.pem", folder / "server.pem", folder / "server.key")
        made.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        made.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        made.key_file.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return made

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass
class FakeIdentity:
    """One tenant's token endpoint: client id -> secret, and the tokens handed out."""

    tenant: str
    clients: dict[str, str] = field(default_factory=dict)
    issued: dict[str, dict[str, str]] = field(default_factory=dict)  # token -> the request's form
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""  # the base URL to configure as MICROSOFT_LOGIN_URL
    _next: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def _openid(self, request: web.Request) -> web.Response:
        if request.match_info["tenant"] != self.tenant:
            # Entra answers an unknown tenant's discovery with 400 (MSAL reports the tenant as wrong).
            return web.json_response({"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."}, status=400)
        base = f"{self.url}{self.tenant}"
        return web.json_response(
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        client = form.get("client_id", "")
        if form.get("grant_type") != "client_credentials":
            return _entra_error("unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 400)
        if client not in self.clients:
            return _entra_error("unauthorized_client", f"AADSTS700016: Application with identifier '{client}' was not found.", 400)
        if self.clients[client] != form.get("client_secret"):
            return _entra_error("invalid_client", "AADSTS7000215: Invalid client secret provided.", 401)
        token = f"graph-token-{next(self._next)}"
        self.issued[token] = form
        return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})


def _entra_error(error: str, description: str, status: int) -> web.Response:
    body: dict[str, Any] = {
        "error": error,
        "error_description": description,
        "error_codes": [int(description.removeprefix("AADSTS").split(":")[0])],
    }
    return web.json_response(body, status=status)


@asynccontextmanager
async def running_fake_identity(ca: TestCA, tenant: str = "tenant-1") -> AsyncIterator[FakeIdentity]:
    """Serve a FakeIdentity over HTTPS on 127.0.0.1; ``fake.url`` is the base URL for MICROSOFT_LOGIN_URL."""
    fake = FakeIdentity(tenant)
    app = web.Application()
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", fake._openid)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", fake._token)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=ca.server_context())
    fake.url = str(server.make_url("/"))
    try:
        yield fake
    finally:
        await server.close()
