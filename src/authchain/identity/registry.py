"""The registry the authority and its policies read: workloads with their keys, principals with their
granted scopes, and trusted identity providers.

Pure data with a JSON form; the authority persists it and records every change in the audit log.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from authchain.errors import DPoPURLError, InvalidKeyError, InvalidPrincipalError, NotFoundError
from authchain.identity.keys import JWKS, PublicKey
from authchain.identity.principal import Principal, PrincipalKind
from authchain.identity.spiffe import SpiffeId
from authchain.tokens.htu import MAX_HTU_LENGTH, normalize_htu

__all__ = ["WorkloadRecord", "PrincipalRecord", "Registry"]

_MAX_SCOPES = 64
_MAX_SCOPE_LEN = 128
#: A workload serves a handful of URL prefixes (an API, perhaps a second host or a versioned path).
MAX_ENDPOINTS: Final = 16
MAX_ENDPOINT_LENGTH: Final = MAX_HTU_LENGTH


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


def _is_loopback(host: str) -> bool:
    # RFC 6761 section 6.3: "localhost" names the loopback interface; RFC 1122 3.2.1.3 and RFC 4291
    # 2.5.3 reserve 127.0.0.0/8 and ::1 for it. Plain http never leaves the machine to reach them.
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _endpoints(values: Iterable[str]) -> tuple[str, ...]:
    """The URL prefixes a workload serves, in the comparison form of a DPoP ``htu``.

    Each is an absolute ``https`` URL (``http`` only for a loopback host), without query or
    fragment, normalised as RFC 9449 section 4.3 (9) asks (:func:`normalize_htu`), so that a
    proof's ``htu`` and an endpoint compare as the same spelling.
    """
    out = []
    for value in values:
        if not isinstance(value, str) or len(value) > MAX_ENDPOINT_LENGTH:
            raise InvalidPrincipalError(
                f"an endpoint must be a URL of at most {MAX_ENDPOINT_LENGTH} characters"
            )
        if "?" in value or "#" in value:
            raise InvalidPrincipalError("an endpoint is a URL prefix without query or fragment")
        try:
            url = normalize_htu(value)
        except DPoPURLError as exc:
            raise InvalidPrincipalError(f"endpoint: {exc.message}") from exc
        scheme, _, rest = url.partition("://")
        host = rest.split("/", 1)[0]
        host = host if host.startswith("[") else host.rsplit(":", 1)[0]
        if scheme != "https" and not _is_loopback(host):
            raise InvalidPrincipalError(
                "an endpoint must be an https URL (plain http only for a loopback host)"
            )
        out.append(url)
    if len(out) > MAX_ENDPOINTS:
        raise InvalidPrincipalError(f"{len(out)} endpoints, limit {MAX_ENDPOINTS}")
    return tuple(sorted(set(out)))


@dataclass(frozen=True, slots=True)
class WorkloadRecord:
    """A registered workload: its SPIFFE ID, kind, current key, the scopes it may ever hold and the
    URL prefixes it serves (``endpoints``, in normalised form)."""

    id: str
    kind: PrincipalKind
    key: PublicKey
    scopes: tuple[str, ...]
    trust_domain: str
    endpoints: tuple[str, ...] = ()

    @classmethod
    def create(
        cls,
        spiffe_id: str,
        kind: str,
        jwk: Mapping[str, Any],
        scopes: Iterable[str],
        endpoints: Iterable[str] = (),
    ) -> WorkloadRecord:
        sid = SpiffeId.parse(spiffe_id)
        pkind = PrincipalKind.parse(kind)
        if not pkind.is_workload:
            raise InvalidPrincipalError("a workload's kind must be agent, tool or service")
        key = PublicKey.from_jwk({k: v for k, v in jwk.items() if k not in ("kid", "use", "alg")})
        return cls(
            str(sid), pkind, key, _scopes(scopes), sid.trust_domain.name, _endpoints(endpoints)
        )

    def serves(self, htu: str) -> bool:
        """Whether a request to ``htu`` (a DPoP proof's ``htu``, say) falls under one of this
        workload's endpoints: after normalisation, the URL is an endpoint or continues it at a
        path-segment boundary (``https://api.example.org/crm`` serves ``.../crm`` and
        ``.../crm/accounts``, never ``.../crmx``). A URL that does not normalise is served by none.
        """
        try:
            url = normalize_htu(htu)
        except DPoPURLError:
            return False
        for endpoint in self.endpoints:
            # A normalised URL always has a path, so the scheme and authority end at its first
            # "/": the boundary can never fall inside the host or the port.
            base = endpoint.rstrip("/")
            if url == base or url.startswith(base + "/"):
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": str(self.kind),
            "jwk": self.key.to_jwk(),
            "scopes": list(self.scopes),
        }
        if self.endpoints:
            data["endpoints"] = list(self.endpoints)
        return data


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
            reg.put_workload(
                WorkloadRecord.create(
                    w["id"], w["kind"], w["jwk"], w["scopes"], w.get("endpoints", ())
                )
            )
        for p in data.get("principals", []):
            reg.put_principal(PrincipalRecord.create(p["id"], p["kind"], p["scopes"]))
        for iss, jwks in data.get("issuers", {}).items():
            reg.put_issuer(iss, JWKS.from_dict(jwks))
        for what, ident, index in data.get("logged", []):
            reg.note_logged(str(what), str(ident), int(index))
        return reg
