"""SPIFFE IDs and trust domains against the SPIFFE-ID standard (spiffe/spiffe, standards/SPIFFE-ID.md).

The error table pins the exact message for each way an ID can be wrong; the properties check that
every valid ID round-trips, that any inserted bad character is refused with InvalidSpiffeIdError and
nothing else, and that the parser agrees with a reference written directly from the standard's rules.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from authchain.errors import InvalidSpiffeIdError, VerificationError
from authchain.identity import spiffe
from authchain.identity.spiffe import (
    MAX_SPIFFE_ID_LENGTH,
    MAX_TRUST_DOMAIN_LENGTH,
    SpiffeId,
    TrustDomain,
)

PREFIX = "spiffe://"
# The longest ID the standard requires us to support, and its trust-domain counterpart.
LONGEST_ID = "spiffe://example.org/" + "a" * (MAX_SPIFFE_ID_LENGTH - len("spiffe://example.org/"))
LONGEST_TD = "a" * MAX_TRUST_DOMAIN_LENGTH

TD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-_"
SEGMENT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_"

PATH_CHARS_HINT = '; only letters, 0-9, ".", "-" and "_" are allowed'
TD_CHARS_HINT = '; only a-z, 0-9, ".", "-" and "_" are allowed'


def _case(text: str, message: str, name: str) -> object:
    return pytest.param(text, "invalid SPIFFE ID: " + message, id=name)


INVALID_IDS = [
    _case("", "empty string", "empty-string"),
    # SPIFFE-ID section 2: the scheme is "spiffe", and we accept only its lowercase spelling.
    _case("example.org/workload", 'missing the "spiffe://" prefix', "missing-scheme"),
    _case("//example.org/workload", 'missing the "spiffe://" prefix', "missing-scheme-relative"),
    _case(" spiffe://example.org", 'missing the "spiffe://" prefix', "leading-space"),
    _case("SPIFFE://example.org/workload", 'scheme must be lowercase "spiffe"', "uppercase-scheme"),
    _case(
        "Spiffe://example.org/workload", 'scheme must be lowercase "spiffe"', "mixed-case-scheme"
    ),
    _case("https://example.org/workload", 'scheme must be "spiffe", not "https"', "wrong-scheme"),
    _case("spiffe+x://example.org", 'scheme must be "spiffe", not "spiffe+x"', "scheme-suffix"),
    _case("a" * 33 + "://example.org", 'scheme must be "spiffe"', "long-wrong-scheme-not-echoed"),
    _case(
        "spiffe:example.org/workload",
        '"spiffe:" must be followed by "//" and a trust domain',
        "missing-slashes",
    ),
    _case(
        "spiffe:/example.org/workload",
        '"spiffe:" must be followed by "//" and a trust domain',
        "missing-one-slash",
    ),
    # SPIFFE-ID section 2.1: the trust domain.
    _case("spiffe://", "trust domain is empty", "empty-trust-domain"),
    _case("spiffe:///workload", "trust domain is empty", "empty-trust-domain-with-path"),
    _case(
        "spiffe://Example.org/workload",
        'trust domain must be lowercase ("E" at index 9)',
        "uppercase-trust-domain",
    ),
    _case(
        "spiffe://example.ORG",
        'trust domain must be lowercase ("O" at index 17)',
        "uppercase-trust-domain-suffix",
    ),
    _case(
        "spiffe://exa mple.org/workload",
        "trust domain contains U+0020 at index 12" + TD_CHARS_HINT,
        "space-in-trust-domain",
    ),
    _case(
        "spiffe://ex!mple.org/workload",
        'trust domain contains "!" at index 11' + TD_CHARS_HINT,
        "bang-in-trust-domain",
    ),
    _case(
        "spiffe://exämple.org/workload",
        "trust domain contains U+00E4 at index 11" + TD_CHARS_HINT,
        "non-ascii-trust-domain",
    ),
    _case(
        "spiffe://[::1]/workload",
        'trust domain contains "[" at index 9' + TD_CHARS_HINT,
        "ipv6-trust-domain",
    ),
    _case(
        "spiffe://example.org:8443/workload",
        'trust domain must not include a port (":" at index 20)',
        "port",
    ),
    _case(
        "spiffe://example.org:/workload",
        'trust domain must not include a port (":" at index 20)',
        "empty-port",
    ),
    _case(
        "spiffe://alice@example.org/workload",
        'trust domain must not include userinfo ("@" at index 14)',
        "userinfo",
    ),
    _case(
        "spiffe://alice:secret@example.org/workload",
        'trust domain must not include userinfo ("@" at index 21)',
        "userinfo-with-password-is-not-reported-as-port",
    ),
    _case(
        "spiffe://ex%61mple.org/workload",
        'trust domain must not contain percent-encoding ("%" at index 11)',
        "percent-encoding-in-trust-domain",
    ),
    _case(
        "spiffe://" + "a" * (MAX_TRUST_DOMAIN_LENGTH + 1) + "/workload",
        "trust domain is longer than 255 bytes",
        "over-long-trust-domain",
    ),
    # SPIFFE-ID section 2: no query and no fragment, not even empty ones.
    _case(
        "spiffe://example.org/workload?x=1",
        'query is not allowed ("?" at index 29)',
        "query",
    ),
    _case(
        "spiffe://example.org/workload?", 'query is not allowed ("?" at index 29)', "empty-query"
    ),
    _case("spiffe://example.org?x=1", 'query is not allowed ("?" at index 20)', "query-no-path"),
    _case(
        "spiffe://example.org/workload#frag",
        'fragment is not allowed ("#" at index 29)',
        "fragment",
    ),
    _case(
        "spiffe://example.org#frag",
        'fragment is not allowed ("#" at index 20)',
        "fragment-no-path",
    ),
    _case(
        "spiffe://example.org/workload?#frag",
        'query is not allowed ("?" at index 29)',
        "query-before-fragment",
    ),
    # SPIFFE-ID section 2.2: the path.
    _case(
        "spiffe://example.org/work%20load",
        'path must not contain percent-encoding ("%" at index 25)',
        "percent-encoding-in-path",
    ),
    _case(
        "spiffe://example.org//workload",
        'path must not contain an empty segment ("//" at index 20)',
        "empty-first-segment",
    ),
    _case(
        "spiffe://example.org/a//b",
        'path must not contain an empty segment ("//" at index 22)',
        "empty-middle-segment",
    ),
    _case(
        "spiffe://example.org/./workload",
        'path must not contain a "." segment (at index 21)',
        "dot-segment",
    ),
    _case(
        "spiffe://example.org/workload/.",
        'path must not contain a "." segment (at index 30)',
        "dot-segment-last",
    ),
    _case(
        "spiffe://example.org/../workload",
        'path must not contain a ".." segment (at index 21)',
        "dot-dot-segment",
    ),
    _case(
        "spiffe://example.org/a/..",
        'path must not contain a ".." segment (at index 23)',
        "dot-dot-segment-last",
    ),
    _case("spiffe://example.org/", 'path must not end with "/"', "root-trailing-slash"),
    _case("spiffe://example.org/workload/", 'path must not end with "/"', "trailing-slash"),
    _case(
        "spiffe://example.org/work load",
        "path contains U+0020 at index 25" + PATH_CHARS_HINT,
        "space-in-path",
    ),
    _case(
        "spiffe://example.org/work*",
        'path contains "*" at index 25' + PATH_CHARS_HINT,
        "star-in-path",
    ),
    _case(
        "spiffe://example.org/pa:th",
        'path contains ":" at index 23' + PATH_CHARS_HINT,
        "colon-in-path",
    ),
    _case(
        "spiffe://example.org/pa@th",
        'path contains "@" at index 23' + PATH_CHARS_HINT,
        "at-in-path",
    ),
    _case(
        "spiffe://example.org/caf\u00e9",
        "path contains U+00E9 at index 24" + PATH_CHARS_HINT,
        "non-ascii-in-path",
    ),
    _case(
        "spiffe://example.org/workload\n",
        "path contains U+000A at index 29" + PATH_CHARS_HINT,
        "trailing-newline",
    ),
    _case(
        "spiffe://example.org/a\x00b",
        "path contains U+0000 at index 22" + PATH_CHARS_HINT,
        "nul-in-path",
    ),
    _case(
        'spiffe://example.org/a"b',
        "path contains U+0022 at index 22" + PATH_CHARS_HINT,
        "quote-in-path-is-escaped",
    ),
    _case(
        "spiffe://example.org/a\\b",
        "path contains U+005C at index 22" + PATH_CHARS_HINT,
        "backslash-in-path",
    ),
    # SPIFFE-ID section 2.3: at most 2048 bytes.
    _case(LONGEST_ID + "a", "longer than 2048 bytes", "over-long-id"),
    _case("x" * 1_000_000, "longer than 2048 bytes", "huge-input-refused-before-parsing"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_IDS)
def test_invalid_spiffe_id_is_refused_with_exact_message(text: str, message: str) -> None:
    with pytest.raises(InvalidSpiffeIdError) as info:
        SpiffeId.parse(text)
    assert str(info.value) == message
    assert info.value.code == "invalid_spiffe_id"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "invalid SPIFFE ID: expected a string, not NoneType"),
        (b"spiffe://example.org", "invalid SPIFFE ID: expected a string, not bytes"),
        (["spiffe://example.org"], "invalid SPIFFE ID: expected a string, not list"),
    ],
)
def test_non_string_spiffe_id_is_refused_not_type_error(value: object, message: str) -> None:
    with pytest.raises(InvalidSpiffeIdError) as info:
        SpiffeId.parse(value)  # type: ignore[arg-type]
    assert str(info.value) == message


VALID_IDS = [
    # (text, trust domain, path, segments)
    ("spiffe://example.org", "example.org", "", ()),
    ("spiffe://example.org/workload", "example.org", "/workload", ("workload",)),
    ("spiffe://example.org/agent/planner", "example.org", "/agent/planner", ("agent", "planner")),
    # The examples of SPIFFE-ID section 2.2.
    (
        "spiffe://staging.example.com/payments/mysql",
        "staging.example.com",
        "/payments/mysql",
        ("payments", "mysql"),
    ),
    (
        "spiffe://k8s-west.example.com/ns/staging/sa/default",
        "k8s-west.example.com",
        "/ns/staging/sa/default",
        ("ns", "staging", "sa", "default"),
    ),
    (
        "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
        "example.com",
        "/9eebccd2-12bf-40a6-b262-65fe0487d453",
        ("9eebccd2-12bf-40a6-b262-65fe0487d453",),
    ),
    # SPIFFE-ID section 2.1.1 uses an underscore; section 2.1 allows dotted-quad IPv4.
    ("spiffe://trust_domain_name.example.com/a", "trust_domain_name.example.com", "/a", ("a",)),
    ("spiffe://192.168.0.1/a", "192.168.0.1", "/a", ("a",)),
    # The standard restricts characters only, not DNS label shape.
    ("spiffe://-._/a", "-._", "/a", ("a",)),
    # Path segments may use both cases, and dots anywhere except as the whole segment.
    (
        "spiffe://example.org/Agent/UPPER_case.v1-2",
        "example.org",
        "/Agent/UPPER_case.v1-2",
        ("Agent", "UPPER_case.v1-2"),
    ),
    ("spiffe://example.org/.hidden/...", "example.org", "/.hidden/...", (".hidden", "...")),
    ("spiffe://example.org/..a/a..", "example.org", "/..a/a..", ("..a", "a..")),
    # A SPIFFE ID can hold a path that spells the scheme, harmlessly, as plain segments.
    ("spiffe://example.org/spiffe", "example.org", "/spiffe", ("spiffe",)),
    # Exactly at the limits of SPIFFE-ID section 2.3.
    (LONGEST_ID, "example.org", LONGEST_ID[len("spiffe://example.org") :], ("a" * 2027,)),
    ("spiffe://" + LONGEST_TD, LONGEST_TD, "", ()),
]


@pytest.mark.parametrize(("text", "trust_domain", "path", "segments"), VALID_IDS)
def test_valid_spiffe_id_parses_into_its_parts_and_round_trips(
    text: str, trust_domain: str, path: str, segments: tuple[str, ...]
) -> None:
    parsed = SpiffeId.parse(text)
    assert parsed.trust_domain == TrustDomain(trust_domain)
    assert parsed.path == path
    assert parsed.segments == segments
    assert str(parsed) == text
    assert SpiffeId(TrustDomain(trust_domain), path) == parsed


def test_longest_id_is_exactly_the_limit() -> None:
    # Guards the table above: the boundary cases must sit exactly on the limits.
    assert len(LONGEST_ID) == MAX_SPIFFE_ID_LENGTH == 2048
    assert len(LONGEST_TD) == MAX_TRUST_DOMAIN_LENGTH == 255


def test_spiffe_id_is_member_of_its_own_trust_domain_only() -> None:
    planner = SpiffeId.parse("spiffe://example.org/agent/planner")
    assert planner.is_member_of(TrustDomain("example.org"))
    assert not planner.is_member_of(TrustDomain("other.example.org"))
    assert not planner.is_member_of(TrustDomain("example.org.evil"))


def test_spiffe_ids_are_equal_hashable_values() -> None:
    first = SpiffeId.parse("spiffe://example.org/a")
    second = SpiffeId.from_segments("example.org", "a")
    assert first == second
    assert len({first, second, SpiffeId.parse("spiffe://example.org/b")}) == 2
    with pytest.raises(AttributeError):
        first.path = "/b"  # type: ignore[misc]


def test_invalid_spiffe_id_error_is_a_verification_error() -> None:
    # Callers that refuse any hostile input catch VerificationError; a bad ID must be one.
    with pytest.raises(VerificationError):
        SpiffeId.parse("spiffe://example.org/a/../b")


def test_failed_parse_is_not_cached_so_errors_stay_errors() -> None:
    for _ in range(2):
        with pytest.raises(InvalidSpiffeIdError):
            SpiffeId.parse("spiffe://example.org/a b")


# --------------------------------------------------------------------------------------------------
# Direct construction validates too, so an invalid value object cannot exist.


@pytest.mark.parametrize(
    ("trust_domain", "path", "message"),
    [
        ("example.org", "agent", 'invalid SPIFFE ID: path must be empty or start with "/"'),
        ("example.org", "/", 'invalid SPIFFE ID: path must not end with "/"'),
        (
            "example.org",
            "/a//b",
            'invalid SPIFFE ID: path must not contain an empty segment ("//" at index 22)',
        ),
        (
            "example.org",
            "/a/../b",
            'invalid SPIFFE ID: path must not contain a ".." segment (at index 23)',
        ),
        (
            "example.org",
            "/a?b",
            'invalid SPIFFE ID: path contains "?" at index 22' + PATH_CHARS_HINT,
        ),
        ("example.org", "/" + "a" * 2028, "invalid SPIFFE ID: longer than 2048 bytes"),
    ],
)
def test_constructing_spiffe_id_with_invalid_path_is_refused(
    trust_domain: str, path: str, message: str
) -> None:
    with pytest.raises(InvalidSpiffeIdError) as info:
        SpiffeId(TrustDomain(trust_domain), path)
    assert str(info.value) == message


def test_constructing_spiffe_id_requires_a_trust_domain_object() -> None:
    with pytest.raises(InvalidSpiffeIdError) as info:
        SpiffeId("example.org", "/a")  # type: ignore[arg-type]
    assert str(info.value) == "invalid SPIFFE ID: trust_domain must be a TrustDomain, not str"


def test_from_segments_builds_one_segment_per_argument() -> None:
    built = SpiffeId.from_segments(TrustDomain("example.org"), "agent", "planner")
    assert str(built) == "spiffe://example.org/agent/planner"
    assert built.segments == ("agent", "planner")
    assert str(SpiffeId.from_segments("example.org")) == "spiffe://example.org"
    assert TrustDomain("example.org").spiffe_id("tool", "crm") == SpiffeId.parse(
        "spiffe://example.org/tool/crm"
    )


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        (("agent/planner",), 'invalid SPIFFE ID: path segment must not contain "/"'),
        (("",), 'invalid SPIFFE ID: path must not end with "/"'),
        (
            ("a", "", "b"),
            'invalid SPIFFE ID: path must not contain an empty segment ("//" at index 22)',
        ),
        ((".",), 'invalid SPIFFE ID: path must not contain a "." segment (at index 21)'),
        (("a b",), "invalid SPIFFE ID: path contains U+0020 at index 22" + PATH_CHARS_HINT),
    ],
)
def test_from_segments_refuses_invalid_segments(segments: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidSpiffeIdError) as info:
        SpiffeId.from_segments("example.org", *segments)
    assert str(info.value) == message


# --------------------------------------------------------------------------------------------------
# Trust domains.


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("example.org", "example.org"),
        ("spiffe://example.org", "example.org"),
        ("trust_domain_name.example.com", "trust_domain_name.example.com"),
        (LONGEST_TD, LONGEST_TD),
    ],
)
def test_trust_domain_parses_bare_name_or_its_id(text: str, name: str) -> None:
    trust_domain = TrustDomain.parse(text)
    assert trust_domain.name == name
    assert str(trust_domain) == name
    assert trust_domain.id_string() == "spiffe://" + name
    assert TrustDomain.parse(trust_domain.id_string()) == trust_domain


INVALID_TRUST_DOMAINS = [
    pytest.param("", "trust domain is empty", id="empty"),
    pytest.param("Example.org", 'trust domain must be lowercase ("E" at index 0)', id="uppercase"),
    pytest.param(
        "example.org:443", 'trust domain must not include a port (":" at index 11)', id="port"
    ),
    pytest.param(
        "alice@example.org",
        'trust domain must not include userinfo ("@" at index 5)',
        id="userinfo",
    ),
    pytest.param(
        "ex%41mple.org",
        'trust domain must not contain percent-encoding ("%" at index 2)',
        id="percent-encoding",
    ),
    pytest.param(
        "example.org/agent",
        'trust domain contains "/" at index 11' + TD_CHARS_HINT,
        id="bare-name-with-path",
    ),
    pytest.param(
        "example.org\n",
        "trust domain contains U+000A at index 11" + TD_CHARS_HINT,
        id="trailing-newline",
    ),
    pytest.param(
        "a" * (MAX_TRUST_DOMAIN_LENGTH + 1), "trust domain is longer than 255 bytes", id="too-long"
    ),
    pytest.param(
        "spiffe://example.org/agent",
        'trust domain ID must not have a path ("/" at index 20)',
        id="workload-id-is-not-a-trust-domain",
    ),
    pytest.param(
        "SPIFFE://example.org",
        'invalid SPIFFE ID: scheme must be lowercase "spiffe"',
        id="id-form-uppercase-scheme",
    ),
    pytest.param(
        "https://example.org",
        'invalid SPIFFE ID: scheme must be "spiffe", not "https"',
        id="id-form-wrong-scheme",
    ),
    pytest.param("spiffe://", "invalid SPIFFE ID: trust domain is empty", id="id-form-empty"),
    pytest.param(42, "trust domain must be a string, not int", id="not-a-string"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_TRUST_DOMAINS)
def test_invalid_trust_domain_is_refused_with_exact_message(text: str, message: str) -> None:
    with pytest.raises(InvalidSpiffeIdError) as info:
        TrustDomain.parse(text)
    assert str(info.value) == message


def test_constructing_trust_domain_directly_validates_the_name() -> None:
    with pytest.raises(InvalidSpiffeIdError) as info:
        TrustDomain("Example.org")
    assert str(info.value) == 'trust domain must be lowercase ("E" at index 0)'


def test_public_surface_of_spiffe_module_is_pinned() -> None:
    assert sorted(spiffe.__all__) == [
        "MAX_SPIFFE_ID_LENGTH",
        "MAX_TRUST_DOMAIN_LENGTH",
        "SPIFFE_SCHEME",
        "SpiffeId",
        "TrustDomain",
    ]


# --------------------------------------------------------------------------------------------------
# Properties.

trust_domain_names = st.text(alphabet=TD_CHARS, min_size=1, max_size=40)
path_segments = st.text(alphabet=SEGMENT_CHARS, min_size=1, max_size=24).filter(
    lambda segment: segment not in (".", "..")
)
valid_ids = st.builds(
    lambda td, segments: PREFIX + td + "".join("/" + segment for segment in segments),
    trust_domain_names,
    st.lists(path_segments, max_size=8),
)
# Any character that is not allowed anywhere in a trust domain or path, and is not "/" (inserting a
# "/" can legitimately split a segment in two).
bad_chars = st.characters(codec=None).filter(lambda char: char not in SEGMENT_CHARS + "/")


@given(valid_ids)
def test_every_valid_id_parses_and_round_trips(text: str) -> None:
    parsed = SpiffeId.parse(text)
    assert str(parsed) == text
    assert SpiffeId.parse(str(parsed)) == parsed
    assert SpiffeId.from_segments(parsed.trust_domain, *parsed.segments) == parsed
    assert PREFIX + parsed.trust_domain.name + parsed.path == text


@given(valid_ids, bad_chars, st.integers(min_value=0))
@example("spiffe://example.org/a", "\n", 22)
@example("spiffe://example.org", ":", 20)
def test_inserting_any_bad_character_is_refused_with_invalid_spiffe_id_error(
    text: str, bad: str, position: int
) -> None:
    position %= len(text) + 1
    mutated = text[:position] + bad + text[position:]
    with pytest.raises(InvalidSpiffeIdError):
        SpiffeId.parse(mutated)


def _reference_is_valid(text: str) -> bool:
    """The rules of SPIFFE-ID sections 2 to 2.3, written as plainly as possible, for comparison."""
    if len(text) > 2048 or not text.startswith("spiffe://"):
        return False
    trust_domain, slash, path = text[len("spiffe://") :].partition("/")
    if not 1 <= len(trust_domain) <= 255 or any(c not in TD_CHARS for c in trust_domain):
        return False
    if not slash:
        return True
    return all(
        segment not in ("", ".", "..") and all(c in SEGMENT_CHARS for c in segment)
        for segment in path.split("/")
    )


# Text that often comes close to a SPIFFE ID: the prefix, delimiters, both cases, dots, "%", non-ASCII.
near_ids = st.one_of(
    st.text(alphabet="spiffe:/?#@%.-_aAzZ09 \u00e9\n", max_size=40),
    st.builds(
        lambda tail: PREFIX + tail, st.text(alphabet="ab.-_AZ09/?#@%:\u00e9 \n", max_size=40)
    ),
    st.text(max_size=40),
)


@given(near_ids)
@example("spiffe://example.org/workload\n")
@example("spiffe://a/.")
@example("spiffe://a/..")
@example("spiffe://a/...")
def test_parser_accepts_exactly_what_the_standard_allows(text: str) -> None:
    if _reference_is_valid(text):
        assert str(SpiffeId.parse(text)) == text
    else:
        with pytest.raises(InvalidSpiffeIdError):
            SpiffeId.parse(text)


@given(near_ids)
def test_fast_path_and_diagnosis_agree(text: str) -> None:
    # Parsing tries one regex and diagnoses only on failure; the two must implement one grammar,
    # or a valid ID would be refused with a nonsense message (or an invalid one explained as valid).
    fast_accepts = spiffe._ID_RE.fullmatch(text) is not None and len(text) <= 2048
    assert fast_accepts == (spiffe._id_problem(text) is None)


@given(st.text(max_size=300))
def test_trust_domain_parse_never_raises_anything_but_invalid_spiffe_id(text: str) -> None:
    try:
        trust_domain = TrustDomain.parse(text)
    except InvalidSpiffeIdError:
        return
    assert trust_domain.name in (text, text.removeprefix(PREFIX))
