"""DPoP proofs (RFC 9449): create, verify, replay cache and server nonces.

Every request a workload makes carries a DPoP proof signed by its registered key (DESIGN.md, "Tokens").
A tool service verifies the proof next to the task token on every request, so this path is written
for speed as well as strictness: the proof's header (``typ``, ``alg``, ``jwk``) is the same on every
proof a workload sends, so it is parsed and its key imported once and then looked up by its encoded
bytes in a bounded LRU cache; the URL normalisation is cached the same way.

What is deliberately stricter than RFC 9449 requires:

* ``typ`` must be exactly ``dpop+jwt``; ``iat`` must be an integer; ``jti``, ``htm``, ``ath`` and
  ``nonce`` have length limits, and ``ath`` and ``nonce`` must be ASCII.
* ``htu`` is refused unless it is an absolute ``http``/``https`` URI of plain RFC 3986 characters,
  without userinfo (RFC 9110 section 4.2.4) and with a DNS name or IP literal as host. Such a URI
  cannot name the resource a server verifies against, so refusing it costs nothing.
* The replay cache keys a ``jti`` by the proof key's thumbprint, not by the target URI alone
  (RFC 9449 section 11.1): one client cannot burn another client's ``jti`` values, and a ``jti``
  reused by the same key on another URL is still a replay.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import hmac
import ipaddress
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Final

from authchain._encoding import b64url_decode, b64url_encode, json_loads_strict, sha256_b64url
from authchain.errors import (
    AlgorithmError,
    ClaimError,
    ConfigurationError,
    DPoPAccessTokenHashError,
    DPoPMethodError,
    DPoPNonceError,
    DPoPURLError,
    ExpiredError,
    InvalidKeyError,
    IssuedInFutureError,
    KeyBindingError,
    MalformedError,
    ReplayCacheFullError,
    ReplayError,
    SizeLimitError,
    TokenTypeError,
)
from authchain.identity.keys import ALLOWED_ALGORITHMS, PublicKey, SigningKey
from authchain.tokens.jws import MAX_HEADER_BYTES, parse_compact, sign_compact

__all__ = [
    "DPOP_TYP",
    "MAX_PROOF_BYTES",
    "DPoPProof",
    "NonceSource",
    "ReplayCache",
    "create_proof",
    "normalize_htu",
    "verify_proof",
]

# RFC 9449 section 4.2: the JOSE ``typ`` of a DPoP proof (explicit typing, RFC 8725 section 3.11).
DPOP_TYP: Final = "dpop+jwt"

# Size limits on untrusted input (CONVENTIONS.md). A proof is a header of about 300 characters (P-256
# jwk), a payload dominated by ``htu``, and an 86-character signature.
MAX_PROOF_BYTES: Final = 4096
MAX_HTU_LENGTH: Final = 2048
MAX_JTI_LENGTH: Final = 256
_MAX_HTM_LENGTH: Final = 32
_MAX_ATH_LENGTH: Final = 128
_MAX_NONCE_LENGTH: Final = 512
_MAX_SIGNATURE_CHARS: Final = 128  # 64-byte EdDSA and ES256 signatures are 86 characters

# RFC 9449 section 4.2: ``jti`` should carry at least 96 bits of randomness; proofs made here carry 128.
_JTI_BYTES: Final = 16

_HEADER_CACHE_SIZE: Final = 4096
_HTU_CACHE_SIZE: Final = 1024


# --------------------------------------------------------------------------------------------------
# The verified proof.


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A verified DPoP proof. ``htu`` is the claim as signed (it matched the request URL after RFC 9449
    section 4.3 normalisation); ``thumbprint`` is the RFC 7638 thumbprint of ``jwk``, the value a bound
    token carries as ``cnf.jkt``."""

    jwk: PublicKey
    thumbprint: str
    jti: str
    htm: str
    htu: str
    iat: int
    ath: str | None
    nonce: str | None


# --------------------------------------------------------------------------------------------------
# htu normalisation (RFC 9449 section 4.3 (9) and the paragraph after the list; RFC 3986 section 6).

# RFC 9110 sections 4.2.1 and 4.2.2: the default ports, dropped by scheme-based normalisation
# (RFC 3986 section 6.2.3).
_DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443}

