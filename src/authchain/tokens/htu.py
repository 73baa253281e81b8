"""The comparison form of an HTTP URL, for DPoP's ``htu`` (RFC 9449 section 4.3 (9) and the
paragraph after its list; RFC 3986 section 6).

A proof names the request it was made for by ``htu``; a verifier compares it with the URL it serves,
both normalised here. What is deliberately stricter than RFC 9449 requires: an ``htu`` is refused
unless it is an absolute ``http``/``https`` URI of plain RFC 3986 characters, without userinfo
(RFC 9110 section 4.2.4) and with a DNS name or IP literal as host. Such a URI cannot name the
resource a server verifies against, so refusing it costs nothing.

The result of each URL is cached (a tool serves few URLs, and every proof it receives names one).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Final

from authchain.errors import DPoPURLError

__all__ = ["MAX_HTU_LENGTH", "normalize_htu"]

MAX_HTU_LENGTH: Final = 2048
_HTU_CACHE_SIZE: Final = 1024


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
