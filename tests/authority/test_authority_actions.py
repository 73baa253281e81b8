"""Action reports (issue 9): what verified becomes evidence, what the reporter said is kept apart,
and a presentation is verified once, step by step, keeping what held when a later step failed."""

from __future__ import annotations

from typing import Any

import pytest
from _authority_world import ALICE, API_URL, CRM_AGENT, RESEARCH, UPDATER, World

import authchain.authority.actions as actions_module
from authchain.audit.records import ActionInvoked, ActionRefused
from authchain.identity.keys import SigningKey
from authchain.tokens.dpop import create_proof


def test_a_verified_action_names_the_holder_and_keeps_the_reporters_words_apart(
    world: World,
) -> None:
    _, _, tool, index = world.clean_task()
    record = world.record(index)
    assert isinstance(record, ActionInvoked)
    assert (record.actor, record.initiator, record.unattributed) == (UPDATER, ALICE, None)
    assert record.reported == {"presenter": UPDATER}
    assert record.log == tool.log_index


def test_a_token_replayed_by_a_registered_key_names_that_key_as_the_presenter(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, crm, _, _ = world.clean_task()
    calls: list[Any] = []
    real = actions_module.verify_task_token

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(actions_module, "verify_task_token", counting)
    stolen = world.api_proof(RESEARCH, crm.access_token)
    index = world.act(UPDATER, crm, proof=stolen, refusal="key_binding_mismatch")
    record = world.record(index)
    assert isinstance(record, ActionRefused)
    # The research agent's own proof names it; the reporter's "presenter" is only its word.
    assert (record.actor, record.holder, record.error) == (
        RESEARCH,
        CRM_AGENT,
        "key_binding_mismatch",
    )
    assert record.reported == {"presenter": UPDATER, "refusal": "key_binding_mismatch"}
    assert len(calls) == 1  # the token was verified once


def test_a_token_replayed_by_an_unknown_key_names_no_presenter(world: World) -> None:
    _, crm, _, _ = world.clean_task()
    stolen = create_proof(
        SigningKey.generate(),
        htm="PATCH",
        htu=API_URL,
        now=world.now,
        access_token=crm.access_token,
    )
    record = world.record(world.act(RESEARCH, crm, proof=stolen))
    assert isinstance(record, ActionInvoked)
    assert (record.actor, record.holder, record.unattributed) == (None, CRM_AGENT, True)
    assert record.reported == {"presenter": RESEARCH}


def test_an_action_without_a_token_is_the_reporters_claim_only(world: World) -> None:
    record = world.record(world.act(RESEARCH, None, claimed_initiator=ALICE))
    assert isinstance(record, ActionInvoked)
    assert (record.actor, record.initiator, record.unattributed) == (None, None, True)
    assert record.reported == {"presenter": RESEARCH, "claimed_initiator": ALICE}
