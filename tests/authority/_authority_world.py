"""A small world for the authority tests: a real Authority on a real SQLite store, a local identity
provider, two users, the demo's workloads with their keys, a clock the tests move, and helpers that
make real DPoP proofs and real hops (no mocks: every token is signed and verified)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authchain.audit.events import AuditEvent
from authchain.audit.records import Record, read
from authchain.audit.store import LogStore
from authchain.authority import Authority, IssuedToken
from authchain.identity.keys import SigningKey
from authchain.policy import PolicyEngine
from authchain.tokens.dpop import create_proof
from authchain.tokens.id_token import LocalIdentityProvider

ISSUER = "https://authority.example.org"
TOKEN_URL = ISSUER + "/token"
TRUST_DOMAIN = "example.org"
API_URL = "https://crm.example.org/api/accounts/acme"
#: What the services that report actions serve (their registered endpoints).
CRM_URL = "https://crm.example.org"
UPDATER_URL = "https://updater.example.org"

ALICE = "alice@example.org"
BOB = "bob@example.org"
PLANNER = "spiffe://example.org/agent/planner"
RESEARCH = "spiffe://example.org/agent/research"
CRM_AGENT = "spiffe://example.org/agent/crm"
UPDATER = "spiffe://example.org/tool/crm-updater"
CRM_API = "spiffe://example.org/service/crm-api"
LEGACY = "spiffe://example.org/service/legacy-sync"
SCHEDULER = "spiffe://example.org/service/nightly-scheduler"

# A compact JWS/JWE as it would appear verbatim in canonical JSON: a base64url JSON header ("eyJ")
# followed by at least two dot-separated segments. Hashes and thumbprints have no dots, so a match is
# always a token.
RAW_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.")


class Clock:
    """The authority's clock, moved by tests (no test waits for real time)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Actor:
    id: str
    kind: str
    scopes: tuple[str, ...]
    key: SigningKey = field(default_factory=SigningKey.generate)


WORKLOADS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (PLANNER, "agent", ("research:read", "crm:read", "crm:write", "crm:delete")),
    (RESEARCH, "agent", ("research:read",)),
    (CRM_AGENT, "agent", ("crm:read", "crm:write", "crm:delete")),
    (UPDATER, "tool", ("crm:write",)),
    (CRM_API, "service", ("crm:write",)),
    (LEGACY, "service", ("crm:write",)),
)
# The CRM API and the legacy sync serve the same API (two services behind one URL), so single use
# of a presentation is domain-wide between them.
ENDPOINTS: dict[str, tuple[str, ...]] = {
    UPDATER: (UPDATER_URL,),
    CRM_API: (CRM_URL,),
    LEGACY: (CRM_URL,),
}