_ALPHA_DIGIT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_UNRESERVED: Final = frozenset(_ALPHA_DIGIT + "-._~")  # RFC 3986 section 2.3
_SUB_DELIMS = "!$&'()*+,;="  # RFC 3986 section 2.2
# RFC 3986 section 3.3: path = *( "/" segment ); segment = *pchar; pchar = unreserved / pct-encoded /
# sub-delims / ":" / "@".
_PATH_CHARS: Final = frozenset(_ALPHA_DIGIT + "-._~" + _SUB_DELIMS + ":@/%")
_HEXDIG: Final = frozenset("0123456789ABCDEFabcdef")
_SCHEME_CHARS: Final = frozenset(_ALPHA_DIGIT + "+-.")  # RFC 3986 section 3.1


def normalize_htu(url: str) -> str:
    """The comparison form of an ``htu`` or of a request URL, or :class:`DPoPURLError`.

    RFC 9449 section 4.2 defines ``htu`` without query and fragment, section 4.3 (9) compares it
    "ignoring any query and fragment parts", and the paragraph after the list asks for syntax-based
    and scheme-based normalisation (RFC 3986 sections 6.2.2 and 6.2.3):

    * the query and fragment are removed;
    * scheme and host are lowercased (RFC 3986 section 6.2.2.1);
    * percent-encodings use uppercase hex, and encoded unreserved characters are decoded
      (section 6.2.2.2);
    * ``.`` and ``..`` segments are removed (section 6.2.2.3, algorithm of section 5.2.4);
    * an empty port and the scheme's default port are dropped, an empty path becomes ``/``
      (section 6.2.3).

    Refused: anything but an absolute ``http``/``https`` URI with a host, userinfo (RFC 9110 section
    4.2.4 forbids generating it), characters outside RFC 3986, malformed percent-encodings, IPv6 zone
    identifiers and IPvFuture literals, ports outside 1-65535, and URIs over ``MAX_HTU_LENGTH``.
    """
    if not isinstance(url, str):
        raise DPoPURLError("URL must be a string")
    if len(url) > MAX_HTU_LENGTH:
        raise DPoPURLError(f"URL is {len(url)} characters, limit {MAX_HTU_LENGTH}")
    return _normalize_htu_cached(url)


@functools.lru_cache(maxsize=_HTU_CACHE_SIZE)
def _normalize_htu_cached(url: str) -> str:
    # Only results are cached (lru_cache never caches an exception), so a refused URL is re-checked.
    # RFC 3986 section 3.5 then 3.4: the fragment follows the first "#", the query the first "?".
    url = url.split("#", 1)[0].split("?", 1)[0]
    scheme, colon, rest = url.partition(":")
    if not colon or not scheme or not _SCHEME_CHARS.issuperset(scheme):
        raise DPoPURLError("URL is not an absolute URI")
    scheme = scheme.lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is None:
        raise DPoPURLError(f"URL scheme {scheme[:16]!r} is not http or https")
    if not rest.startswith("//"):
        raise DPoPURLError("URL has no authority (host)")
    slash = rest.find("/", 2)
    authority, path = (rest[2:], "") if slash < 0 else (rest[2:slash], rest[slash:])
    host, port = _split_authority(authority)
    if port is not None and port != default_port:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{_normalize_path(path)}"


def _split_authority(authority: str) -> tuple[str, int | None]:
    """The lowercased host (IP literals in brackets) and the port, if one is given."""
    if "@" in authority:
        raise DPoPURLError(
            "URL carries userinfo, which HTTP URIs must not (RFC 9110 section 4.2.4)"
        )
    if authority.startswith("["):
        # RFC 3986 section 3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]".
        end = authority.find("]")
        if end < 0:
            raise DPoPURLError("URL host has an unterminated IP literal")
        literal, after = authority[1:end], authority[end + 1 :]
        # A zone identifier ("%25eth0", RFC 6874) names a local interface and IPvFuture ("v1.x") is
        # unregistered; neither identifies a resource another machine can sign for.
        if "%" in literal or literal[:1] in ("v", "V"):
            raise DPoPURLError("URL host is not a plain IPv6 literal")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError as exc:
            raise DPoPURLError("URL host is not a valid IPv6 literal") from exc
        host = f"[{literal.lower()}]"
        if after and not after.startswith(":"):
            raise DPoPURLError("URL has characters after the IP literal")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
        # A registered name or IPv4 address of unreserved characters. Percent-encoded and sub-delim
        # characters are legal in reg-name (RFC 3986 section 3.2.2) but never in a DNS name.
        if not host or not _UNRESERVED.issuperset(host):
            raise DPoPURLError("URL host is empty or not a DNS name or IP address")
        host = host.lower()
    if not port_text:
        # RFC 3986 section 6.2.3: an empty port is the same as no port.
        return host, None
    if len(port_text) > 5 or not port_text.isascii() or not port_text.isdigit():
        raise DPoPURLError("URL port is not a number")
    port = int(port_text)
    if not 0 < port <= 65535:
        raise DPoPURLError("URL port is out of range")
    return host, port


