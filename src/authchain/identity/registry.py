"""The registry the authority and its policies read: workloads with their keys, principals with their
granted scopes, and trusted identity providers.

Pure data with a JSON form; the authority persists it and records every change in the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from authchain.errors import InvalidKeyError, InvalidPrincipalError, NotFoundError
from authchain.identity.keys import JWKS, PublicKey
from authchain.identity.principal import Principal, PrincipalKind
from authchain.identity.spiffe import SpiffeId

__all__ = ["WorkloadRecord", "PrincipalRecord", "Registry"]

_MAX_SCOPES = 64
_MAX_SCOPE_LEN = 128


def _scopes(values: Iterable[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        if (
            not isinstance(value, str)
            or not value
            or len(value) > _MAX_SCOPE_LEN
            # RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            or any(c in ' "\\' or not ("\x21" <= c <= "\x7e") for c in value)
        ):
            raise InvalidPrincipalError(f"invalid scope {value!r}")
        out.append(value)
    if len(out) > _MAX_SCOPES:
        raise InvalidPrincipalError(f"{len(out)} scopes, limit {_MAX_SCOPES}")
    return tuple(sorted(set(out)))


@dataclass(frozen=True, slots=True)
class WorkloadRecord:
    """A registered workload: its SPIFFE ID, kind, current key and the scopes it may ever hold."""

    id: str
    kind: PrincipalKind
    key: PublicKey
    scopes: tuple[str, ...]
    trust_domain: str

    @classmethod
    def create(
        cls, spiffe_id: str, kind: str, jwk: Mapping[str, Any], scopes: Iterable[str]
    ) -> WorkloadRecord:
        sid = SpiffeId.parse(spiffe_id)
        pkind = PrincipalKind.parse(kind)
        if not pkind.is_workload:
            raise InvalidPrincipalError("a workload's kind must be agent, tool or service")
        key = PublicKey.from_jwk({k: v for k, v in jwk.items() if k not in ("kid", "use", "alg")})
        return cls(str(sid), pkind, key, _scopes(scopes), sid.trust_domain.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": str(self.kind),
            "jwk": self.key.to_jwk(),
            "scopes": list(self.scopes),
        }


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    """A registered initiating principal (a user or a triggering system) and its granted scopes."""

    id: str
    kind: PrincipalKind
    scopes: tuple[str, ...]

    @classmethod
    def create(cls, sub: str, kind: str, scopes: Iterable[str]) -> PrincipalRecord:
        # Principal validates the id: a user's ``sub`` is bounded printable ASCII, any other kind
        # (a scheduler that starts autonomous tasks, say) must be a SPIFFE ID.
        principal = Principal(sub, PrincipalKind.parse(kind))
        return cls(principal.id, principal.kind, _scopes(scopes))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": str(self.kind), "scopes": list(self.scopes)}


class Registry:
    """Workloads by SPIFFE ID and by key thumbprint, principals by id, issuers by URL."""

    __slots__ = ("_workloads", "_by_jkt", "_principals", "_issuers", "_logged")

    def __init__(self) -> None:
        self._workloads: dict[str, WorkloadRecord] = {}
        self._by_jkt: dict[str, WorkloadRecord] = {}
        self._principals: dict[str, PrincipalRecord] = {}
        self._issuers: dict[str, JWKS] = {}
        # ("workload" | "principal" | "issuer", id) -> log index of the event that recorded the
        # current entry, so the registry can be checked against the log when it is loaded.
        self._logged: dict[tuple[str, str], int] = {}

    def note_logged(self, what: str, ident: str, index: int) -> None:
        self._logged[(what, ident)] = index

    def logged(self, what: str, ident: str) -> int | None:
        return self._logged.get((what, ident))

    # Workloads ------------------------------------------------------------------------------------

    def check_workload(self, record: WorkloadRecord) -> WorkloadRecord | None:
        """Would ``put_workload`` accept this? Returns the record it would replace; changes nothing."""
        holder = self._by_jkt.get(record.key.kid)
        if holder is not None and holder.id != record.id:
            raise InvalidKeyError(f"key {record.key.kid} is already registered to {holder.id}")
        return self._workloads.get(record.id)

    def put_workload(self, record: WorkloadRecord) -> WorkloadRecord | None:
        """Add or replace; returns the previous record (a re-registration, maybe with a new key)."""
        previous = self.check_workload(record)
        if previous is not None:
            self._by_jkt.pop(previous.key.kid, None)
        self._workloads[record.id] = record
        self._by_jkt[record.key.kid] = record
        return previous

    def workload(self, spiffe_id: str) -> WorkloadRecord:
        record = self._workloads.get(spiffe_id)
        if record is None:
            raise NotFoundError(f"workload {spiffe_id!r} is not registered")
        return record

    def find_workload(self, spiffe_id: str) -> WorkloadRecord | None:
        return self._workloads.get(spiffe_id)

    def workload_by_jkt(self, jkt: str) -> WorkloadRecord | None:
        return self._by_jkt.get(jkt)

    def workloads(self) -> list[WorkloadRecord]:
        return list(self._workloads.values())

    # Principals -----------------------------------------------------------------------------------

    def put_principal(self, record: PrincipalRecord) -> PrincipalRecord | None:
        previous = self._principals.get(record.id)
        self._principals[record.id] = record
        return previous

    def find_principal(self, sub: str) -> PrincipalRecord | None:
        return self._principals.get(sub)

    def principals(self) -> list[PrincipalRecord]:
        return list(self._principals.values())

    # Issuers --------------------------------------------------------------------------------------

    def put_issuer(self, issuer: str, jwks: JWKS) -> None:
        self._issuers[issuer] = jwks

    @property
    def issuers(self) -> Mapping[str, JWKS]:
        return self._issuers

    # Persistence ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "workloads": [w.to_dict() for w in self._workloads.values()],
            "principals": [p.to_dict() for p in self._principals.values()],
            "issuers": {iss: jwks.to_dict() for iss, jwks in self._issuers.items()},
            "logged": [[what, ident, index] for (what, ident), index in self._logged.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Registry:
        reg = cls()
        for w in data.get("workloads", []):
            reg.put_workload(WorkloadRecord.create(w["id"], w["kind"], w["jwk"], w["scopes"]))
        for p in data.get("principals", []):
            reg.put_principal(PrincipalRecord.create(p["id"], p["kind"], p["scopes"]))
        for iss, jwks in data.get("issuers", {}).items():
            reg.put_issuer(iss, JWKS.from_dict(jwks))
        for what, ident, index in data.get("logged", []):
            reg.note_logged(str(what), str(ident), int(index))
        return reg
