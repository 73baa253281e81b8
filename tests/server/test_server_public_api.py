"""The public surface of the server package is pinned, so an accidental export is noticed."""

from __future__ import annotations

import authchain.server as server


def test_server_package_exports() -> None:
    # The error table (server.errors) and the RFC 8693 identifiers (authchain.tokens) are not
    # re-exported here: one home each.
    assert sorted(server.__all__) == ["create_app", "openapi_document"]
    for name in server.__all__:
        assert getattr(server, name) is not None