def _normalize_path(path: str) -> str:
    if not _PATH_CHARS.issuperset(path):
        raise DPoPURLError("URL path has characters outside RFC 3986")
    if "%" in path:
        path = _normalize_percent_encoding(path)
    if "." in path:
        path = _remove_dot_segments(path)
    # RFC 3986 section 6.2.3: for http(s), an empty path is equivalent to "/".
    return path or "/"


def _normalize_percent_encoding(text: str) -> str:
    """RFC 3986 sections 6.2.2.1 and 6.2.2.2: uppercase hex; decode octets that are unreserved."""
    pieces = text.split("%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        hex_pair = piece[:2]
        if len(hex_pair) != 2 or not _HEXDIG.issuperset(hex_pair):
            raise DPoPURLError("URL has a malformed percent-encoding")
        char = chr(int(hex_pair, 16))
        out.append(char if char in _UNRESERVED else "%" + hex_pair.upper())
        out.append(piece[2:])
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, for the absolute paths of URIs with an authority."""
    segments: list[str] = []
    remaining = path
    while remaining:
        if remaining.startswith("../"):  # (A)
            remaining = remaining[3:]
        elif remaining.startswith("./"):
            remaining = remaining[2:]
        elif remaining.startswith("/./"):  # (B)
            remaining = remaining[2:]
        elif remaining == "/.":
            remaining = "/"
        elif remaining.startswith("/../"):  # (C)
            remaining = remaining[3:]
            if segments:
                segments.pop()
        elif remaining == "/..":
            remaining = "/"
            if segments:
                segments.pop()
        elif remaining in (".", ".."):  # (D)
            remaining = ""
        else:  # (E) move the first segment, with its leading "/", to the output
            nxt = remaining.find("/", 1)
            if nxt < 0:
                segments.append(remaining)
                remaining = ""
            else:
                segments.append(remaining[:nxt])
                remaining = remaining[nxt:]
    return "".join(segments)


# --------------------------------------------------------------------------------------------------
# Replay cache (RFC 9449 section 11.1).

# Entries are kept this many seconds past their expiry, so that two threads whose ``now`` differ by a
# clock step cannot see an entry evicted by one while the other still accepts its proof.
_RETENTION_SLACK: Final = 5


class ReplayCache:
    """Remembers each proof's ``jti`` until the proof could no longer be accepted (RFC 9449 section
    11.1). Thread-safe, in-process (a replica keeps its own; see docs/dpop.md for several replicas).

    Bounded memory: at most ``max_entries`` entries of a fixed size (a 128-bit hash of the key, not
    the key itself). When it holds ``max_entries`` unexpired entries it fails closed: the new proof is
    refused with :class:`~authchain.errors.ReplayCacheFullError` rather than a live ``jti`` being
    forgotten, which would let that proof be replayed. That error is a ``CapacityError`` (HTTP 503,
    retry later), not a ``ReplayError`` nor any ``VerificationError``: nothing is wrong with the
    proof, and an ``except ReplayError`` does not catch it. Size the cache to the peak proof rate
    times the acceptance window; pass ``expected_jkt`` to
    :func:`~authchain.tokens.dpop.verify_proof` so only holders of tokens consume entries.

    ``window`` is the longest retention the cache accepts: an entry that would need to be kept longer
    means the verifier's acceptance window is wider than the cache was sized for, a configuration
    error.
    """

    __slots__ = ("max_entries", "window", "_seen", "_expiry", "_lock")

    def __init__(self, max_entries: int = 100_000, window: int = 300) -> None:
        if max_entries < 1 or window < 1:
            raise ConfigurationError("replay cache max_entries and window must be positive")
        self.max_entries = max_entries
        self.window = window
        # A digest is in ``_seen`` exactly when it is in the ``_expiry`` heap: a key is inserted only
        # when absent and both are removed together, so the heap never holds stale entries.
        self._seen: dict[bytes, int] = {}
        self._expiry: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()

    def check_and_store(self, key: str, expires_at: int, now: int) -> None:
        """Record ``key`` until ``expires_at``, or raise if it is already held.

        Raises:
            ReplayError: ``key`` is held: the proof is a replay.
            ReplayCacheFullError: the cache is full of unexpired entries (a ``CapacityError``, not a
                ``ReplayError``: the same proof may be accepted once entries expire).
            ConfigurationError: ``expires_at`` is more than ``window`` seconds ahead.
        """
        if expires_at - now > self.window:
            raise ConfigurationError(
                f"replay entry must be kept {expires_at - now} s, beyond the cache window of "
                f"{self.window} s; widen the window or narrow the proof acceptance window"
            )
        # Fixed-size entries whatever the key's length. surrogatepass: a JSON string may carry a lone
        # surrogate, which must hash rather than raise.
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:16]
        with self._lock:
            self._evict(now)
            if digest in self._seen:
                raise ReplayError("DPoP proof jti was already used")
            if expires_at + _RETENTION_SLACK < now:
                return  # already past its window: nothing could be replayed within it
            if len(self._seen) >= self.max_entries:
                raise ReplayCacheFullError(
                    f"replay cache holds {self.max_entries} unexpired proofs; refusing rather than "
                    "forgetting one"
                )
            self._seen[digest] = expires_at
            heapq.heappush(self._expiry, (expires_at, digest))

    def _evict(self, now: int) -> None:
        heap = self._expiry
        horizon = now - _RETENTION_SLACK
        while heap and heap[0][0] < horizon:
            _, digest = heapq.heappop(heap)
            del self._seen[digest]

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


# --------------------------------------------------------------------------------------------------
# Server-provided nonces (RFC 9449 section 8).


class NonceSource:
    """Stateless server nonces: ``base64url(step || HMAC-SHA-256(secret, context || step)[:16])``
    where ``step = now // lifetime``.

    A nonce is accepted during its own step and the next one, so a client that just fetched one is not
    refused at a step boundary (a nonce lives between ``lifetime`` and ``2 * lifetime`` seconds).
    Replicas that share the secret accept each other's nonces with no shared state. The nonce also
    bounds the proof's creation time by the server's clock (RFC 9449 section 4.3 (11)).
    """

    __slots__ = ("_secret", "lifetime")

    # Domain separation: this MAC input can never be another Authchain signature or MAC input.
    _CONTEXT: Final = b"authchain/dpop-nonce/v1\x00"
    _MAC_BYTES: Final = 16
    _ENCODED_LENGTH: Final = 32  # base64url of 8 + 16 bytes

    def __init__(self, secret: bytes, *, lifetime: int = 300) -> None:
        if len(secret) < 32:
            raise ConfigurationError("nonce secret must be at least 32 bytes")
        if lifetime < 1:
            raise ConfigurationError("nonce lifetime must be positive")
        self._secret = bytes(secret)
        self.lifetime = lifetime

    @classmethod
    def generate(cls, *, lifetime: int = 300) -> NonceSource:
        """A source with a fresh random secret (one process, or share the secret across replicas)."""
        return cls(secrets.token_bytes(32), lifetime=lifetime)

    def _mac(self, step_bytes: bytes) -> bytes:
        mac = hmac.new(self._secret, self._CONTEXT + step_bytes, hashlib.sha256).digest()
        return mac[: self._MAC_BYTES]

    def current(self, now: int) -> str:
        """The nonce to send in ``DPoP-Nonce`` at ``now`` (RFC 9449 section 8.1 NQCHAR-safe)."""
        step_bytes = (now // self.lifetime).to_bytes(8, "big", signed=True)
        return b64url_encode(step_bytes + self._mac(step_bytes))

    def check(self, nonce: str, now: int) -> None:
        """Return if ``nonce`` is current or from the previous step; otherwise raise
        :class:`DPoPNonceError` carrying the nonce to send back (RFC 9449 section 8, ``use_dpop_nonce``)."""
        if not isinstance(nonce, str) or len(nonce) != self._ENCODED_LENGTH:
            raise DPoPNonceError("DPoP nonce is not one this server issued", self.current(now))
        try:
            raw = b64url_decode(nonce)
        except MalformedError as exc:
            raise DPoPNonceError(
                "DPoP nonce is not one this server issued", self.current(now)
            ) from exc
        step_bytes, mac = raw[:8], raw[8:]
        step = int.from_bytes(step_bytes, "big", signed=True)
        if not hmac.compare_digest(mac, self._mac(step_bytes)):
            raise DPoPNonceError("DPoP nonce is not one this server issued", self.current(now))
        current_step = now // self.lifetime
        if step not in (current_step, current_step - 1):
            raise DPoPNonceError("DPoP nonce has expired", self.current(now))


# --------------------------------------------------------------------------------------------------
# Creating proofs.


def create_proof(
    key: SigningKey,
    *,
    htm: str,
    htu: str,
    now: int,
    access_token: str | None = None,
    nonce: str | None = None,
    jti: str | None = None,
) -> str:
    """A DPoP proof for one request (RFC 9449 section 4.2).

    The header carries only ``typ``, ``alg`` and the RFC 7638 members of the public key, so every proof
    a key makes has the same header bytes (verifiers cache by them). ``htu`` is sent normalised, which
    drops its query and fragment as section 4.2 requires. ``ath`` (section 4.2, 9) is added when the
    proof accompanies a token; ``jti`` defaults to 128 random bits.
    """
    if not isinstance(htm, str) or not htm or len(htm) > _MAX_HTM_LENGTH:
        raise DPoPMethodError("htm must be an HTTP method name")
    header = {"typ": DPOP_TYP, "alg": key.alg, "jwk": key.public.to_jwk(with_kid=False)}
    claims: dict[str, Any] = {
        "jti": jti if jti is not None else b64url_encode(secrets.token_bytes(_JTI_BYTES)),
        "htm": htm,
        "htu": normalize_htu(htu),
        "iat": now,
    }
    if access_token is not None:
        claims["ath"] = sha256_b64url(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    return sign_compact(header, claims, key)


# --------------------------------------------------------------------------------------------------
# Verifying proofs.


class _ProofHeader:
    """A decoded proof header, cached by its encoded bytes. The key is imported on first use, so a
    header is never trusted for more than its bytes say, and a refused import is never cached."""

    __slots__ = ("typ", "alg", "_jwk", "_key")

    def __init__(self, header: dict[str, Any]) -> None:
        self.typ: object = header.get("typ")
        self.alg: str = header["alg"]
        self._jwk: object = header.get("jwk")
        self._key: PublicKey | None = None

    def key(self) -> PublicKey:
        key = self._key
        if key is None:
            if not isinstance(self._jwk, dict):
                raise InvalidKeyError("DPoP proof header has no 'jwk' public key")
            # PublicKey.from_jwk refuses private members (RFC 9449 section 4.3 (7)), unsupported key
            # types, and points that are not on the curve. Two threads racing here compute the same
            # key; either assignment is correct.
            key = PublicKey.from_jwk(self._jwk)
            self._key = key
        return key


@functools.lru_cache(maxsize=_HEADER_CACHE_SIZE)
def _decode_header(encoded: str) -> _ProofHeader:
    # One implementation of the JWS header checks: parse_compact's (size, base64url, strict JSON
    # object, ``alg`` allow-list, no ``crit``), run on the header segment with an empty payload and
    # signature.
    return _ProofHeader(
        parse_compact(encoded + "..", max_bytes=MAX_HEADER_BYTES + 2).unverified_header
    )


def _optional_ascii(claims: dict[str, Any], name: str, limit: int) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isascii():
        raise ClaimError(f"DPoP proof claim {name!r} must be a non-empty ASCII string")
    return value


def verify_proof(
    proof: str,
    *,
    htm: str,
    htu: str,
    now: int,
    replay_cache: ReplayCache | None,
    access_token: str | None = None,
    expected_jkt: str | None = None,
    nonce: str | None = None,
    nonce_source: NonceSource | None = None,
    iat_window: int = 60,
    iat_skew: int = 5,
) -> DPoPProof:
    """Verify one DPoP proof against the request it came with, or raise.

    ``htm``/``htu`` are the request's method and URL (query and fragment are ignored). With
    ``access_token`` (the task token presented with the proof) the proof must carry its ``ath``; with
    ``expected_jkt`` (that token's ``cnf.jkt``, or a registered key's thumbprint) the proof's key must
    be that key. A server that requires a nonce passes either the exact ``nonce`` it handed out or a
    ``nonce_source``. A proof is accepted from ``iat_window`` seconds after its ``iat`` back to
    ``iat_skew`` seconds before it; its ``jti`` is remembered by ``replay_cache`` (``None`` only where
    replay is prevented otherwise) until the window closes.

    Raises: :class:`MalformedError`/:class:`SizeLimitError` (not a well-formed proof),
    :class:`ClaimError` (a claim missing or of the wrong form), :class:`TokenTypeError`,
    :class:`AlgorithmError`, :class:`InvalidKeyError` (no usable public ``jwk``, or a private one),
    :class:`SignatureError`, :class:`DPoPMethodError`, :class:`DPoPURLError`,
    :class:`DPoPNonceError` (carrying the nonce to send back), :class:`ExpiredError` /
    :class:`IssuedInFutureError` (``iat`` outside the window), :class:`DPoPAccessTokenHashError`,
    :class:`KeyBindingError`, :class:`ReplayError`. Every one of them concerns the proof, so the HTTP
    layer answers ``invalid_dpop_proof`` (``use_dpop_nonce`` for the nonce error), RFC 9449 section 7.1.
    The caller knows which proof this is (the requester's, or one a resource server reports) and
    names it on the error with :meth:`~authchain.errors.AuthchainError.about`.

    Also :class:`ReplayCacheFullError` (a ``CapacityError``: nothing is wrong with the proof, retry
    later) and :class:`ConfigurationError` (the windows or nonce arguments are inconsistent).
    """
    if nonce is not None and nonce_source is not None:
        raise ConfigurationError("pass either an expected nonce or a nonce source, not both")
    if replay_cache is not None and iat_window + iat_skew > replay_cache.window:
        raise ConfigurationError(
            "the proof acceptance window is wider than the replay cache window"
        )

    # RFC 9449 4.3 (1): at most one DPoP header field. Counting header fields is the HTTP layer's job;
    # a comma-joined list of proofs is refused below, since "," is not base64url.

    # RFC 9449 4.3 (2): a single, well-formed JWT (RFC 7515 section 7.1 compact serialisation).
    if not isinstance(proof, str):
        raise MalformedError("DPoP proof must be a string")
    if len(proof) > MAX_PROOF_BYTES:
        raise SizeLimitError(f"DPoP proof is {len(proof)} bytes, limit {MAX_PROOF_BYTES}")
    segments = proof.split(".")
    if len(segments) != 3:
        raise MalformedError("DPoP proof is not a compact JWS (three dot-separated segments)")
    h64, p64, s64 = segments
    header = _decode_header(h64)  # RFC 9449 4.3 (5) is enforced here first; see step (5) below.
    unverified_claims = json_loads_strict(b64url_decode(p64, max_len=MAX_PROOF_BYTES))
    if not isinstance(unverified_claims, dict):
        raise MalformedError("DPoP proof payload is not a JSON object")
    signature = b64url_decode(s64, max_len=_MAX_SIGNATURE_CHARS)

    # RFC 9449 4.3 (3): the claims section 4.2 requires, of the right types.
    jti = unverified_claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise ClaimError("DPoP proof claim 'jti' is missing or not a non-empty string")
    claimed_htm = unverified_claims.get("htm")
    if not isinstance(claimed_htm, str) or not claimed_htm or len(claimed_htm) > _MAX_HTM_LENGTH:
        raise ClaimError("DPoP proof claim 'htm' is missing or not an HTTP method")
    claimed_htu = unverified_claims.get("htu")
    if not isinstance(claimed_htu, str) or not claimed_htu:
        raise ClaimError("DPoP proof claim 'htu' is missing or not a string")
    iat = unverified_claims.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise ClaimError("DPoP proof claim 'iat' is missing or not an integer")
    ath = _optional_ascii(unverified_claims, "ath", _MAX_ATH_LENGTH)
    claimed_nonce = _optional_ascii(unverified_claims, "nonce", _MAX_NONCE_LENGTH)

    # RFC 9449 4.3 (4): explicit typing, RFC 8725 section 3.11.
    if header.typ != DPOP_TYP:
        raise TokenTypeError(f"DPoP proof 'typ' must be {DPOP_TYP!r}")

    # RFC 9449 4.3 (5): an asymmetric algorithm on the allow-list. parse_compact already refused
    # anything else (``none`` and HMAC never get past parsing, CONVENTIONS.md); restated here.
    if header.alg not in ALLOWED_ALGORITHMS:  # pragma: no cover - refused while parsing
        raise AlgorithmError(f"algorithm {header.alg!r} is not allowed")

    # RFC 9449 4.3 (7): the jwk is a public key. Checked before (6) because the key must be imported
    # to verify with it, and the import refuses private members.
    key = header.key()

    # RFC 9449 4.3 (6): the signature verifies with the jwk. The header's alg must be the key's own
    # (RFC 8725 section 3.1): an ES256 label on an Ed25519 key is refused, not tried.
    if header.alg != key.alg:
        raise AlgorithmError(f"proof algorithm {header.alg!r} does not match its jwk")
    key.verify(signature, (h64 + "." + p64).encode("ascii"))

    # RFC 9449 4.3 (8): htm is the request's method (RFC 9110 section 9.1: case-sensitive).
    if claimed_htm != htm:
        raise DPoPMethodError(f"DPoP proof is for method {claimed_htm!r}, the request is {htm!r}")

    # RFC 9449 4.3 (9): htu is the request's URI, ignoring query and fragment, compared after
    # syntax- and scheme-based normalisation (RFC 3986 sections 6.2.2, 6.2.3).
    request_htu = normalize_htu(htu)
    if claimed_htu != request_htu and normalize_htu(claimed_htu) != request_htu:
        raise DPoPURLError(f"DPoP proof is for another URL than {request_htu!r}")

    # RFC 9449 4.3 (10) and section 8: the nonce, when the server requires one.
    if nonce_source is not None:
        if claimed_nonce is None:
            raise DPoPNonceError("DPoP proof must carry a server nonce", nonce_source.current(now))
        nonce_source.check(claimed_nonce, now)
    elif nonce is not None:
        if claimed_nonce is None or not hmac.compare_digest(
            claimed_nonce.encode("ascii"), nonce.encode("utf-8", "surrogatepass")
        ):
            raise DPoPNonceError("DPoP proof must carry the server's current nonce", nonce)

    # RFC 9449 4.3 (11) and section 11.1: created within the acceptance window.
    if iat > now + iat_skew:
        raise IssuedInFutureError("DPoP proof 'iat' is in the future")
    if iat < now - iat_window:
        raise ExpiredError(f"DPoP proof is older than {iat_window} s")

    # RFC 9449 4.3 (12) and section 9: bound to the presented token, and made by the key the token is
    # bound to.
    if access_token is not None:
        if ath is None:
            raise DPoPAccessTokenHashError("DPoP proof carries no 'ath' for the presented token")
        if not access_token.isascii() or not hmac.compare_digest(ath, sha256_b64url(access_token)):
            raise DPoPAccessTokenHashError("DPoP proof 'ath' is not the presented token's hash")
    thumbprint = key.thumbprint
    if expected_jkt is not None and thumbprint != expected_jkt:
        raise KeyBindingError("DPoP proof is signed by a key other than the token's cnf.jkt")

    # RFC 9449 section 11.1: the jti, last, so that only a proof that passed every other check
    # consumes it. It is kept until the proof would fall out of the acceptance window.
    if replay_cache is not None:
        replay_cache.check_and_store(thumbprint + ":" + jti, iat + iat_window, now)

    return DPoPProof(
        jwk=key,
        thumbprint=thumbprint,
        jti=jti,
        htm=claimed_htm,
        htu=claimed_htu,
        iat=iat,
        ath=ath,
        nonce=claimed_nonce,
    )
