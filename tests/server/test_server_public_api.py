"""The public surface of the server package is pinned, so an accidental export is noticed."""

from __future__ import annotations

import authchain.server as server


def test_server_package_exports() -> None:
    assert sorted(server.__all__) == [
        "ID_TOKEN_TYPE",
        "OAUTH_ERRORS",
        "TOKEN_EXCHANGE",
        "TXN_TOKEN_TYPE",
        "create_app",
        "oauth_error_code",
        "openapi_document",
    ]
    for name in server.__all__:
        assert getattr(server, name) is not None
