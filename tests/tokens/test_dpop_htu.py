"""``htu`` normalisation: RFC 9449 section 4.3 (9) and RFC 3986 sections 6.2.2 and 6.2.3."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authchain.errors import DPoPURLError
from authchain.tokens.htu import MAX_HTU_LENGTH, normalize_htu


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://tool.example.org/invoke", "https://tool.example.org/invoke"),
        # RFC 9449 section 4.3 (9): query and fragment are ignored.
        ("https://tool.example.org/invoke?a=1&b=2#frag", "https://tool.example.org/invoke"),
        ("https://tool.example.org/invoke#frag?not-a-query", "https://tool.example.org/invoke"),
        ("https://tool.example.org/invoke?", "https://tool.example.org/invoke"),
        # RFC 3986 section 6.2.2.1: scheme and host are case-insensitive; the path is not.
        ("HTTPS://Tool.Example.ORG/Invoke", "https://tool.example.org/Invoke"),
        # RFC 3986 section 6.2.3: default ports and empty ports are dropped, empty path is "/".
        ("https://tool.example.org:443/x", "https://tool.example.org/x"),
        ("http://tool.example.org:80/x", "http://tool.example.org/x"),
        ("https://tool.example.org:/x", "https://tool.example.org/x"),
        ("https://tool.example.org", "https://tool.example.org/"),
        ("https://tool.example.org?q=1", "https://tool.example.org/"),
        ("https://tool.example.org:8443/x", "https://tool.example.org:8443/x"),
        ("http://tool.example.org:443/x", "http://tool.example.org:443/x"),
        ("https://tool.example.org:80/x", "https://tool.example.org:80/x"),
        ("https://tool.example.org:08443/x", "https://tool.example.org:8443/x"),
        # RFC 3986 section 6.2.2.1 and 6.2.2.2: uppercase hex, decode unreserved characters only.
        ("https://h.example/a%7eb", "https://h.example/a~b"),
        ("https://h.example/%41%2d%5F", "https://h.example/A-_"),
        ("https://h.example/a%2fb", "https://h.example/a%2Fb"),
        ("https://h.example/a%c3%a9", "https://h.example/a%C3%A9"),
        # RFC 3986 section 6.2.2.3 (algorithm of section 5.2.4): dot segments.
        ("https://h.example/a/./b/../c", "https://h.example/a/c"),
        ("https://h.example/a/b/..", "https://h.example/a/"),
        ("https://h.example/a/b/.", "https://h.example/a/b/"),
        ("https://h.example/../../x", "https://h.example/x"),
        ("https://h.example/a/%2E%2E/b", "https://h.example/b"),
        ("https://h.example/a..b/.c", "https://h.example/a..b/.c"),
        # IP addresses.
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x"),
        ("http://[::1]/x", "http://[::1]/x"),
        ("http://[2001:DB8::1]:443/x", "http://[2001:db8::1]:443/x"),
        ("https://[2001:DB8::1]:443", "https://[2001:db8::1]/"),
        # Characters RFC 3986 allows in a path stay as they are.
        ("https://h.example/a:b@c!$&'()*+,;=", "https://h.example/a:b@c!$&'()*+,;="),
        # RFC 9449 section 4.1 and 7.1 example URLs.
        ("https://server.example.com/token", "https://server.example.com/token"),
        (
            "https://resource.example.org/protectedresource",
            "https://resource.example.org/protectedresource",
        ),
    ],
)
def test_normalize_htu_applies_rfc3986_syntax_and_scheme_normalisation(
    url: str, normal: str
) -> None:
    assert normalize_htu(url) == normal


@pytest.mark.parametrize(
    "url",
    [
        "",
        "tool.example.org/invoke",
        "/invoke",
        "//tool.example.org/invoke",
        "ftp://tool.example.org/invoke",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "urn:example:x",
        "https:/tool.example.org/x",
        "https:tool.example.org",
        "https://",
        "https:///x",
        "https://:443/x",
        "https://user:pass@tool.example.org/x",
        "https://user@tool.example.org/x",
        "https://tool.example.org:99999/x",
        "https://tool.example.org:0/x",
        "https://tool.example.org:-1/x",
        "https://tool.example.org:44a/x",
        "https://tool.example.org:４４３/x",
        "https://tool example.org/x",
        "https://tool.example.org/a b",
        "https://tool.example.org/\x00",
        "https://tool.example.org/é",
        "https://tööl.example.org/",
        "https://tool%2eexample.org/",
        "https://tool.example.org/a%zz",
        "https://tool.example.org/a%4",
        "https://tool.example.org/a%",
        "https://[::1/x",
        "https://[::1]x/",
        "https://[fe80::1%25eth0]/",
        "https://[v1.fe80::a+en1]/",
        "https://[not-an-ip]/",
        "https://[1.2.3.4]/",
        "https://tool.example.org/[x]",
        "https://tool.example.org\\x",
        " https://tool.example.org/",
        "https://tool.example.org/" + "a" * MAX_HTU_LENGTH,
    ],
)
def test_normalize_htu_refuses_what_is_not_an_http_uri(url: str) -> None:
    with pytest.raises(DPoPURLError):
        normalize_htu(url)


def test_normalize_htu_refuses_non_strings() -> None:
    with pytest.raises(DPoPURLError):
        normalize_htu(b"https://tool.example.org/")  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_normalize_htu_returns_a_fixed_point_or_raises_dpop_url_error(text: str) -> None:
    for url in (text, "https://h.example/" + text, "http://" + text):
        try:
            normal = normalize_htu(url)
        except DPoPURLError:
            continue
        assert normalize_htu(normal) == normal
        assert normal.startswith(("http://", "https://"))
        assert "?" not in normal and "#" not in normal
