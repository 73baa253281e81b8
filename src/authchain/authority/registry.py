"""Registration: workloads and their keys, principals and their scopes, trusted ID-token issuers.

Each change is checked, then recorded in the log, then applied and saved beside the log: a refused or
unrecorded registration changes nothing. The saved registry is checked against those records when
an authority opens a store (:mod:`authchain.authority.state`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final

from authchain.audit.records import IssuerTrusted, PrincipalRegistered, WorkloadRegistered
from authchain.authority.recorder import Recorder
from authchain.authority.state import SideState
from authchain.errors import InvalidKeyError, InvalidPrincipalError
from authchain.identity.keys import JWKS
from authchain.identity.registry import PrincipalRecord, Registry, WorkloadRecord

__all__ = ["Registration"]

_META_REGISTRY: Final = "authority.registry"


class Registration:
    """The registry the authority reads, and the only way it changes.

    ``revoking`` is :meth:`Revocations.revoking`: a workload's new key ends the tokens bound to its
    old one, so a re-registration is serialised with issuance as a revocation is.
    """

    def __init__(
        self,
        recorder: Recorder,
        state: SideState,
        lock: threading.RLock,
        *,
        trust_domain: str,
        revoking: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._recorder = recorder
        self._state = state
        self._lock = lock
        self._trust_domain = trust_domain
        self._revoking = revoking
        self.registry = self._load()

    def register_workload(
        self,
        spiffe_id: str,
        *,
        kind: str,
        jwk: Mapping[str, Any],
        scopes: Iterable[str] = (),
        endpoints: Iterable[str] = (),
    ) -> int:
        """Register (or re-register) a workload's key, the scopes it may hold and the URL prefixes
        it serves. A new key is recorded with the old one's thumbprint, so an investigator sees
        exactly when an identity changed keys; from then on, tokens bound to the old key are refused
        as revoked."""
        record = WorkloadRecord.create(spiffe_id, kind, jwk, scopes, endpoints)
        if record.trust_domain != self._trust_domain:
            # Only this authority's own workloads are registered here; a workload of another trust
            # domain is known through that domain's authority (federation), never by a local entry
            # that would let this authority issue tokens in its name.
            raise InvalidPrincipalError(
                f"{record.id} is in the trust domain {record.trust_domain!r}, not this "
                f"authority's {self._trust_domain!r}; only local workloads can be registered"
            )
        with self._revoking(), self._lock:
            previous = self.registry.check_workload(record)
            index = self._recorder.record(
                WorkloadRegistered(
                    actor=record.id,
                    workload_kind=str(record.kind),
                    jkt=record.key.kid,
                    jwk=record.key.to_jwk(with_kid=False),
                    scopes=record.scopes,
                    previous_jkt=(
                        previous.key.kid
                        if previous is not None and previous.key.kid != record.key.kid
                        else None
                    ),
                    endpoints=record.endpoints or None,
                )
            )
            self.registry.put_workload(record)
            self.registry.note_logged("workload", record.id, index)
            self._save()
            return index

    def register_principal(
        self, sub: str, *, kind: str = "user", scopes: Iterable[str] = ()
    ) -> int:
        """Register a principal (a user, usually) with the scopes it may ever grant."""
        record = PrincipalRecord.create(sub, kind, scopes)
        with self._lock:
            index = self._recorder.record(
                PrincipalRegistered(
                    initiator=record.id, principal_kind=str(record.kind), scopes=record.scopes
                )
            )
            self.registry.put_principal(record)
            self.registry.note_logged("principal", record.id, index)
            self._save()
            return index

    def trust_issuer(self, issuer: str, jwks: JWKS | Mapping[str, Any]) -> int:
        """Trust an OpenID issuer's ID tokens (signed by ``jwks``) to start tasks."""
        keys = jwks if isinstance(jwks, JWKS) else JWKS.from_dict(jwks)
        if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
            raise InvalidPrincipalError("issuer must be an http(s) URL")
        if len(keys) == 0:
            # A trusted issuer without a key would verify nothing, and its entry would only say
            # that some issuer is trusted with keys nobody can see.
            raise InvalidKeyError(f"the JWK Set of issuer {issuer!r} has no key")
        with self._lock:
            index = self._recorder.record(
                IssuerTrusted(
                    resource=issuer, issuer=issuer, kids=tuple(sorted(k.kid for k in keys))
                )
            )
            self.registry.put_issuer(issuer, keys)
            self.registry.note_logged("issuer", issuer, index)
            self._save()
            return index

    # ----------------------------------------------------------------------------------------------

    def _save(self) -> None:
        self._state.save(_META_REGISTRY, self.registry.to_dict())

    def _load(self) -> Registry:
        data = self._state.load(_META_REGISTRY)
        if data is None:
            return Registry()
        registry = Registry.from_dict(data)
        logged = self._state.logged
        for w in registry.workloads():
            logged(
                registry.logged("workload", w.id),
                WorkloadRegistered,
                lambda r, w=w: (
                    (r.actor, r.jkt, r.workload_kind, r.scopes, r.endpoints or ())  # type: ignore[misc]
                    == (w.id, w.key.kid, str(w.kind), w.scopes, w.endpoints)
                ),
                f"the registry's workload {w.id!r}",
            )
        for p in registry.principals():
            logged(
                registry.logged("principal", p.id),
                PrincipalRegistered,
                lambda r, p=p: (
                    (r.initiator, r.principal_kind, r.scopes)  # type: ignore[misc]
                    == (p.id, str(p.kind), p.scopes)
                ),
                f"the registry's principal {p.id!r}",
            )
        for issuer, jwks in registry.issuers.items():
            logged(
                registry.logged("issuer", issuer),
                IssuerTrusted,
                lambda r, i=issuer, k=jwks: (
                    (r.issuer, r.kids)  # type: ignore[misc]
                    == (i, tuple(sorted(key.kid for key in k)))
                ),
                f"the registry's issuer {issuer!r}",
            )
        return registry
