"""Task tokens: the OAuth Transaction Tokens claim set plus RFC 8693 delegation, bound to a key.

A task token (``typ: txntoken+jwt``) carries one task from its initiator through every actor that
holds it (DESIGN.md, "Tokens"). This module has the claims as a value object, minting, and the
strict verifier that every tool runs on every request it receives.

The verifier is written for that hot path. It parses once and decides early: the header of every
token an issuer key signs is byte-identical, so its checked result is kept in a small cache keyed by
its exact text; the issuer's keys are a flat ``(iss, kid)`` lookup prepared when the trust list is
built; the claims are read with plain dict access after the signature, never through a generic
validation framework. Only ``iss`` is read before the signature is checked (it picks the key set),
so an attacker without an issuer key never reaches the claim parser.

References: draft-ietf-oauth-transaction-tokens-10 ("Txn-Tokens") sections 9.1 and 9.2; RFC 7515
(JWS); RFC 7519 (JWT) sections 4.1 and 7.2; RFC 8725 (JWT BCP) sections 3.1, 3.8, 3.10 and 3.11;
RFC 8693 section 4.1 (``act``); RFC 9449 section 6.1 (``cnf.jkt``); RFC 6749 section 3.3 (scope).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from authchain._encoding import b64url_decode, json_loads_strict, sha256_b64url
from authchain.errors import (
    AlgorithmError,
    AudienceError,
    ClaimError,
    ConfigurationError,
    ExpiredError,
    IssuedInFutureError,
    MalformedError,
    NotYetValidError,
    SignatureError,
    SizeLimitError,
    TokenTypeError,
    UntrustedIssuerError,
)
from authchain.identity.keys import (
    ALLOWED_ALGORITHMS,
    JWKS,
    P256_HALF_ORDER,
    PublicKey,
    SigningKey,
)
from authchain.identity.spiffe import SpiffeId
from authchain.tokens.jws import MAX_HEADER_BYTES, MAX_TOKEN_BYTES, sign_compact

__all__ = [
    "TXN_TOKEN_TYP",
    "TXN_TOKEN_TYPE_URN",
    "MAX_CHAIN_DEPTH",
    "MAX_SKEW",
    "TaskTokenClaims",
    "VerifiedTaskToken",
    "TrustList",
    "FrozenDict",
    "FrozenList",
    "freeze_json",
    "mint_task_token",
    "verify_task_token",
    "act_from_chain",
    "chain_from_act",
    "parse_scope",
]

# Txn-Tokens section 9.1: "The typ Header Parameter MUST be present and MUST have the value
# txntoken+jwt". RFC 8725 section 3.11: explicit typing keeps a DPoP proof, an ID token or any
# other JWT signed by a trusted key from being accepted as a task token.
TXN_TOKEN_TYP: Final = "txntoken+jwt"
# Txn-Tokens section 13 (IANA, OAuth URI registry) and RFC 8693 section 3: the token type URN that
# names a task token in a token exchange.
TXN_TOKEN_TYPE_URN: Final = "urn:ietf:params:oauth:token-type:txn_token"

# Size limits on untrusted fields (RFC 8725 section 3.11's spirit; CONVENTIONS.md). Each is well
# above what Authchain issues and well below what would make parsing or logging expensive.
MAX_CHAIN_DEPTH: Final = 16  # actors in one ``act`` chain; the hop rule's default limit is 8
MAX_ID_CHARS: Final = 128  # jti, txn, authz.id, kid
MAX_URI_CHARS: Final = 2048  # iss, aud, sub, actors (SPIFFE-ID section 2.3: 2048 bytes)
MAX_SCOPE_CHARS: Final = 2048  # the whole space-separated scope string
MAX_SCOPE_TOKENS: Final = 64
MAX_SCOPE_TOKEN_CHARS: Final = 128
MAX_CONTEXT_STRING_CHARS: Final = 1024  # any string inside tctx/rctx, keys included
MAX_CONTEXT_MEMBERS: Final = 64  # members and array items, counted over the whole tctx or rctx
MAX_CONTEXT_DEPTH: Final = 4  # nesting of objects and arrays inside tctx/rctx
MAX_POLICIES: Final = 64  # authz.policies
MAX_CLAIMS: Final = 32  # top-level members of the payload
MAX_SKEW: Final = 300  # the verifier refuses a larger clock-skew allowance as a misconfiguration
_SAFE_INTEGER: Final = (1 << 53) - 1  # RFC 8785 section 3.2.2.3 / I-JSON: exact in every parser
_HASH_CHARS: Final = 43  # base64url of a SHA-256 digest: jkt (RFC 7638), prev, policy_set_hash

# RFC 6749 section 3.3: scope = scope-token *( SP scope-token ),
# scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN = r"[\x21\x23-\x5b\x5d-\x7e]+"
_SCOPE_RE: Final = re.compile(rf"{_SCOPE_TOKEN}(?: {_SCOPE_TOKEN})*")
_SCOPE_TOKEN_RE: Final = re.compile(_SCOPE_TOKEN)
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]+")

# Every claim this profile understands. Others are ignored (Txn-Tokens section 9.2: "Recipients of
# a Txn-Token MUST ignore any claims they do not understand"), but the payload's member count is
# bounded by MAX_CLAIMS.
_CNF_MEMBERS: Final = frozenset({"jkt"})
_AUTHZ_MEMBERS: Final = frozenset({"id", "policies", "policy_set_hash"})
_ACT_MEMBERS: Final = frozenset({"sub", "act"})


# --------------------------------------------------------------------------------------------------
# Immutable JSON containers.


class FrozenDict(dict[str, Any]):
    """A JSON object that refuses mutation.

    The nested claims of a verified token (``act``, ``tctx``, ``rctx``, ``authz``) are made of
    these, so that a :class:`TaskTokenClaims` is a value all the way down: it can be shared between
    requests that present the same token and copied into child tokens without one caller's change
    leaking into another's. It is still a ``dict`` for reading and for every JSON encoder;
    ``copy()``, ``copy.deepcopy`` and pickling give back plain, mutable ``dict`` objects.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("task token claims are immutable; use .copy() for a mutable copy")

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return (dict, (dict(self),))


