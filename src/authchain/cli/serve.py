"""``authchain serve``: the authority's HTTP API on uvicorn.

Thin: opens the store, builds the :class:`Authority` and the app (:func:`authchain.server.create_app`),
and runs uvicorn. The admin credential is read from ``AUTHCHAIN_ADMIN_TOKEN`` only (never a flag: a
flag would show in the process list); without it the admin routes refuse everything.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Annotated

import typer

from authchain.cli import app
from authchain.errors import ConfigurationError

ADMIN_TOKEN_ENV = "AUTHCHAIN_ADMIN_TOKEN"
_MIN_ADMIN_TOKEN = 16


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    db: Annotated[
        str, typer.Option("--db", help="The audit log: a SQLite file path (created if missing).")
    ] = "authchain.db",
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8600,
    issuer: Annotated[
        str | None,
        typer.Option(
            "--issuer",
            help="The public URL of this authority (default http://HOST:PORT). Token and events "
            "endpoint URLs, which DPoP proofs must name, are derived from it.",
        ),
    ] = None,
    trust_domain: Annotated[
        str, typer.Option("--trust-domain", help="The trust domain task tokens are issued for.")
    ] = "example.org",
    require_nonce: Annotated[
        bool,
        typer.Option("--require-nonce", help="Require DPoP server nonces (RFC 9449 section 8)."),
    ] = False,
    public_log: Annotated[
        bool,
        typer.Option(
            "--public-log",
            help="Let anyone read log entries and traces (checkpoints and proofs are always public).",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "warning",
) -> None:
    """Run the authority's HTTP API (OAuth token exchange with DPoP, action reports, the log)."""
    import uvicorn

    from authchain.audit.store import open_store
    from authchain.authority import Authority
    from authchain.server import create_app
    from authchain.tokens.nonce import NonceSource

    public_url = (issuer or f"http://{host}:{port}").rstrip("/")
    if not public_url.startswith(("https://", "http://")):
        raise ConfigurationError(f"--issuer must be an http(s) URL, not {public_url!r}")
    admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None
    if admin_token is not None and len(admin_token) < _MIN_ADMIN_TOKEN:
        raise ConfigurationError(
            f"{ADMIN_TOKEN_ENV} is shorter than {_MIN_ADMIN_TOKEN} characters; use a random secret"
        )
    if not _is_loopback(host) and public_url.startswith("http://"):
        print(
            f"authchain: warning: serving on {host} with a plain-http issuer; put TLS in front",
            file=sys.stderr,
        )
    store = open_store(db)
    try:
        authority = Authority(
            store,
            issuer=public_url,
            trust_domain=trust_domain,
            nonce_source=NonceSource.generate() if require_nonce else None,
        )
        application = create_app(authority, admin_token=admin_token, public_log=public_log)
        admin_state = "enabled" if admin_token else f"disabled (set {ADMIN_TOKEN_ENV})"
        print(
            f"authchain: authority {public_url} listening on http://{host}:{port}; "
            f"admin API {admin_state}",
            file=sys.stderr,
            flush=True,
        )
        # One process: the DPoP replay cache and report deduplication live in it.
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            server_header=False,
        )
    finally:
        store.close()
