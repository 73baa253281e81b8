"""Compact JWS (RFC 7515 section 7.1): the one parser and the one signer for every token Authchain
reads or makes: task tokens, DPoP proofs and the ID tokens that start tasks.

One parser means one set of limits and one set of messages: a header, a signature or a payload is
refused the same way whichever kind of token carries it, and each kind's verifier adds only its own
rules (``typ``, ``kid``, claims) on top.

Hand-written over PyJWT/joserfc because the verify path runs on every tool request and every hop:
those libraries cost about 150 us per token here, mostly in generic option handling, while the work
that matters is one strict split, two base64url decodes, one JSON parse and one signature check.
The parser is strict where the libraries are lenient: canonical base64url only, duplicate JSON
members refused, the algorithm allow-list applied before anything else is read, ``crit`` refused.

It is also written for that hot path. Every token one key signs carries the same header, so a
header's checked form is cached by its exact text; and the payload is decoded only when a verifier
asks for it, so one that has already parsed this exact payload text (the task token's claims cache)
does not parse it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from authchain._encoding import b64url_decode, b64url_encode, json_dumps_compact, json_loads_strict
from authchain.errors import AlgorithmError, MalformedError, SizeLimitError
from authchain.identity.keys import ALLOWED_ALGORITHMS, PublicKey, SigningKey
from authchain.tokens._frozen import FrozenDict, freeze_json

__all__ = [
    "UnverifiedJWS",
    "parse_compact",
    "sign_compact",
    "MAX_TOKEN_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_SIGNATURE_CHARS",
]

# Size limits on untrusted input (RFC 8725 section 3.11's spirit; CONVENTIONS.md), the same for
# every kind of token. A verifier may ask for a smaller whole-token limit (a DPoP proof is small).
MAX_TOKEN_BYTES: Final = 8192  # a deep chain (depth 8) of SPIFFE IDs fits in well under 4 KiB
MAX_HEADER_BYTES: Final = 1024  # encoded header; a DPoP header with an EC jwk is about 300
MAX_SIGNATURE_CHARS: Final = 128  # 64-byte EdDSA and ES256 signatures are 86 characters

# Checked headers, keyed by their exact base64url text. The value is a pure function of that text
# (strict JSON object, ``alg`` allowed, no ``crit``) and holds no trust decision: each verifier
# still applies its own header rules and finds its key per token. Refusals are never cached. The
# cache is bounded: it is cleared when full, so a flood of distinct headers costs re-parsing, not
# memory. Two threads racing on it store equal values.
_HEADER_CACHE: dict[str, FrozenDict] = {}
_HEADER_CACHE_MAX: Final = 4096


@dataclass(frozen=True, slots=True)
class UnverifiedJWS:
    """A parsed but NOT verified JWS. Its header and payload are attacker-controlled until the
    signature has been checked with a key the verifier chose.

    ``unverified_header`` has passed the generic checks (a strict JSON object, ``alg`` on the
    allow-list, no ``crit``) and is immutable; ``what`` names the kind of token in messages.
    """

    what: str
    unverified_header: Mapping[str, Any]
    encoded_header: str
    encoded_payload: str
    signature: bytes

    @property
    def alg(self) -> str:
        alg = self.unverified_header["alg"]
        assert isinstance(alg, str)
        return alg

    @property
    def signing_input(self) -> bytes:
        """RFC 7515 section 5.2 (step 8): the exact received header and payload text."""
        # parse_compact refused any token that is not ASCII, so this cannot fail.
        return (self.encoded_header + "." + self.encoded_payload).encode("ascii")

    def unverified_claims(self) -> dict[str, Any]:
        """RFC 7515 section 5.2 (steps 6-7) and RFC 7519 section 7.2 (step 10): the payload as a
        strict JSON object (canonical base64url, no duplicate members). Still untrusted.

        Raises:
            MalformedError: the payload is not canonical base64url of a JSON object.
        """
        claims = json_loads_strict(b64url_decode(self.encoded_payload))
        if not isinstance(claims, dict):
            raise MalformedError(f"{self.what} payload is not a JSON object")
        return claims

    def verify(self, key: PublicKey) -> None:
        """Check the signature with ``key`` or raise. The header's ``alg`` must be the key's own
        algorithm: an EdDSA-labelled token never verifies under an ES256 key or the reverse
        (RFC 8725 section 3.1).

        Raises:
            AlgorithmError: ``alg`` is not the key's algorithm.
            SignatureError: the signature does not verify.
        """
        alg = self.alg
        if alg != key.alg:
            raise AlgorithmError(
                f"{self.what} algorithm {alg!r} does not match the key's {key.alg!r}"
            )
        key.verify(self.signature, self.signing_input)


def sign_compact(header: Mapping[str, Any], payload: Mapping[str, Any], key: SigningKey) -> str:
    """Sign and serialise. ``alg`` is always taken from the key, never from the caller's header."""
    hdr = {**header, "alg": key.alg}
    signing_input = (
        b64url_encode(json_dumps_compact(hdr)) + "." + b64url_encode(json_dumps_compact(payload))
    )
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode("ascii")))


