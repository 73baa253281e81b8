"""Issue 10, point 8 (age): an ID token starts a task only while it is recent.

An ID token is the initiator's word that they are there now. Accepted up to a day old, a copied one
was worth a day of task starts; the authority now accepts it for ten minutes after its ``iat``
unless configured otherwise (``Authority(id_token_max_age=...)``), and records every refusal.
"""

from __future__ import annotations

from typing import Any

import pytest
from _authority_world import ALICE, ISSUER, PLANNER, TRUST_DOMAIN, Clock, World

from authchain.audit.records import TaskDenied
from authchain.audit.store import LogStore
from authchain.authority import Authority, IssuedToken
from authchain.errors import ConfigurationError, ExpiredError, Input
from authchain.policy import PolicyEngine
from authchain.tokens.id_token import (
    DEFAULT_ID_TOKEN_MAX_AGE,
    LocalIdentityProvider,
    verify_id_token,
)

IDP = "https://idp.example.org"
NOW = 1_767_225_600


def _start_with(world: World, id_token: str) -> IssuedToken:
    return world.authority.start_task(
        subject_token=id_token,
        dpop_proof=world.token_proof(PLANNER),
        scope="crm:read",
        request_details={"purpose": "update ACME"},
    )


def _day_long_id_token(world: World) -> str:
    # A token its issuer made valid for a day: only the authority's age bound can stop it.
    return world.idp.issue(ALICE, audience=ISSUER, now=world.now, lifetime=86_400)


def test_the_default_accepted_age_is_ten_minutes() -> None:
    assert DEFAULT_ID_TOKEN_MAX_AGE == 600


def test_an_id_token_eleven_minutes_old_cannot_start_a_task_and_the_refusal_is_recorded(
    world: World, clock: Clock
) -> None:
    token = _day_long_id_token(world)
    clock.advance(660)
    with pytest.raises(ExpiredError) as caught:
        _start_with(world, token)
    assert caught.value.input is Input.SUBJECT_TOKEN
    assert "660 s ago" in caught.value.message
    record = world.record(caught.value.log_index)
    assert isinstance(record, TaskDenied)
    assert (record.error, record.input) == ("expired", "subject_token")


def test_an_id_token_within_its_accepted_age_starts_a_task(world: World, clock: Clock) -> None:
    token = _day_long_id_token(world)
    clock.advance(600)
    assert _start_with(world, token).claims.sub == ALICE


def test_the_accepted_age_is_configurable(store: LogStore, policy: PolicyEngine) -> None:
    clock = Clock()
    world = World(store, clock=clock)
    world.authority = Authority(
        store,
        issuer=ISSUER,
        trust_domain=TRUST_DOMAIN,
        policy=policy,
        clock=clock,
        id_token_max_age=60,
    )
    world.authority.trust_issuer(world.idp.issuer, world.idp.jwks)
    world.authority.register_principal(ALICE, scopes=["crm:read"])
    world.add_workload(PLANNER, "agent", ("crm:read",))
    token = _day_long_id_token(world)
    clock.advance(61)
    with pytest.raises(ExpiredError):
        _start_with(world, token)
    assert _start_with(world, _day_long_id_token(world)).claims.sub == ALICE


@pytest.mark.parametrize("bad", [0, -1, 86_401, 1.5, "600", True])
def test_an_unusable_accepted_age_is_a_configuration_error(
    store: LogStore, policy: PolicyEngine, bad: Any
) -> None:
    with pytest.raises(ConfigurationError, match="id_token_max_age"):
        Authority(store, policy=policy, id_token_max_age=bad)


def test_verify_id_token_refuses_an_iat_older_than_max_age() -> None:
    idp = LocalIdentityProvider(IDP)
    token = idp.issue(ALICE, audience=ISSUER, now=NOW - 301, lifetime=3600)
    with pytest.raises(ExpiredError, match="at most 300 s"):
        verify_id_token(token, issuers={IDP: idp.jwks}, audience=ISSUER, now=NOW, max_age=300)
    assert (
        verify_id_token(token, issuers={IDP: idp.jwks}, audience=ISSUER, now=NOW).subject == ALICE
    )
    with pytest.raises(ConfigurationError):
        verify_id_token(token, issuers={IDP: idp.jwks}, audience=ISSUER, now=NOW, max_age=0)
