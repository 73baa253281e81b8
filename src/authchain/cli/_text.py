"""Untrusted text on a terminal: what every command prints from a log, a store or a request.

A log entry's action name, a principal, a reason, a reporter's claims, even an error message that
quotes a forged member: all of it was written by someone else, and a terminal interprets more than
it shows. Three kinds of text could lie to the investigator reading it:

* rich markup (``[/]`` ends a style and crashes the renderer, ``[conceal]`` hides what follows,
  ``:warning:`` becomes an emoji): escaped for rich, and consoles are built without emoji codes;
* terminal control sequences (``ESC [ 2 J`` clears the screen, ``ESC ] 8`` writes a link, a
  carriage return overwrites the line): shown as ``\\x1b``, ``\\r``;
* bidirectional and invisible format characters (U+202E turns the rest of a line around, U+200B
  hides inside a name, U+2028 starts a new line): shown as ``\\u202e``, ``\\u200b``, ``\\u2028``.

Every character Python does not consider printable (controls, format characters, line and
paragraph separators, surrogates, private-use and unassigned code points, and spaces other than
U+0020) is shown as its escape, so what is printed is exactly what is stored, visibly.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Final

import orjson
from rich.console import Console
from rich.markup import escape

__all__ = ["json_text", "markup", "new_console", "plain", "print_json"]

# JSON text from orjson has no raw control characters below U+0020 (they are escaped), and its
# only structural whitespace is spaces and the newlines of indentation; anything else that is not
# printable sits inside a string, where a \u escape stands for it exactly.
_JSON_UNSAFE: Final = re.compile(r"[^\n -~]")


def _escaped(char: str) -> str:
    return char.encode("unicode_escape", "backslashreplace").decode("ascii")


def plain(value: Any, *, lines: bool = False) -> str:
    """``value`` as text whose every character is printable; ``lines`` keeps newlines."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    keep = "\n" if lines else ""
    return "".join(c if c.isprintable() or c in keep else _escaped(c) for c in text)


def markup(value: Any) -> str:
    """``value`` as rich markup that prints it verbatim (see :func:`plain`)."""
    return escape(plain(value))


def new_console(*, stderr: bool = False) -> Console:
    """A console that interprets no emoji codes and highlights nothing: log text stays as written."""
    return Console(stderr=stderr, emoji=False, highlight=False)


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    # RFC 8259 section 7: a character beyond the Basic Multilingual Plane as a UTF-16 pair.
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(value: Any, *, indent: bool = True) -> str:
    """``value`` as JSON in which every non-printable character is a ``\\u`` escape: the same
    JSON value, safe to print to a terminal."""
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else None).decode()
    return _JSON_UNSAFE.sub(_json_escape, text)


def print_json(value: Any) -> None:
    sys.stdout.write(json_text(value) + "\n")
