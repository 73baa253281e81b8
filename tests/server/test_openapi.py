"""The OpenAPI document at /openapi.json: it documents every route, and schemathesis, generating
requests from it (valid and invalid), never gets a 5xx or a response the document does not describe."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from _http_world import ADMIN_TOKEN, World, make_world
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance
from starlette.routing import Route

from authchain.server.openapi import openapi_document


def test_every_route_is_documented(world: World) -> None:
    documented = openapi_document("https://x")["paths"]
    routes = [r for r in world.client.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    assert routes
    for route in routes:
        assert route.path in documented, route.path
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in documented[route.path], (route.path, method)
    assert len(documented) == len(routes)


def test_openapi_document_is_served(world: World) -> None:
    document = world.client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": world.authority.issuer}]


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = make_world(Path(tmp_path_factory.mktemp("fuzz")))
    yield world
    world.store.close()


def _cases() -> list[tuple[str, GenerationMode]]:
    """Every operation with valid inputs, and those that take input with invalid inputs too."""
    out = []
    for path, item in openapi_document("https://x")["paths"].items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            out.append((label, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                out.append((label, GenerationMode.NEGATIVE))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("label", "mode"), _cases())
def test_no_input_produces_a_server_error(
    fuzz_world: World, label: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_world.client.app)
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    admin = label.split(" ", 1)[1].startswith(("/admin/", "/revoke", "/log/entries", "/trace"))

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        # Schema-valid is not enough to be accepted here: a token exchange needs real
        # signatures, so "valid data rejected" (positive_data_acceptance) does not apply.
        excluded = [positive_data_acceptance]
        if admin and zlib.crc32(repr(case.body).encode()) % 2 == 0:
            # Half the admin requests carry the real credential, so their bodies are exercised;
            # schemathesis cannot know the credential is real, so its "ignored auth" check is off.
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}
            excluded.append(ignored_auth)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.call_and_validate(excluded_checks=excluded)

    run()
