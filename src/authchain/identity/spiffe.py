"""SPIFFE IDs and trust domains, parsed exactly as the SPIFFE-ID standard says.

A SPIFFE ID names the workload that executed an action, so it is read on every hop of every task.
Parsing is therefore split in two: a single precompiled regular expression accepts every valid ID
(the common case) and a small LRU cache skips even that for IDs seen recently; only when the
expression rejects the input does a slower, step-by-step diagnosis run to name the exact problem.
Both paths implement the same grammar, and a property test checks that they agree.

Everything the standard leaves lenient is refused here, because two spellings of one identity would
let an attacker split or merge audit trails: the scheme and trust domain must already be lowercase,
and percent-encoding is never decoded.

Reference: SPIFFE-ID standard (github.com/spiffe/spiffe, ``standards/SPIFFE-ID.md``), sections 2 to 2.4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from authchain.errors import InvalidSpiffeIdError

__all__ = [
    "SPIFFE_SCHEME",
    "MAX_SPIFFE_ID_LENGTH",
    "MAX_TRUST_DOMAIN_LENGTH",
    "TrustDomain",
    "SpiffeId",
]

# SPIFFE-ID section 2: "Valid SPIFFE IDs MUST have the scheme set to `spiffe`".
SPIFFE_SCHEME = "spiffe"
_PREFIX = "spiffe://"

# SPIFFE-ID section 2.3: implementations MUST support URIs up to 2048 bytes and SHOULD NOT generate
# longer ones. We refuse longer ones so that no input can make parsing or logging unbounded. Every
# valid character is ASCII, so for any input that can be valid, characters and bytes coincide.
MAX_SPIFFE_ID_LENGTH = 2048

# SPIFFE-ID section 2.3, after RFC 3986 section 3.2.2: the host, and so the trust domain name, is at
# most 255 bytes.
MAX_TRUST_DOMAIN_LENGTH = 255

# SPIFFE-ID section 2.1: the trust domain is lowercase letters, digits, ".", "-" and "_" only.
_TD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
# SPIFFE-ID section 2.2: path segments are letters of either case, digits, ".", "-" and "_" only.
_SEGMENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_")

# The fast path. Explicit ASCII ranges (never \w or \d, which match non-ASCII letters and digits)
# and fullmatch (never "$", which also matches before a trailing newline). The negative lookahead
# refuses the relative segments "." and ".." (SPIFFE-ID section 2.2).
_TD_RE = re.compile(r"[a-z0-9._-]{1,255}")
_PATH_RE = re.compile(r"(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9._-]+)*")
_ID_RE = re.compile(r"spiffe://([a-z0-9._-]{1,255})((?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9._-]+)*)")
# RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), followed by ":".
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# A scheme is echoed back in an error only when it is short; it is attacker-controlled text.
_MAX_ECHOED_SCHEME = 32

# Every SPIFFE ID message starts with this; trust domain messages start with "trust domain".
_ID_ERROR = "invalid SPIFFE ID: "


@dataclass(frozen=True, slots=True)
class TrustDomain:
    """A trust domain: one authority's realm, named like ``example.org`` (SPIFFE-ID section 2.1).

    Construct it with :meth:`parse`; constructing it directly validates the name as well.
    """

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TD_RE.fullmatch(self.name):
            problem = _trust_domain_name_problem(self.name)
            raise InvalidSpiffeIdError(problem or "trust domain does not match the grammar")

    @classmethod
    def parse(cls, text: str) -> TrustDomain:
        """Parse a bare trust domain name (``example.org``) or its ID (``spiffe://example.org``).

        The ID form must have no path: a workload's ID is not a trust domain, and silently taking
        its trust domain would hide a configuration mistake.

        Raises:
            InvalidSpiffeIdError: with a message naming the problem.
        """
        if not isinstance(text, str):
            raise InvalidSpiffeIdError(f"trust domain must be a string, not {type(text).__name__}")
        if "://" in text:
            spiffe_id = SpiffeId.parse(text)
            if spiffe_id.path:
                index = len(_PREFIX) + len(spiffe_id.trust_domain.name)
                raise InvalidSpiffeIdError(
                    f'trust domain ID must not have a path ("/" at index {index})'
                )
            return spiffe_id.trust_domain
        return cls(text)

    def id_string(self) -> str:
        """The SPIFFE ID of the trust domain itself, ``spiffe://<name>`` (SPIFFE-ID section 3.1)."""
        return _PREFIX + self.name

    def spiffe_id(self, *segments: str) -> SpiffeId:
        """The SPIFFE ID in this trust domain with the given path segments."""
        return SpiffeId.from_segments(self, *segments)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A SPIFFE ID: ``spiffe://<trust domain><path>`` (SPIFFE-ID section 2).

    ``path`` is empty or starts with ``/``; ``str()`` gives back exactly the parsed text, because
    only the one canonical spelling of an ID is accepted.
    """

    trust_domain: TrustDomain
    path: str

    def __post_init__(self) -> None:
        if not isinstance(self.trust_domain, TrustDomain):
            raise InvalidSpiffeIdError(
                f"{_ID_ERROR}trust_domain must be a TrustDomain, "
                f"not {type(self.trust_domain).__name__}"
            )
        if not isinstance(self.path, str):
            raise InvalidSpiffeIdError(
                f"{_ID_ERROR}path must be a string, not {type(self.path).__name__}"
            )
        if len(_PREFIX) + len(self.trust_domain.name) + len(self.path) > MAX_SPIFFE_ID_LENGTH:
            raise InvalidSpiffeIdError(f"{_ID_ERROR}longer than {MAX_SPIFFE_ID_LENGTH} bytes")
        if not _PATH_RE.fullmatch(self.path):
            if self.path[:1] != "/":
                raise InvalidSpiffeIdError(f'{_ID_ERROR}path must be empty or start with "/"')
            # Report indexes as they would be in the full ID, like parse() does.
            offset = len(_PREFIX) + len(self.trust_domain.name)
            problem = _path_problem(self.path, offset)
            raise InvalidSpiffeIdError(_ID_ERROR + (problem or "invalid path"))

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        """Parse a SPIFFE ID, refusing everything the SPIFFE-ID standard does not allow.

        Raises:
            InvalidSpiffeIdError: with a message naming the first problem found, in this order:
                type, length, scheme, authority (userinfo, port, empty, length, characters),
                query or fragment, path (empty, dot and trailing segments, characters).
                Indexes in messages are 0-based positions in ``text``.
        """
        if not isinstance(text, str):
            # Checked before the cache, which would raise TypeError on unhashable input.
            raise InvalidSpiffeIdError(f"{_ID_ERROR}expected a string, not {type(text).__name__}")
        return _parse_cached(text)

    @classmethod
    def from_segments(cls, trust_domain: TrustDomain | str, *segments: str) -> SpiffeId:
        """Build an ID from a trust domain and path segments, each validated on its own.

        Raises:
            InvalidSpiffeIdError: if the trust domain or a segment is invalid; a segment may not
                contain ``/``, so one argument is always exactly one segment.
        """
        td = (
            trust_domain
            if isinstance(trust_domain, TrustDomain)
            else TrustDomain.parse(trust_domain)
        )
        for segment in segments:
            if not isinstance(segment, str):
                raise InvalidSpiffeIdError(
                    f"{_ID_ERROR}path segment must be a string, not {type(segment).__name__}"
                )
            if "/" in segment:
                raise InvalidSpiffeIdError(f'{_ID_ERROR}path segment must not contain "/"')
        return cls(td, "".join("/" + segment for segment in segments))

    @property
    def segments(self) -> tuple[str, ...]:
        """The path segments, ``()`` for an ID with no path."""
        return tuple(self.path[1:].split("/")) if self.path else ()

    def is_member_of(self, trust_domain: TrustDomain) -> bool:
        """Whether this ID belongs to ``trust_domain`` (exact name comparison)."""
        return self.trust_domain == trust_domain

    def __str__(self) -> str:
        return _PREFIX + self.trust_domain.name + self.path


# Parsing runs on every hop and the same few IDs recur, so recent results are kept. Only successful
# parses are cached (lru_cache does not cache exceptions), so invalid input cannot evict anything
# useful for long, and the bound keeps memory at worst a few megabytes.
@lru_cache(maxsize=1024)
def _parse_cached(text: str) -> SpiffeId:
    if len(text) <= MAX_SPIFFE_ID_LENGTH:
        match = _ID_RE.fullmatch(text)
        if match is not None:
            return _already_validated(match[1], match[2])
    problem = _id_problem(text)
    # The diagnosis implements the same grammar as _ID_RE and must find a problem; if it ever did
    # not, refusing is still the safe answer.
    raise InvalidSpiffeIdError(_ID_ERROR + (problem or "does not match the SPIFFE ID grammar"))


def _already_validated(trust_domain: str, path: str) -> SpiffeId:
    """Build an ID from parts that _ID_RE has just accepted, skipping __post_init__.

    _ID_RE checks everything the two __post_init__ methods check (and the length was checked
    before it), so running them again would only double the cost of a cache miss (about 2.7 us
    instead of 1 us). object.__setattr__ is how a frozen dataclass's own __init__ sets fields.
    """
    td = object.__new__(TrustDomain)
    object.__setattr__(td, "name", trust_domain)
    spiffe_id = object.__new__(SpiffeId)
    object.__setattr__(spiffe_id, "trust_domain", td)
    object.__setattr__(spiffe_id, "path", path)
    return spiffe_id


# --------------------------------------------------------------------------------------------------
# The slow path: name the first problem. Each function returns a message, or None if it finds none.


def _show(char: str) -> str:
    """A character as it may safely appear in a one-line message."""
    if "!" <= char <= "~" and char not in '"\\':
        return f'"{char}"'
    return f"U+{ord(char):04X}"


def _id_problem(text: str) -> str | None:
    # SPIFFE-ID section 2.3: size first, so that nothing below works on unbounded input.
    if not text:
        return "empty string"
    if len(text) > MAX_SPIFFE_ID_LENGTH:
        return f"longer than {MAX_SPIFFE_ID_LENGTH} bytes"

    # SPIFFE-ID section 2: the scheme is "spiffe"; we accept only its lowercase spelling.
    scheme_match = _SCHEME_RE.match(text)
    if scheme_match is None:
        return f'missing the "{_PREFIX}" prefix'
    scheme = scheme_match[1]
    if scheme.lower() != SPIFFE_SCHEME:
        if len(scheme) <= _MAX_ECHOED_SCHEME:
            return f'scheme must be "{SPIFFE_SCHEME}", not "{scheme}"'
        return f'scheme must be "{SPIFFE_SCHEME}"'
    if scheme != SPIFFE_SCHEME:
        return f'scheme must be lowercase "{SPIFFE_SCHEME}"'
    # RFC 3986 section 3.2: the authority, which holds the trust domain, is introduced by "//".
    if not text.startswith(_PREFIX):
        return f'"{SPIFFE_SCHEME}:" must be followed by "//" and a trust domain'

    # RFC 3986 section 3.2: the authority ends at the first "/", "?" or "#".
    start = len(_PREFIX)
    end = start
    while end < len(text) and text[end] not in "/?#":
        end += 1
    problem = _authority_problem(text[start:end], start)
    if problem is not None:
        return problem

    # SPIFFE-ID section 2: no query and no fragment, even empty ones.
    rest = text[end:]
    for index, char in enumerate(rest, end):
        if char == "?":
            return f'query is not allowed ("?" at index {index})'
        if char == "#":
            return f'fragment is not allowed ("#" at index {index})'

    return _path_problem(rest, end)


def _authority_problem(authority: str, offset: int) -> str | None:
    # SPIFFE-ID section 2.1: "The userinfo and port parts of the authority component MUST be empty"
    # (and so their delimiters "@" and ":" must be absent). Userinfo is looked for first because it
    # moves where the host starts; a port's ":" is found by the character scan below.
    at = authority.find("@")
    if at >= 0:
        return f'trust domain must not include userinfo ("@" at index {offset + at})'
    return _trust_domain_name_problem(authority, offset)


def _trust_domain_name_problem(name: object, offset: int = 0) -> str | None:
    if not isinstance(name, str):
        return f"trust domain must be a string, not {type(name).__name__}"
    # SPIFFE-ID section 2.1: the host MUST NOT be empty.
    if not name:
        return "trust domain is empty"
    # SPIFFE-ID section 2.3: at most 255 bytes.
    if len(name) > MAX_TRUST_DOMAIN_LENGTH:
        return f"trust domain is longer than {MAX_TRUST_DOMAIN_LENGTH} bytes"
    # SPIFFE-ID section 2.1: lowercase, [a-z0-9.-_] only, no percent-encoding.
    for index, char in enumerate(name, offset):
        if char in _TD_CHARS:
            continue
        if char == "%":
            return f'trust domain must not contain percent-encoding ("%" at index {index})'
        if "A" <= char <= "Z":
            return f"trust domain must be lowercase ({_show(char)} at index {index})"
        if char == "@":
            return f'trust domain must not include userinfo ("@" at index {index})'
        if char == ":":
            return f'trust domain must not include a port (":" at index {index})'
        return (
            f"trust domain contains {_show(char)} at index {index}; "
            'only a-z, 0-9, ".", "-" and "_" are allowed'
        )
    return None


def _path_problem(path: str, offset: int) -> str | None:
    """Diagnose a path that is empty or starts with "/" (SPIFFE-ID section 2.2)."""
    if not path:
        return None
    segments = path[1:].split("/")
    last = len(segments) - 1
    index = offset + 1  # where the current segment starts in the full ID
    for number, segment in enumerate(segments):
        if not segment:
            # SPIFFE-ID section 2.2: no trailing "/", no empty segments.
            if number == last:
                return 'path must not end with "/"'
            return f'path must not contain an empty segment ("//" at index {index - 1})'
        if segment in (".", ".."):
            # SPIFFE-ID section 2.2: no relative path modifiers.
            return f'path must not contain a "{segment}" segment (at index {index})'
        for char_index, char in enumerate(segment, index):
            if char in _SEGMENT_CHARS:
                continue
            if char == "%":
                return f'path must not contain percent-encoding ("%" at index {char_index})'
            return (
                f"path contains {_show(char)} at index {char_index}; "
                'only letters, 0-9, ".", "-" and "_" are allowed'
            )
        index += len(segment) + 1
    return None
