"""Issue 10, point 11 (the authority's side): revocation is serialised with issuance, and a
workload's new key ends what was bound to its old one.

(a) A hop that passed its revocation check used to be recorded after a revocation that landed
meanwhile: the log then showed a child issued after its parent's ``token.revoked``. Hops now hold a
shared lock from the check to the durable record, revocations an exclusive one. The tests read the
LOG ORDER: no ``hop.granted`` has an ancestor token, or its task, revoked at a lower index.

(b) After a workload re-registers with a new key, a token bound to its old key (whoever holds that
key now) is refused as revoked, at the token endpoint and in action reports.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from _authority_world import CRM_AGENT, PLANNER, UPDATER, Clock, World

from authchain.audit.lineage import ChainGap, lineage
from authchain.audit.records import HopGranted, Record, TaskEnded, TaskRevoked, TokenRevoked
from authchain.audit.store import LogStore
from authchain.authority import IssuedToken
from authchain.errors import AuthchainError, Input, RevokedError
from authchain.identity.keys import SigningKey
from authchain.policy import Decision, PolicyEngine, PolicyRequest


class _PausingDelegations:
    """The real policy, pausing inside every delegate decision: after the hop's revocation check
    and before its record, which is exactly where a revocation used to slip in."""

    def __init__(self, engine: PolicyEngine, pause: float) -> None:
        self._engine = engine
        self._pause = pause
        self.deciding = threading.Event()

    def decide(self, request: PolicyRequest) -> Decision:
        if request.action == "delegate":
            self.deciding.set()
            time.sleep(self._pause)
        return self._engine.decide(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _entry(world: World) -> Any:
    def read(index: int) -> Record | None:
        try:
            record: Record = world.record(index)
        except (AuthchainError, IndexError):
            return None
        return record

    return read


def _children_after_revocation(world: World) -> list[str]:
    """Every hop.granted recorded after a revocation of one of its ancestors or of its task."""
    revoked_tokens: dict[str, int] = {}
    revoked_tasks: dict[str, int] = {}
    granted: list[tuple[int, HopGranted]] = []
    for index, _ in world.events():
        record = world.record(index)
        if isinstance(record, TokenRevoked):
            revoked_tokens.setdefault(record.token, index)
        elif isinstance(record, TaskRevoked | TaskEnded):
            revoked_tasks.setdefault(record.txn, index)
        elif isinstance(record, HopGranted):
            granted.append((index, record))
    late = []
    for index, hop in granted:
        if revoked_tasks.get(hop.txn, index + 1) < index:
            late.append(f"hop.granted #{index} after its task ended #{revoked_tasks[hop.txn]}")
        try:
            ancestors = [r for r in lineage(_entry(world), index) if isinstance(r, HopGranted)]
        except ChainGap as gap:  # pragma: no cover - the authority's own lineage never breaks
            raise AssertionError(gap.message) from None
        for step in ancestors:
            at = revoked_tokens.get(step.parent_token or "", index + 1)
            if at < index:
                late.append(f"hop.granted #{index} after its ancestor was revoked at #{at}")
    return late


@pytest.fixture
def pausing(policy: PolicyEngine) -> _PausingDelegations:
    return _PausingDelegations(policy, pause=0.3)


@pytest.fixture
def slow_world(store: LogStore, pausing: _PausingDelegations, clock: Clock) -> World:
    return World.populated(store, policy=pausing, clock=clock)  # type: ignore[arg-type]


def _hop_in_thread(world: World, root: IssuedToken, out: dict[str, Any]) -> threading.Thread:
    proof = world.token_proof(PLANNER)

    def run() -> None:
        try:
            out["hop"] = world.authority.exchange(
                subject_token=root.access_token, dpop_proof=proof, audience=CRM_AGENT
            )
        except AuthchainError as exc:  # pragma: no cover - shown by the assertion below
            out["hop"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("what", ["token", "task", "end"])
def test_a_revocation_racing_a_hop_is_never_recorded_before_the_hop_it_did_not_stop(
    slow_world: World, pausing: _PausingDelegations, what: str
) -> None:
    world = slow_world
    root = world.start()
    out: dict[str, Any] = {}
    thread = _hop_in_thread(world, root, out)
    assert pausing.deciding.wait(5), "the hop never reached its policy decision"
    # The hop has passed its revocation check and is deciding: revoke now.
    if what == "token":
        revoked_at = world.authority.revoke(token_hash=root.token_hash, reason="stolen")
    elif what == "task":
        revoked_at = world.authority.revoke(txn=root.txn, reason="stolen")
    else:
        revoked_at = world.authority.end_task(root.txn)
    thread.join(5)
    assert not thread.is_alive()
    assert _children_after_revocation(world) == []
    # The hop had been checked before the revocation was recorded, so it is recorded first.
    assert isinstance(out["hop"], IssuedToken)
    assert out["hop"].log_index < revoked_at
    # And after the revocation no child of the root is issued.
    with pytest.raises(RevokedError):
        world.hop(PLANNER, root, UPDATER, "crm:write")


def test_hops_racing_revocations_on_many_threads_keep_the_log_in_order(world: World) -> None:
    roots = [world.start() for _ in range(4)]
    stop = threading.Event()
    errors: list[AuthchainError] = []

    def hopper(root: IssuedToken) -> None:
        while not stop.is_set():
            try:
                world.hop(PLANNER, root, CRM_AGENT, "crm:read")
            except RevokedError:
                return
            except AuthchainError as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=hopper, args=(r,)) for r in roots for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    world.authority.revoke(token_hash=roots[0].token_hash)
    world.authority.revoke(txn=roots[1].txn)
    world.authority.end_task(roots[2].txn)
    world.authority.revoke(token_hash=roots[3].token_hash)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert _children_after_revocation(world) == []


# --------------------------------------------------------------------------------------------------
# (b) A new key ends what was bound to the old one.


def _rekey(world: World, actor: str) -> int:
    new = SigningKey.generate()
    old = world.actors[actor]
    index = world.authority.register_workload(
        actor, kind=old.kind, jwk=new.public.to_jwk(), scopes=old.scopes
    )
    return index


def test_an_action_under_a_token_bound_to_a_replaced_key_is_not_attributed(world: World) -> None:
    root, crm, tool, _ = world.clean_task()
    # The updater's key leaks; the operator re-registers the updater with a new one. The thief
    # still holds the old key and the token bound to it, and presents both to the CRM API.
    rekeyed_at = _rekey(world, UPDATER)
    index = world.act(UPDATER, tool)  # the proof is made with the old (stolen) key
    record = world.record(index)
    assert record.error == "revoked"
    assert f"re-registered at log index {rekeyed_at}" in record.reason
    assert record.unattributed is True or record.outcome == "refused"


def test_a_hop_checked_after_its_holders_key_was_replaced_is_refused_as_revoked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The holder's request is authenticated with its old key, and the re-registration lands
    # before the hop's revocation check: the token bound to the old key is then revoked.
    root = world.start()
    authenticator = world.authority._issuance._auth
    real = authenticator.authenticate
    rekeyed: list[int] = []

    def authenticate_then_rekey(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        rekeyed.append(_rekey(world, PLANNER))
        return result

    monkeypatch.setattr(authenticator, "authenticate", authenticate_then_rekey)
    with pytest.raises(RevokedError) as caught:
        world.hop(PLANNER, root, CRM_AGENT, "crm:read")
    assert caught.value.input is Input.SUBJECT_TOKEN
    assert f"re-registered at log index {rekeyed[0]}" in caught.value.message
    assert world.record(caught.value.log_index).error == "revoked"
    assert _children_after_revocation(world) == []


def test_re_registering_the_same_key_ends_nothing(world: World) -> None:
    root, crm, tool, _ = world.clean_task()
    actor = world.actors[UPDATER]
    world.authority.register_workload(
        UPDATER, kind=actor.kind, jwk=actor.key.public.to_jwk(), scopes=actor.scopes
    )
    record = world.record(world.act(UPDATER, tool))
    assert record.error is None and not record.unattributed
