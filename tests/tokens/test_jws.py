"""The one compact-JWS parser: task tokens, DPoP proofs and ID tokens are refused with the same error,
limit and message for the same malformed part, each message naming the kind of token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from _tasktoken_helpers import AUTHORITY_KEY, TRUST_DOMAIN, make_claims, trust_for

from authchain._encoding import b64url_encode
from authchain.errors import AlgorithmError, MalformedError, SizeLimitError, VerificationError
from authchain.identity.keys import JWKS
from authchain.tokens import verify_id_token, verify_proof, verify_task_token
from authchain.tokens.jws import (
    MAX_HEADER_BYTES,
    MAX_SIGNATURE_CHARS,
    MAX_TOKEN_BYTES,
    parse_compact,
    sign_compact,
)

NOW = 1_800_000_010
ISSUER = "https://authority.example.org"


def _as_task_token(token: str) -> object:
    return verify_task_token(token, trust=trust_for(AUTHORITY_KEY), audience=TRUST_DOMAIN, now=NOW)


def _as_dpop_proof(token: str) -> object:
    return verify_proof(
        token, htm="POST", htu="https://crm.example.org/x", now=NOW, replay_cache=None
    )


def _as_id_token(token: str) -> object:
    return verify_id_token(
        token, issuers={ISSUER: JWKS([AUTHORITY_KEY.public])}, audience=ISSUER, now=NOW
    )


VERIFIERS: list[tuple[str, Callable[[str], object]]] = [
    ("task token", _as_task_token),
    ("DPoP proof", _as_dpop_proof),
    ("ID token", _as_id_token),
]


def _b64(obj: Any) -> str:
    return b64url_encode(obj if isinstance(obj, bytes) else orjson.dumps(obj))


# Each kind's own header rules (``typ``, ``kid``) are met, so that only the malformed part is wrong.
TYP = {"task token": "txntoken+jwt", "DPoP proof": "dpop+jwt", "ID token": "JWT"}


def _valid_parts(what: str) -> tuple[str, str, str]:
    header = {"typ": TYP[what], "kid": AUTHORITY_KEY.kid}
    token = sign_compact(header, make_claims().to_payload(), AUTHORITY_KEY)
    h, p, s = token.split(".")
    return h, p, s


def oversized_signature(what: str) -> tuple[str, type[VerificationError], str]:
    h, p, s = _valid_parts(what)
    return f"{h}.{p}.{s + 'A' * (MAX_SIGNATURE_CHARS - len(s) + 2)}", SizeLimitError, "signature is"


def oversized_header(what: str) -> tuple[str, type[VerificationError], str]:
    _, p, s = _valid_parts(what)
    h = _b64({"alg": "EdDSA", "pad": "x" * MAX_HEADER_BYTES})
    return f"{h}.{p}.{s}", SizeLimitError, "header is"


def header_not_an_object(what: str) -> tuple[str, type[VerificationError], str]:
    _, p, s = _valid_parts(what)
    return f"{_b64([1, 2])}.{p}.{s}", MalformedError, "header is not a JSON object"


def alg_none(what: str) -> tuple[str, type[VerificationError], str]:
    _, p, _ = _valid_parts(what)
    return f"{_b64({'alg': 'none'})}.{p}.", AlgorithmError, "algorithm `none` is not allowed"


def crit(what: str) -> tuple[str, type[VerificationError], str]:
    _, p, s = _valid_parts(what)
    return f"{_b64({'alg': 'EdDSA', 'crit': ['exp']})}.{p}.{s}", MalformedError, "'crit'"


def four_segments(what: str) -> tuple[str, type[VerificationError], str]:
    return "a.b.c.d", MalformedError, "is not a compact JWS"


def non_ascii(what: str) -> tuple[str, type[VerificationError], str]:
    h, p, s = _valid_parts(what)
    return f"{h}.{p}é.{s}", MalformedError, "is not a compact JWS"


def payload_not_an_object(what: str) -> tuple[str, type[VerificationError], str]:
    h, _, s = _valid_parts(what)
    return f"{h}.{_b64(b'[1]')}.{s}", MalformedError, "payload is not a JSON object"


CASES = [
    oversized_signature,
    oversized_header,
    header_not_an_object,
    alg_none,
    crit,
    four_segments,
    non_ascii,
    payload_not_an_object,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
@pytest.mark.parametrize(("what", "verifier"), VERIFIERS, ids=[w for w, _ in VERIFIERS])
def test_every_kind_of_token_is_refused_alike_for_the_same_malformed_part(
    case: Callable[[str], tuple[str, type[VerificationError], str]],
    what: str,
    verifier: Callable[[str], object],
) -> None:
    token, error, message = case(what)
    with pytest.raises(error) as caught:
        verifier(token)
    assert type(caught.value) is error
    assert str(caught.value).startswith(what + " ")
    assert message in str(caught.value)


def test_the_whole_token_limit_is_checked_before_anything_is_decoded() -> None:
    with pytest.raises(SizeLimitError, match=f"task token is {MAX_TOKEN_BYTES + 1} characters"):
        parse_compact("." * (MAX_TOKEN_BYTES + 1), what="task token")
    # A DPoP proof has its own, smaller, whole-token limit on top of the shared ones.
    with pytest.raises(SizeLimitError, match="DPoP proof is 4097 characters, limit 4096"):
        _as_dpop_proof("." * 4097)


def test_a_parsed_header_is_shared_read_only() -> None:
    token = sign_compact({"kid": AUTHORITY_KEY.kid}, {"a": 1}, AUTHORITY_KEY)
    first = parse_compact(token)
    assert parse_compact(token).unverified_header is first.unverified_header
    with pytest.raises(TypeError):
        first.unverified_header["alg"] = "none"  # type: ignore[index]
    assert first.unverified_claims() == {"a": 1}
    first.verify(AUTHORITY_KEY.public)
