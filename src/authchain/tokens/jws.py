"""JWS compact serialisation (RFC 7515) for the two token kinds Authchain handles: task tokens and DPoP
proofs (and the ID tokens and grants that start or cross tasks).

Hand-written over PyJWT/joserfc because the verify path runs on every tool request and every hop:
those libraries cost about 150 us per token here, mostly in generic option handling, while the work
that matters is one strict split, two base64url decodes, one JSON parse and one signature check.
The parser is strict where the libraries are lenient: canonical base64url only, duplicate JSON
members refused, the algorithm allow-list applied before anything else is read, ``crit`` refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from authchain._encoding import b64url_decode, b64url_encode, json_dumps_compact, json_loads_strict
from authchain.errors import AlgorithmError, MalformedError, SizeLimitError
from authchain.identity.keys import ALLOWED_ALGORITHMS, PublicKey, SigningKey

__all__ = ["UnverifiedJWS", "sign_compact", "parse_compact", "MAX_TOKEN_BYTES", "MAX_HEADER_BYTES"]

MAX_TOKEN_BYTES: Final = 8192  # a deep chain (depth 8) of SPIFFE IDs fits in well under 4 KiB
MAX_HEADER_BYTES: Final = 1024  # encoded header; a DPoP header with an EC jwk is about 300


@dataclass(frozen=True, slots=True)
class UnverifiedJWS:
    """A parsed but NOT verified JWS. Its header and payload are attacker-controlled until
    :meth:`verify` returns."""

    unverified_header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        alg = self.unverified_header["alg"]
        assert isinstance(alg, str)
        return alg

    def verify(self, key: PublicKey) -> None:
        """Check the signature with ``key`` or raise. The header's ``alg`` must be the key's own
        algorithm: an EdDSA-labelled token never verifies under an ES256 key or the reverse
        (RFC 8725 section 3.1)."""
        if self.alg != key.alg:
            raise AlgorithmError(
                f"token algorithm {self.alg!r} does not match the key's {key.alg!r}"
            )
        key.verify(self.signature, self.signing_input)


def sign_compact(header: dict[str, Any], payload: dict[str, Any], key: SigningKey) -> str:
    """Sign and serialise. ``alg`` is always taken from the key, never from the caller's header."""
    hdr = {**header, "alg": key.alg}
    signing_input = (
        b64url_encode(json_dumps_compact(hdr)) + "." + b64url_encode(json_dumps_compact(payload))
    )
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode("ascii")))


def parse_compact(
    token: str,
    *,
    max_bytes: int = MAX_TOKEN_BYTES,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> UnverifiedJWS:
    """Split and decode a compact JWS, refusing anything malformed before the signature is checked.

    1. Size: the whole token, then the header, before any decoding (RFC 8725 section 3.11 spirit).
    2. RFC 7515 section 7.1: exactly three base64url segments.
    3. RFC 7515 section 5.2 (steps 2-4): the header decodes to a JSON object without duplicates.
    4. RFC 8725 section 3.1: ``alg`` is on the allow-list; ``none`` and HMAC never get further.
    5. RFC 7515 section 4.1.11: ``crit`` is refused, since no extension is understood here.
    """
    if not isinstance(token, str):
        raise MalformedError("token must be a string")
    # 1.
    if len(token) > max_bytes:
        raise SizeLimitError(f"token is {len(token)} bytes, limit {max_bytes}")
    # 2.
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedError("token is not a compact JWS (three dot-separated segments)")
    h64, p64, s64 = parts
    if len(h64) > max_header_bytes:
        raise SizeLimitError(f"token header is {len(h64)} bytes, limit {max_header_bytes}")
    # 3.
    header = json_loads_strict(b64url_decode(h64), max_len=max_header_bytes)
    if not isinstance(header, dict):
        raise MalformedError("token header is not a JSON object")
    # 4.
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise AlgorithmError(f"algorithm {alg!r} is not allowed")
    # 5.
    if "crit" in header:
        raise MalformedError("'crit' header parameters are not supported")
    payload = b64url_decode(p64, max_len=max_bytes)
    signature = b64url_decode(s64, max_len=256)
    return UnverifiedJWS(header, payload, (h64 + "." + p64).encode("ascii"), signature)