class World:
    """An authority with users and workloads registered, and helpers that act like its clients."""

    def __init__(
        self,
        store: LogStore,
        *,
        policy: PolicyEngine | None = None,
        clock: Clock | None = None,
        authority: Authority | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or Clock()
        self.authority = authority or Authority(
            store, issuer=ISSUER, trust_domain=TRUST_DOMAIN, policy=policy, clock=self.clock
        )
        self.idp = LocalIdentityProvider("https://idp.example.org")
        self.actors: dict[str, Actor] = {}
        # Everything a test signed: the no-raw-token test looks for each of them in the log.
        self.secrets: list[str] = []

    @classmethod
    def populated(
        cls, store: LogStore, *, policy: PolicyEngine | None = None, clock: Clock | None = None
    ) -> World:
        world = cls(store, policy=policy, clock=clock)
        a = world.authority
        a.trust_issuer(world.idp.issuer, world.idp.jwks)
        a.register_principal(
            ALICE, kind="user", scopes=["research:read", "crm:read", "crm:write", "crm:delete"]
        )
        a.register_principal(BOB, kind="user", scopes=["crm:read", "crm:write"])
        for spiffe_id, kind, scopes in WORKLOADS:
            world.add_workload(spiffe_id, kind, scopes)
        return world

    def add_workload(self, spiffe_id: str, kind: str, scopes: tuple[str, ...]) -> Actor:
        actor = Actor(spiffe_id, kind, scopes)
        register_serving(
            self.authority,
            spiffe_id,
            kind=kind,
            jwk=actor.key.public.to_jwk(),
            scopes=scopes,
            endpoints=ENDPOINTS.get(spiffe_id, ()),
        )
        self.actors[spiffe_id] = actor
        return actor

    @property
    def now(self) -> int:
        return int(self.clock())

    def key(self, actor: str) -> SigningKey:
        return self.actors[actor].key

    # ---------------------------------------------------------------------------------------------
    # What clients send.

    def token_proof(self, actor: str, **kwargs: Any) -> str:
        proof = create_proof(self.key(actor), htm="POST", htu=TOKEN_URL, now=self.now, **kwargs)
        self.secrets.append(proof)
        return proof

    def api_proof(self, actor: str, token: str, *, jti: str | None = None) -> str:
        proof = create_proof(
            self.key(actor), htm="PATCH", htu=API_URL, now=self.now, access_token=token, jti=jti
        )
        self.secrets.append(proof)
        return proof

    def id_token(self, subject: str = ALICE) -> str:
        token = self.idp.issue(subject, audience=ISSUER, now=self.now)
        self.secrets.append(token)
        return token

    def start(
        self,
        *,
        initiator: str = ALICE,
        actor: str = PLANNER,
        scope: str = "research:read crm:read crm:write",
        purpose: str = "update ACME's CRM record",
        **kwargs: Any,
    ) -> IssuedToken:
        issued = self.authority.start_task(
            subject_token=self.id_token(initiator),
            dpop_proof=self.token_proof(actor),
            scope=scope,
            request_details={"purpose": purpose},
            **kwargs,
        )
        self.secrets.append(issued.access_token)
        return issued

    def hop(
        self, holder: str, token: IssuedToken | str, to: str, scope: str, **kwargs: Any
    ) -> IssuedToken:
        raw = token if isinstance(token, str) else token.access_token
        issued = self.authority.exchange(
            subject_token=raw,
            dpop_proof=self.token_proof(holder),
            audience=to,
            scope=scope,
            **kwargs,
        )
        self.secrets.append(issued.access_token)
        return issued

    def act(
        self,
        presenter: str,
        token: IssuedToken | str | None,
        *,
        proof: str | None = None,
        executor: str = CRM_API,
        action: str = "crm.update_account",
        **kwargs: Any,
    ) -> int:
        """The CRM API reports an action it performed for ``presenter`` with ``token``."""
        raw = token if token is None or isinstance(token, str) else token.access_token
        if raw is not None and proof is None:
            proof = self.api_proof(presenter, raw)
        return self.authority.record_action(
            executor=executor,
            action=action,
            resource="crm://accounts/acme",
            token=raw,
            proof=proof,
            htm="PATCH",
            htu=API_URL,
            presenter=presenter,
            **kwargs,
        )

    def clean_task(self) -> tuple[IssuedToken, IssuedToken, IssuedToken, int]:
        """A task with two hops and an action, and nothing else: the run no finding may flag."""
        root = self.start()
        crm = self.hop(PLANNER, root, CRM_AGENT, "crm:read crm:write")
        tool = self.hop(CRM_AGENT, crm, UPDATER, "crm:write")
        action = self.act(UPDATER, tool)
        return root, crm, tool, action

    # ---------------------------------------------------------------------------------------------
    # Reading the log.

    def record(self, index: int) -> Any:
        """The typed record at ``index`` (typed ``Any`` so tests read each kind's members)."""
        record: Record = read(self.store.get(index), index)
        return record

    def events(self) -> Iterator[tuple[int, AuditEvent]]:
        return self.store.entries(0, self.store.size())

    def kinds(self) -> list[str]:
        return [event.kind for _, event in self.events()]


def register_serving(
    authority: Authority,
    spiffe_id: str,
    *,
    kind: str,
    jwk: dict[str, Any],
    scopes: Sequence[str],
    endpoints: Sequence[str] = (),
) -> int:
    """Register a workload with the URL prefixes it serves (the services that report actions)."""
    return authority.register_workload(
        spiffe_id, kind=kind, jwk=jwk, scopes=scopes, endpoints=endpoints
    )


def sqlite_file(store: LogStore) -> Path:
    path = getattr(store, "path", None)
    assert path is not None, "these tests tamper with a SQLite store's file"
    return Path(path)