class FrozenList(list[Any]):
    """A JSON array that refuses mutation (see :class:`FrozenDict`)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("task token claims are immutable; use list(...) for a mutable copy")

    __setitem__ = _refuse
    __delitem__ = _refuse
    __iadd__ = _refuse
    __imul__ = _refuse
    append = _refuse
    clear = _refuse
    extend = _refuse
    insert = _refuse
    pop = _refuse
    remove = _refuse
    reverse = _refuse
    sort = _refuse

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return (list, (list(self),))


def freeze_json(value: Any) -> Any:
    """``value`` with every object and array replaced by its immutable form."""
    if type(value) is dict or type(value) is FrozenDict:
        return FrozenDict({k: freeze_json(v) for k, v in value.items()})
    if type(value) is list or type(value) is FrozenList or type(value) is tuple:
        return FrozenList(freeze_json(v) for v in value)
    return value


# --------------------------------------------------------------------------------------------------
# Claims.


@dataclass(frozen=True, slots=True)
class TaskTokenClaims:
    """The claims of a task token (DESIGN.md, "Tokens").

    ``act`` is the RFC 8693 section 4.1 nested actor chain: ``{"sub": current, "act": {...}}``, the
    outermost member the current actor and the most deeply nested the first. ``cnf_jkt`` is the
    RFC 7638 thumbprint of the key the current actor must prove possession of (RFC 9449 6.1).
    ``authz`` (the decision that allowed the token), ``prev`` (the hash of the parent token) and
    ``log`` (the index of the audit event that recorded its issuance) are absent on a token whose
    issuer has not filled them.

    Construction does not validate; :meth:`from_payload` does, and :func:`mint_task_token` runs
    the claims through it before signing, so nothing invalid is ever signed.
    """

    iss: str
    aud: str
    iat: int
    exp: int
    jti: str
    txn: str
    sub: str
    act: dict[str, Any]
    scope: tuple[str, ...]
    tctx: dict[str, Any]
    rctx: dict[str, Any]
    cnf_jkt: str
    authz: dict[str, Any] | None = None
    prev: str | None = None
    log: int | None = None
    nbf: int | None = None

    @property
    def actor(self) -> str:
        """The current actor: the outermost ``act.sub``."""
        sub = self.act["sub"]
        assert isinstance(sub, str)
        return sub

    @property
    def chain(self) -> tuple[str, ...]:
        """The actors from the first (most deeply nested) to the current (outermost)."""
        return chain_from_act(self.act)

    @property
    def depth(self) -> int:
        """The number of actors in the chain; 1 on the first token of a task."""
        return len(self.chain)

    @property
    def scope_str(self) -> str:
        """The scope as it appears on the wire (RFC 6749 section 3.3: space-separated)."""
        return " ".join(self.scope)

    def to_payload(self) -> dict[str, Any]:
        """The JWT claims set. Absent optional claims are omitted, never ``null``."""
        payload: dict[str, Any] = {"iss": self.iss, "aud": self.aud, "iat": self.iat}
        if self.nbf is not None:
            payload["nbf"] = self.nbf
        payload.update(
            exp=self.exp,
            jti=self.jti,
            txn=self.txn,
            sub=self.sub,
            act=self.act,
            scope=self.scope_str,
            tctx=self.tctx,
            rctx=self.rctx,
            cnf={"jkt": self.cnf_jkt},
        )
        if self.authz is not None:
            payload["authz"] = self.authz
        if self.prev is not None:
            payload["prev"] = self.prev
        if self.log is not None:
            payload["log"] = self.log
        return payload

    @classmethod
    def from_payload(cls, unverified: Mapping[str, Any]) -> TaskTokenClaims:
        """Read a claims set strictly: types, forms and size limits on every field.

        Raises:
            ClaimError: a claim is missing or has the wrong type or form.
            SizeLimitError: a field, the chain or a context object is over its limit.
        """
        if not isinstance(unverified, Mapping):
            raise ClaimError("claims set must be a JSON object")
        p = unverified
        if len(p) > MAX_CLAIMS:
            raise SizeLimitError(f"claims set has {len(p)} members, limit {MAX_CLAIMS}")
        # RFC 7519 4.1.1 / Txn-Tokens 9.2: the issuer (required by this profile: it picks the keys).
        iss = _uri(p, "iss")
        # RFC 7519 4.1.3 / Txn-Tokens 9.2: one audience, the trust domain, as a string.
        aud = _uri(p, "aud")
        # RFC 7519 4.1.4-4.1.6: NumericDate, here whole seconds only.
        iat = _time(p, "iat")
        exp = _time(p, "exp")
        nbf = _time(p, "nbf") if "nbf" in p else None
        # RFC 7519 4.1.7 and Txn-Tokens 9.2 (``txn``, RFC 8417 2.2): unique ids.
        jti = _ident(p, "jti")
        txn = _ident(p, "txn")
        # RFC 7519 4.1.2 / Txn-Tokens 9.2: the initiating principal.
        sub = _uri(p, "sub")
        # RFC 8693 4.1: the actor chain.
        act = _parse_act(p.get("act"))
        # RFC 8693 4.2 / Txn-Tokens 9.2: scope, required and non-empty.
        raw_scope = p.get("scope")
        if not isinstance(raw_scope, str):
            raise ClaimError("claim 'scope' is missing or not a string")
        scope = parse_scope(raw_scope)
        # Txn-Tokens 9.2: tctx and rctx are JSON objects (required by this profile, maybe empty).
        tctx = _context(p, "tctx")
        rctx = _context(p, "rctx")
        # RFC 9449 6.1 / RFC 7800 3.1: confirmation by JWK SHA-256 thumbprint.
        cnf = p.get("cnf")
        if not isinstance(cnf, dict) or cnf.keys() != _CNF_MEMBERS:
            raise ClaimError("claim 'cnf' must be an object with exactly the member 'jkt'")
        cnf_jkt = _hash(cnf["jkt"], "cnf.jkt")
        authz = _parse_authz(p["authz"]) if "authz" in p else None
        prev = _hash(p["prev"], "prev") if "prev" in p else None
        log: int | None = None
        if "log" in p:
            log = p["log"]
            if type(log) is not int or not 0 <= log <= _SAFE_INTEGER:
                raise ClaimError("claim 'log' must be a non-negative integer")
        return cls(
            iss=iss,
            aud=aud,
            iat=iat,
            exp=exp,
            jti=jti,
            txn=txn,
            sub=sub,
            act=act,
            scope=scope,
            tctx=tctx,
            rctx=rctx,
            cnf_jkt=cnf_jkt,
            authz=authz,
            prev=prev,
            log=log,
            nbf=nbf,
        )


def act_from_chain(chain: Iterable[str]) -> dict[str, Any]:
    """The RFC 8693 section 4.1 ``act`` claim for ``chain`` (first actor to current actor)."""
    act: FrozenDict | None = None
    for actor in chain:
        act = FrozenDict(sub=actor) if act is None else FrozenDict(sub=actor, act=act)
    if act is None:
        raise ClaimError("an actor chain needs at least one actor")
    return act


def chain_from_act(act: Mapping[str, Any]) -> tuple[str, ...]:
    """The actors of an ``act`` claim, first to current. ``act`` must be well-formed."""
    outer_first: list[str] = []
    node: Mapping[str, Any] | None = act
    while node is not None:
        outer_first.append(node["sub"])
        node = node.get("act")
    outer_first.reverse()
    return tuple(outer_first)


def parse_scope(scope: str | Iterable[str]) -> tuple[str, ...]:
    """Validate a scope, given as its string form (RFC 6749 section 3.3) or as its tokens.

    The string form has one space between tokens and none leading or trailing. Either way: at
    least one token, each a scope-token, none twice, within the size limits.

    Raises:
        ClaimError, SizeLimitError
    """
    if isinstance(scope, str):
        if len(scope) > MAX_SCOPE_CHARS:
            raise SizeLimitError(f"scope is {len(scope)} characters, limit {MAX_SCOPE_CHARS}")
        if not _SCOPE_RE.fullmatch(scope):
            raise ClaimError(
                "scope must be scope-tokens separated by single spaces (RFC 6749 section 3.3)"
            )
        tokens = tuple(scope.split(" "))
    else:
        tokens = tuple(scope)
        for token in tokens:
            if not isinstance(token, str) or not _SCOPE_TOKEN_RE.fullmatch(token):
                raise ClaimError(f"{_show(token)} is not a scope token (RFC 6749 section 3.3)")
        if sum(map(len, tokens)) + len(tokens) - 1 > MAX_SCOPE_CHARS:
            raise SizeLimitError(f"scope is over {MAX_SCOPE_CHARS} characters")
    if not tokens:
        raise ClaimError("scope is empty")
    if len(tokens) > MAX_SCOPE_TOKENS:
        raise SizeLimitError(f"scope has {len(tokens)} tokens, limit {MAX_SCOPE_TOKENS}")
    if len(set(tokens)) != len(tokens):
        raise ClaimError("scope lists a token twice")
    for token in tokens:
        if len(token) > MAX_SCOPE_TOKEN_CHARS:
            raise SizeLimitError(f"a scope token is over {MAX_SCOPE_TOKEN_CHARS} characters")
    return tokens


def _show(value: object) -> str:
    """Untrusted text, short and on one line, for a message."""
    text = value if isinstance(value, str) else type(value).__name__
    cut = text[:64]
    safe = "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in cut)
    return f"`{safe}`" + ("..." if len(text) > len(cut) else "")


def _string(value: object, name: str, limit: int) -> str:
    # The common case in one test; the checks below only name the problem.
    if type(value) is str and 0 < len(value) <= limit and value.isprintable():
        return value
    if not isinstance(value, str):
        raise ClaimError(f"claim '{name}' is missing or not a string")
    if len(value) > limit:
        raise SizeLimitError(f"claim '{name}' is {len(value)} characters, limit {limit}")
    # Identifiers end up in audit events and on terminals: no empty values, no control or
    # invisible characters that could forge lines or hide what they name.
    raise ClaimError(f"claim '{name}' is empty or has non-printable characters")


def _uri(p: Mapping[str, Any], name: str) -> str:
    return _string(p.get(name), name, MAX_URI_CHARS)


def _ident(p: Mapping[str, Any], name: str) -> str:
    return _string(p.get(name), name, MAX_ID_CHARS)


def _time(p: Mapping[str, Any], name: str) -> int:
    value = p.get(name)
    # ``type() is int`` rather than isinstance: ``True`` is an int to Python and not a time.
    if type(value) is not int or not 0 <= value <= _SAFE_INTEGER:
        raise ClaimError(f"claim '{name}' is missing or not a whole number of seconds")
    return value


def _hash(value: object, name: str) -> str:
    if type(value) is str and len(value) == _HASH_CHARS and _B64URL_RE.fullmatch(value):
        return value
    raise ClaimError(f"claim '{name}' is not a base64url SHA-256 value")


def _hex_sha256(value: object, name: str) -> str:
    # The policy set hash is printed as lowercase hex (as ``sha256sum`` does), which is how an
    # investigator compares it with ``authchain policy check``; token hashes are base64url.
    if type(value) is str and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value
    raise ClaimError(f"claim '{name}' is not a lowercase hex SHA-256 value")


def _parse_act(value: object) -> dict[str, Any]:
    """RFC 8693 4.1: nested ``act`` objects, each naming one actor by ``sub``.

    Only ``sub`` and ``act`` are accepted in each level: actors are workloads named by SPIFFE IDs,
    and RFC 8693 4.1 says non-identity claims (``exp``, ``nbf``, ``aud``) are not meaningful there.
    The structure is rebuilt, so the result shares nothing with the untrusted input.
    """
    if value is None:
        raise ClaimError("claim 'act' is missing")
    subs: list[str] = []
    node = value
    while node is not None:
        if len(subs) == MAX_CHAIN_DEPTH:
            raise SizeLimitError(f"actor chain is deeper than {MAX_CHAIN_DEPTH}")
        if not isinstance(node, dict) or "sub" not in node or not _ACT_MEMBERS.issuperset(node):
            raise ClaimError("each level of 'act' must be an object with 'sub' and optional 'act'")
        sub = node["sub"]
        if type(sub) is not str:
            raise ClaimError("'act.sub' must be a string")
        # Actors are workloads: the SPIFFE ID parser is strict and caches recent IDs.
        SpiffeId.parse(sub)
        subs.append(sub)
        node = node.get("act")
    subs.reverse()
    return act_from_chain(subs)


def _parse_authz(value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or value.keys() != _AUTHZ_MEMBERS:
        raise ClaimError("claim 'authz' must have exactly 'id', 'policies' and 'policy_set_hash'")
    decision_id = _string(value["id"], "authz.id", MAX_ID_CHARS)
    policies = value["policies"]
    if not isinstance(policies, list):
        raise ClaimError("claim 'authz.policies' must be an array of strings")
    if len(policies) > MAX_POLICIES:
        raise SizeLimitError(f"claim 'authz.policies' has {len(policies)} entries, limit 64")
    checked = FrozenList(_string(policy, "authz.policies[]", MAX_ID_CHARS) for policy in policies)
    policy_set_hash = _hex_sha256(value["policy_set_hash"], "authz.policy_set_hash")
    return FrozenDict(id=decision_id, policies=checked, policy_set_hash=policy_set_hash)


def _context(p: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = p.get(name)
    if not isinstance(value, dict):
        raise ClaimError(f"claim '{name}' is missing or not a JSON object")
    # Fast path: the usual context is a small flat object of short ASCII strings.
    if len(value) <= MAX_CONTEXT_MEMBERS:
        for key, item in value.items():
            if not (
                type(item) is str
                and len(item) <= MAX_CONTEXT_STRING_CHARS
                and item.isascii()
                and type(key) is str
                and len(key) <= MAX_CONTEXT_STRING_CHARS
                and key.isascii()
            ):
                break
        else:
            return FrozenDict(value)
    _check_json(value, name, 1, [MAX_CONTEXT_MEMBERS])
    frozen: FrozenDict = freeze_json(value)
    return frozen


def _check_json(value: object, name: str, depth: int, budget: list[int]) -> None:
    """A context value must stay canonically encodable (RFC 8785: no floats outside the safe
    integer range, no lone surrogates) and bounded (depth, members, string sizes), because it is
    copied into every child token and into audit events."""
    if type(value) is str:
        if len(value) > MAX_CONTEXT_STRING_CHARS:
            raise SizeLimitError(f"a string in '{name}' is over {MAX_CONTEXT_STRING_CHARS} chars")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ClaimError(f"a string in '{name}' is not valid Unicode") from exc
        return
    if value is None or type(value) is bool:
        return
    if type(value) is int:
        if not -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
            raise ClaimError(f"an integer in '{name}' is outside the safe range")
        return
    if isinstance(value, dict | list):
        if depth > MAX_CONTEXT_DEPTH:
            raise SizeLimitError(f"'{name}' is nested deeper than {MAX_CONTEXT_DEPTH}")
        budget[0] -= len(value)
        if budget[0] < 0:
            raise SizeLimitError(f"'{name}' has more than {MAX_CONTEXT_MEMBERS} members")
        if isinstance(value, dict):
            for key, item in value.items():
                if type(key) is not str:
                    raise ClaimError(f"a member name in '{name}' is not a string")
                _check_json(key, name, depth, budget)
                _check_json(item, name, depth + 1, budget)
        else:
            for item in value:
                _check_json(item, name, depth + 1, budget)
        return
    raise ClaimError(
        f"'{name}' may hold only strings, safe integers, booleans, null, arrays and objects"
    )


# --------------------------------------------------------------------------------------------------
# Trust list and minting.


class TrustList:
    """The issuers whose task tokens this verifier accepts, each with its JWKS.

    Keys are found only here: a token's ``iss`` selects an entry and its ``kid`` a key in it, and
    nothing is ever fetched because of either (RFC 8725 sections 3.8 and 3.10). Rotation is an
    ``add`` with the issuer's new JWKS (which still lists retired keys during their overlap).
    """

    __slots__ = ("_issuers", "_keys")

    def __init__(self, issuers: Mapping[str, JWKS | Mapping[str, Any]] | None = None) -> None:
        self._issuers: dict[str, JWKS] = {}
        # The hot-path lookup, flattened once: (iss, kid) -> key.
        self._keys: dict[tuple[str, str], PublicKey] = {}
        for issuer, jwks in (issuers or {}).items():
            self.add(issuer, jwks)

    def add(self, issuer: str, jwks: JWKS | Mapping[str, Any]) -> None:
        """Trust ``issuer`` with exactly the keys of ``jwks``, replacing any earlier set."""
        if not isinstance(issuer, str) or not issuer or len(issuer) > MAX_URI_CHARS:
            raise ConfigurationError("an issuer must be a non-empty string of at most 2048 chars")
        key_set = jwks if isinstance(jwks, JWKS) else JWKS.from_dict(jwks)
        if not len(key_set):
            raise ConfigurationError(f"issuer {issuer!r} has an empty key set")
        self.remove(issuer)
        self._issuers[issuer] = key_set
        for key in key_set:
            self._keys[(issuer, key.kid)] = key

    def remove(self, issuer: str) -> None:
        """Stop trusting ``issuer``. Removing an unknown issuer does nothing."""
        old = self._issuers.pop(issuer, None)
        if old is not None:
            for key in old:
                self._keys.pop((issuer, key.kid), None)

    def key(self, issuer: str, kid: str) -> PublicKey:
        """The key ``kid`` of ``issuer``, or :class:`UntrustedIssuerError`."""
        key = self._keys.get((issuer, kid))
        if key is None:
            if issuer not in self._issuers:
                raise UntrustedIssuerError(f"issuer {_show(issuer)} is not trusted")
            raise UntrustedIssuerError(f"issuer {_show(issuer)} has no key {_show(kid)}")
        return key

    def jwks(self, issuer: str) -> JWKS:
        key_set = self._issuers.get(issuer)
        if key_set is None:
            raise UntrustedIssuerError(f"issuer {_show(issuer)} is not trusted")
        return key_set

    def __contains__(self, issuer: object) -> bool:
        return issuer in self._issuers

    def __iter__(self) -> Iterator[str]:
        return iter(self._issuers)

    def __len__(self) -> int:
        return len(self._issuers)


def mint_task_token(claims: TaskTokenClaims, key: SigningKey) -> str:
    """Sign ``claims`` as a task token: header ``{"typ": "txntoken+jwt", "alg", "kid"}``.

    The claims are first read back through :meth:`TaskTokenClaims.from_payload`, so a token that
    would not verify is never signed.
    """
    payload = claims.to_payload()
    TaskTokenClaims.from_payload(payload)
    return sign_compact({"typ": TXN_TOKEN_TYP, "kid": key.kid}, payload, key)


# --------------------------------------------------------------------------------------------------
# Verification.


@dataclass(frozen=True, slots=True)
class VerifiedTaskToken:
    """A task token that passed :func:`verify_task_token`.

    ``token_hash`` is ``base64url(SHA-256(token))``: the form of ``prev`` in a child token, of
    ``ath`` in a DPoP proof (RFC 9449 4.2) and of the token in audit events. The raw token is not
    kept, so it cannot leak into a log by accident.
    """

    claims: TaskTokenClaims
    token_hash: str
    kid: str


# Checked headers, keyed by their exact base64url text: every token one issuer key signs carries
# the same header, so the decode, the strict JSON parse and the checks run once per key rather
# than once per request. The value is a pure function of the key, so the cache holds no trust
# decision (the key is still looked up per token), and it is bounded: cleared when full.
_HEADER_CACHE: dict[str, tuple[str, str]] = {}
_HEADER_CACHE_MAX: Final = 256


# Parsed claims, keyed by the exact base64url text of the payload, for payloads whose signature
# verified. A tool receives the same task token on many requests, each with a fresh DPoP proof;
# parsing and checking its claims is a pure function of that text, so it is done once. The
# signature, issuer, audience and time checks still run on every call, and the claims are
# immutable (FrozenDict), so sharing them between calls cannot leak a change from one to another.
# Bounded like the header cache.
_CLAIMS_CACHE: dict[str, TaskTokenClaims] = {}
_CLAIMS_CACHE_MAX: Final = 512


def _check_header(h64: str) -> tuple[str, str]:
    """Steps 3-6 of :func:`verify_task_token` for one encoded header; returns ``(alg, kid)``."""
    # 3. RFC 7515 5.2 (steps 2-4) and RFC 8725 3.11: a bounded, strict JSON object.
    if len(h64) > MAX_HEADER_BYTES:
        raise SizeLimitError(f"token header is {len(h64)} bytes, limit {MAX_HEADER_BYTES}")
    header = json_loads_strict(b64url_decode(h64, max_len=MAX_HEADER_BYTES))
    if not isinstance(header, dict):
        raise MalformedError("token header is not a JSON object")
    # 4. RFC 8725 3.1: the algorithm allow-list, before anything else in the header is used.
    #    ``none`` and every HMAC algorithm stop here.
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise AlgorithmError(f"algorithm {_show(alg)} is not allowed")
    # 5. Txn-Tokens 9.1 and RFC 8725 3.11: exactly this token type (RFC 7515 4.1.9).
    if header.get("typ") != TXN_TOKEN_TYP:
        raise TokenTypeError(f"token type {_show(header.get('typ'))} is not '{TXN_TOKEN_TYP}'")
    #    RFC 7515 4.1.11: no extension is understood here, so ``crit`` is refused.
    if "crit" in header:
        raise MalformedError("'crit' header parameters are not supported")
    # 6. RFC 7515 4.1.4: ``kid`` names the key (an RFC 7638 thumbprint); ``jwk``, ``jku``,
    #    ``x5u`` and ``x5c`` are never used to find a key (RFC 8725 3.10).
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_ID_CHARS:
        raise MalformedError("token header has no usable 'kid'")
    return alg, kid


def verify_task_token(
    token: str,
    *,
    trust: TrustList,
    audience: str,
    now: int,
    skew: int = 60,
    max_lifetime: int = 3600,
) -> VerifiedTaskToken:
    """Verify a task token offline and return its claims, or raise a specific error.

    ``audience`` is this verifier's trust domain; ``now`` is the current Unix time; ``skew`` the
    clock difference tolerated in each time check (at most :data:`MAX_SKEW`); ``max_lifetime``
    the longest ``exp - iat`` accepted.

    Raises:
        MalformedError, SizeLimitError: the token does not parse or is over a size limit.
        AlgorithmError: ``alg`` is not allowed or not the key's algorithm.
        TokenTypeError: ``typ`` is not ``txntoken+jwt``.
        UntrustedIssuerError: ``iss`` is not trusted or has no key ``kid``.
        SignatureError: the signature does not verify.
        ClaimError: a claim is missing, malformed, or the lifetime is too long.
        AudienceError: ``aud`` is not ``audience``.
        ExpiredError, NotYetValidError, IssuedInFutureError: a time check failed.
    """
    if type(now) is not int or type(skew) is not int or not 0 <= skew <= MAX_SKEW:
        raise ConfigurationError(f"now and skew must be integers, skew between 0 and {MAX_SKEW}")
    # 1. Size, before any decoding (RFC 8725 3.11's spirit): the whole token is bounded.
    if not isinstance(token, str):
        raise MalformedError("token must be a string")
    if len(token) > MAX_TOKEN_BYTES:
        raise SizeLimitError(f"token is {len(token)} bytes, limit {MAX_TOKEN_BYTES}")
    # 2. RFC 7515 7.1: compact serialisation, exactly three segments.
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedError("token is not a compact JWS (three dot-separated segments)")
    h64, p64, s64 = parts
    # 3-6. Header: size and strict JSON, algorithm allow-list first, ``typ``, ``crit``, ``kid``.
    checked = _HEADER_CACHE.get(h64)
    if checked is None:
        checked = _check_header(h64)
        if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[h64] = checked
    alg, kid = checked
    # 7. RFC 7515 5.2 (steps 6-7) and RFC 7519 7.2 (step 10): the payload is a strict JSON object
    #    (canonical base64url, no duplicate members). It stays untrusted until step 10. A payload
    #    seen before with a valid signature has its parsed claims cached (see _CLAIMS_CACHE): they
    #    are still only used once this token's own signature has verified in step 10.
    parsed = _CLAIMS_CACHE.get(p64)
    if parsed is None:
        unverified_claims = json_loads_strict(b64url_decode(p64, max_len=MAX_TOKEN_BYTES))
        if not isinstance(unverified_claims, dict):
            raise MalformedError("token payload is not a JSON object")
        iss = unverified_claims.get("iss")
        if not isinstance(iss, str):
            raise UntrustedIssuerError("token has no issuer")
    else:
        iss = parsed.iss
    # 8. RFC 8725 3.8 and 3.10: the issuer must be on the configured trust list and the key is
    #    that issuer's key ``kid``. Nothing is fetched because of ``iss`` or ``kid``.
    key = trust._keys.get((iss, kid)) or trust.key(iss, kid)
    # 9. RFC 8725 3.1: the header's algorithm must be the key's own (an EdDSA-labelled token never
    #    verifies under an ES256 key, nor the reverse).
    if alg != key.alg:
        raise AlgorithmError(f"token algorithm {alg!r} does not match the key's {key.alg!r}")
    # 10. RFC 7515 5.2 (step 8): the signature, over the exact received header and payload text.
    #     Canonical base64url and, for ES256, the low-s form only, so that one token has exactly
    #     one spelling and ``token_hash`` names it without ambiguity.
    signature = b64url_decode(s64, max_len=128)
    if alg == "ES256" and (
        len(signature) != 64 or int.from_bytes(signature[32:], "big") > P256_HALF_ORDER
    ):
        raise SignatureError("signature invalid")
    key.verify(signature, (h64 + "." + p64).encode("ascii"))
    # 11. Txn-Tokens 9.2, RFC 7519 4.1, RFC 8693 4.1, RFC 9449 6.1: every claim has its type,
    #     form and size (``cnf.jkt`` included), now that the issuer vouches for them.
    if parsed is None:
        claims = TaskTokenClaims.from_payload(unverified_claims)
        if len(_CLAIMS_CACHE) >= _CLAIMS_CACHE_MAX:
            _CLAIMS_CACHE.clear()
        _CLAIMS_CACHE[p64] = claims
    else:
        claims = parsed
    # 12. RFC 7519 4.1.3 and Txn-Tokens 9.2: "A Txn-Token MUST NOT be accepted outside the Trust
    #     Domain identified by the aud claim".
    if claims.aud != audience:
        raise AudienceError(f"token audience {_show(claims.aud)} is not {_show(audience)}")
    # 13. RFC 7519 4.1.4: expired on or after ``exp`` (allowing ``skew``).
    if now >= claims.exp + skew:
        raise ExpiredError("token has expired")
    # 14. RFC 7519 4.1.5: not valid before ``nbf`` (allowing ``skew``).
    if claims.nbf is not None and now + skew < claims.nbf:
        raise NotYetValidError("token is not valid yet")
    # 15. RFC 7519 4.1.6: not issued in the future (allowing ``skew``).
    if claims.iat > now + skew:
        raise IssuedInFutureError("token was issued in the future")
    # 16. Txn-Tokens section 6 ("short-lived"): a bounded lifetime, so that a token minted by a
    #     misconfigured or compromised issuer cannot stay usable for long.
    if not 0 < claims.exp - claims.iat <= max_lifetime:
        raise ClaimError(
            f"token lifetime {claims.exp - claims.iat}s is not between 1 and {max_lifetime}s"
        )
    return VerifiedTaskToken(claims=claims, token_hash=sha256_b64url(token), kid=kid)
