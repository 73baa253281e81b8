"""Principals: anything that can hold authority (docs/architecture.md).

There are four kinds. A ``user`` is a human (or a triggering system) known only through the ``sub``
of an ID token from a trusted issuer; ``agent``, ``tool`` and ``service`` are workloads, each named
by a SPIFFE ID bound to a key it holds.

Registrations state a workload's kind explicitly. When they do not, the kind is derived from the
first path segment of its SPIFFE ID by the convention ``spiffe://<td>/<kind>/...``, for example
``spiffe://example.org/agent/planner`` is an agent. An ID that does not follow the convention has
no derivable kind and must be registered with one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from authchain.errors import InvalidPrincipalError, InvalidSpiffeIdError
from authchain.identity.spiffe import SpiffeId, TrustDomain

__all__ = [
    "MAX_USER_ID_LENGTH",
    "PrincipalKind",
    "WORKLOAD_KINDS",
    "Principal",
    "derive_workload_kind",
]

# OpenID Connect Core 1.0 section 2 (ID Token, "sub"): "It MUST NOT exceed 255 ASCII characters in
# length. The sub value is a case-sensitive string."
MAX_USER_ID_LENGTH = 255

# Printable ASCII, space included: what OIDC allows in "sub" minus control characters, which could
# forge lines in logs and reports. Non-ASCII is refused too (OIDC says ASCII), which also keeps
# look-alike characters and bidirectional overrides out of the evidence.
_USER_ID_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")


class PrincipalKind(StrEnum):
    """The kind of a principal; the value is what appears on the wire and in the log."""

    USER = "user"
    AGENT = "agent"
    TOOL = "tool"
    SERVICE = "service"

    @property
    def is_workload(self) -> bool:
        """Agents, tools and services are workloads, identified by SPIFFE IDs."""
        return self is not PrincipalKind.USER

    @classmethod
    def parse(cls, value: str) -> PrincipalKind:
        """The kind named by ``value`` (exact, lowercase).

        Raises:
            InvalidPrincipalError: if ``value`` is not one of the four kinds.
        """
        if isinstance(value, str):
            for kind in cls:
                if kind.value == value:
                    return kind
        allowed = ", ".join(kind.value for kind in cls)
        shown = _shown(value) if isinstance(value, str) else type(value).__name__
        raise InvalidPrincipalError(f"unknown principal kind {shown}; expected one of {allowed}")


WORKLOAD_KINDS = frozenset({PrincipalKind.AGENT, PrincipalKind.TOOL, PrincipalKind.SERVICE})


def derive_workload_kind(spiffe_id: SpiffeId) -> PrincipalKind | None:
    """The kind named by the first path segment (``/agent/...``, ``/tool/...``, ``/service/...``).

    Returns None when the ID does not follow the convention, including ``/user/...``: a user is
    never a SPIFFE ID, so the convention cannot make one.
    """
    if not spiffe_id.path:
        return None
    first = spiffe_id.path[1:].split("/", 1)[0]
    for kind in WORKLOAD_KINDS:
        if kind.value == first:
            return kind
    return None


@dataclass(frozen=True, slots=True)
class Principal:
    """Anything that can hold authority.

    ``id`` is the user's ``sub`` or the workload's SPIFFE ID. ``trust_domain`` is, for a workload,
    the trust domain of its SPIFFE ID (filled in when omitted, refused when different); for a user,
    optionally, the trust domain whose authority accepted the user's ID token.

    Raises:
        InvalidPrincipalError: on construction, if any field is invalid; the message names the
            problem (for a workload whose id is not a SPIFFE ID, the SPIFFE problem is included and
            the InvalidSpiffeIdError is chained as ``__cause__``).
    """

    id: str
    kind: PrincipalKind
    trust_domain: str | None = None

    def __post_init__(self) -> None:
        kind = self.kind
        if not isinstance(kind, PrincipalKind):
            kind = PrincipalKind.parse(kind)
            object.__setattr__(self, "kind", kind)
        if not isinstance(self.id, str):
            raise InvalidPrincipalError(f"{kind} id must be a string, not {type(self.id).__name__}")
        if self.trust_domain is not None:
            try:
                TrustDomain(self.trust_domain)
            except InvalidSpiffeIdError as exc:
                raise InvalidPrincipalError(exc.message) from exc

        if kind is PrincipalKind.USER:
            problem = _user_id_problem(self.id)
            if problem is not None:
                raise InvalidPrincipalError(problem)
            return

        try:
            spiffe_id = SpiffeId.parse(self.id)
        except InvalidSpiffeIdError as exc:
            raise InvalidPrincipalError(f"{kind} id: {exc.message}") from exc
        own = spiffe_id.trust_domain.name
        if self.trust_domain is None:
            object.__setattr__(self, "trust_domain", own)
        elif self.trust_domain != own:
            raise InvalidPrincipalError(
                f'{kind} trust domain "{self.trust_domain}" is not the trust domain "{own}" '
                "of its SPIFFE ID"
            )

    @classmethod
    def user(cls, sub: str, trust_domain: TrustDomain | str | None = None) -> Principal:
        """A user known by the ``sub`` of an ID token."""
        td = trust_domain.name if isinstance(trust_domain, TrustDomain) else trust_domain
        return cls(sub, PrincipalKind.USER, td)

    @classmethod
    def workload(
        cls, spiffe_id: SpiffeId | str, kind: PrincipalKind | str | None = None
    ) -> Principal:
        """A workload; without ``kind``, the kind is derived from the path convention.

        Raises:
            InvalidPrincipalError: if the id is not a SPIFFE ID, ``kind`` is ``user`` or unknown,
                or no kind is given and none can be derived.
        """
        if not isinstance(spiffe_id, SpiffeId):
            try:
                spiffe_id = SpiffeId.parse(spiffe_id)
            except InvalidSpiffeIdError as exc:
                raise InvalidPrincipalError(f"workload id: {exc.message}") from exc
        if kind is None:
            derived = derive_workload_kind(spiffe_id)
            if derived is None:
                raise InvalidPrincipalError(
                    f"cannot derive the kind of {spiffe_id}: its path does not start with "
                    '"/agent/", "/tool/" or "/service/"; state the kind explicitly'
                )
            kind = derived
        kind = kind if isinstance(kind, PrincipalKind) else PrincipalKind.parse(kind)
        if not kind.is_workload:
            raise InvalidPrincipalError("a workload cannot be of kind user")
        return cls(str(spiffe_id), kind, spiffe_id.trust_domain.name)

    @property
    def is_workload(self) -> bool:
        return self.kind.is_workload

    @property
    def spiffe_id(self) -> SpiffeId | None:
        """The workload's SPIFFE ID, or None for a user."""
        return SpiffeId.parse(self.id) if self.kind.is_workload else None

    def __str__(self) -> str:
        return self.id


def _shown(value: str) -> str:
    """A short, quoted, one-line rendering of untrusted text for an error message."""
    cut = value[:64]
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\u{ord(c):04x}" for c in cut)
    return f'"{safe}"' + ("..." if len(value) > len(cut) else "")


def _user_id_problem(sub: str) -> str | None:
    if _USER_ID_RE.fullmatch(sub):
        # A user's id that looks like a SPIFFE ID would be confusable with a workload's in the
        # evidence; no ID token issuer has a reason to issue one.
        if sub[:7].lower() == "spiffe:":
            return "user id must not be a SPIFFE ID; workloads are agents, tools or services"
        return None
    if not sub:
        return "user id is empty"
    if len(sub) > MAX_USER_ID_LENGTH:
        return f"user id is longer than {MAX_USER_ID_LENGTH} characters"
    for index, char in enumerate(sub):
        if not " " <= char <= "~":
            return (
                f"user id contains U+{ord(char):04X} at index {index}; "
                "only printable ASCII is allowed"
            )
    return "user id must not start or end with a space"
