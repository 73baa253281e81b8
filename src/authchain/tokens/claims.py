"""The claims of a task token: the OAuth Transaction Tokens claim set plus RFC 8693 delegation.

:class:`TaskTokenClaims` is the claim set as an immutable value, and :meth:`TaskTokenClaims.from_payload`
its strict reader: types, forms and size limits on every field, run on every token a verifier
accepts and on every claim set the authority signs (docs/tokens.md). Minting and verifying are
in :mod:`authchain.tokens.task_token`.

References: draft-ietf-oauth-transaction-tokens-10 ("Txn-Tokens") section 9.2; RFC 7519 (JWT)
section 4.1; RFC 8693 section 4.1 (``act``); RFC 9449 section 6.1 (``cnf.jkt``); RFC 6749 section
3.3 (scope); RFC 8785 (the canonical JSON the context objects must stay encodable in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from authchain.errors import ClaimError, SizeLimitError
from authchain.identity.spiffe import SpiffeId
from authchain.tokens._frozen import FrozenDict, FrozenList, freeze_json
from authchain.tokens.jws import _show

__all__ = [
    "MAX_CHAIN_DEPTH",
    "TaskTokenClaims",
    "act_from_chain",
    "chain_from_act",
    "parse_scope",
]

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


@dataclass(frozen=True, slots=True)
class TaskTokenClaims:
    """The claims of a task token (docs/tokens.md).

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