def parse_compact(
    token: str, *, what: str = "token", max_bytes: int = MAX_TOKEN_BYTES
) -> UnverifiedJWS:
    """Split and decode a compact JWS, refusing anything malformed before a signature is checked.

    ``what`` names the kind of token in messages ("task token", "DPoP proof", "ID token");
    ``max_bytes`` bounds the whole token (at most :data:`MAX_TOKEN_BYTES`).

    1. Size, before any decoding (RFC 8725 section 3.11's spirit), and only the ASCII of base64url.
    2. RFC 7515 section 7.1: exactly three segments.
    3. RFC 7515 section 5.2 (steps 2-4): the header is bounded and decodes to a JSON object without
       duplicate members.
    4. RFC 8725 section 3.1: ``alg`` is on the allow-list; ``none`` and HMAC never get further.
    5. RFC 7515 section 4.1.11: ``crit`` is refused, since no extension is understood here.
    6. RFC 7515 section 5.2 (step 7): the signature is bounded canonical base64url.

    The payload is decoded by :meth:`UnverifiedJWS.unverified_claims`, when the verifier needs it.

    Raises:
        MalformedError: not a compact JWS, not canonical base64url, not a JSON object, ``crit``.
        SizeLimitError: the token, its header or its signature is over its limit.
        AlgorithmError: ``alg`` is not on the allow-list.
    """
    # 1.
    if not isinstance(token, str):
        raise MalformedError(f"{what} must be a string")
    if len(token) > max_bytes:
        raise SizeLimitError(f"{what} is {len(token)} characters, limit {max_bytes}")
    # 2.
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():
        raise MalformedError(
            f"{what} is not a compact JWS (three base64url segments joined by dots)"
        )
    h64, p64, s64 = parts
    # 3-5.
    header = _HEADER_CACHE.get(h64)
    if header is None:
        header = _check_header(h64, what)
        if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[h64] = header
    # 6.
    if len(s64) > MAX_SIGNATURE_CHARS:
        raise SizeLimitError(
            f"{what} signature is {len(s64)} characters, limit {MAX_SIGNATURE_CHARS}"
        )
    return UnverifiedJWS(what, header, h64, p64, b64url_decode(s64))


def _check_header(h64: str, what: str) -> FrozenDict:
    """Steps 3-5 of :func:`parse_compact` for one encoded header."""
    # 3.
    if len(h64) > MAX_HEADER_BYTES:
        raise SizeLimitError(f"{what} header is {len(h64)} characters, limit {MAX_HEADER_BYTES}")
    header = json_loads_strict(b64url_decode(h64))
    if not isinstance(header, dict):
        raise MalformedError(f"{what} header is not a JSON object")
    # 4. Before anything else in the header is used.
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise AlgorithmError(f"{what} algorithm {_show(alg)} is not allowed")
    # 5.
    if "crit" in header:
        raise MalformedError(f"{what} header has 'crit' parameters, which are not supported")
    frozen: FrozenDict = freeze_json(header)
    return frozen


def _show(value: object) -> str:
    """Untrusted text, short and on one line, for a message."""
    text = value if isinstance(value, str) else type(value).__name__
    cut = text[:64]
    safe = "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in cut)
    return f"`{safe}`" + ("..." if len(text) > len(cut) else "")
