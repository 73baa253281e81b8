"""C2SP signed notes with Ed25519 (https://c2sp.org/signed-note), and their verifier keys.

A signed note is a text ending in a newline, a blank line, then signature lines
``— <key name> <base64(key ID || signature)>``. The Ed25519 signature covers the text including its
final newline. A verifier is configured with one key, written in the vkey form
``<name>+<8 hex digits of key ID>+<base64(0x01 || 32-byte public key)>`` that Go's
``golang.org/x/mod/sumdb/note`` and the transparency-log ecosystem use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Final

import nacl.exceptions
import nacl.signing

from authchain.errors import InvalidKeyError, MalformedError, SignatureError, SizeLimitError

__all__ = [
    "ED25519_TYPE",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "NoteSigner",
    "NoteVerifier",
    "key_id",
    "sign_note",
    "open_note",
]

#: C2SP signed-note, "Signature types": 0x01 is Ed25519.
ED25519_TYPE: Final = 0x01
#: C2SP signed-note, "Format": verifiers SHOULD bound the number of signatures and MUST accept 16.
#: 100 is the bound of the Go reference implementation.
MAX_SIGNATURES: Final = 100
#: A bound on the whole note, far above any checkpoint (a few hundred bytes).
MAX_NOTE_BYTES: Final = 64 * 1024

# C2SP signed-note, "Format": em dash (U+2014), space, key name, space, base64 signature, newline.
_SIG_PREFIX: Final = "\u2014 "
# C2SP signed-note, "Format": key names are non-empty and contain no Unicode spaces and no '+'.
_NAME_FORBIDDEN = re.compile(r"[\s+]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-f]{8}")


def _check_name(name: str) -> None:
    if not name or _NAME_FORBIDDEN.search(name) or _CONTROL.search(name):
        raise MalformedError("key name must be non-empty, without spaces or '+'")


def _b64decode(text: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), refusing non-canonical encodings."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise MalformedError("invalid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedError("non-canonical base64")
    return raw


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note: SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]."""
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + public_key
    ).digest()[:4]


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """One trusted Ed25519 note key: its name, 4-byte key ID and 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> NoteVerifier:
        _check_name(name)
        if len(public_key) != 32:
            raise InvalidKeyError("an Ed25519 public key is 32 bytes")
        return cls(name, key_id(name, public_key), bytes(public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``, checking the key ID."""
        text = vkey.strip()
        # The name cannot contain '+', but the base64 can: split at the first two.
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise InvalidKeyError("a verifier key is <name>+<key id>+<base64 key>")
        name, hex_id, b64 = parts
        try:
            _check_name(name)
            raw = _b64decode(b64)
        except MalformedError as exc:
            raise InvalidKeyError(f"malformed verifier key: {exc.message}") from exc
        if not _HEX8.fullmatch(hex_id):
            raise InvalidKeyError("a verifier key's id is 8 lowercase hex digits")
        if len(raw) != 33 or raw[0] != ED25519_TYPE:
            raise InvalidKeyError("only Ed25519 verifier keys (type 0x01, 32 bytes) are supported")
        verifier = cls.from_public_key(name, raw[1:])
        if verifier.key_id.hex() != hex_id:
            raise InvalidKeyError("verifier key id does not match its name and key")
        return verifier

    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            return False
        return True


class NoteSigner:
    """Signs notes with one Ed25519 key under one name."""

    __slots__ = ("name", "_key", "verifier")

    def __init__(self, name: str, signing_key: nacl.signing.SigningKey | bytes) -> None:
        _check_name(name)
        if isinstance(signing_key, bytes):
            if len(signing_key) != 32:
                raise InvalidKeyError("an Ed25519 seed is 32 bytes")
            signing_key = nacl.signing.SigningKey(signing_key)
        self.name = name
        self._key = signing_key
        self.verifier = NoteVerifier.from_public_key(name, bytes(signing_key.verify_key))

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def signature_line(self, text: str) -> str:
        signature = self._key.sign(text.encode("utf-8")).signature
        encoded = base64.b64encode(self.key_id + signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {encoded}\n"


def _check_text(text: str) -> None:
    # C2SP signed-note, "Format": the text ends in a newline, is valid UTF-8 and holds no ASCII
    # control characters other than newline.
    if not text.endswith("\n") or _CONTROL.search(text):
        raise MalformedError("note text must end in a newline and contain no control characters")


def sign_note(text: str, signer: NoteSigner) -> str:
    """The signed note of ``text``: the text, a blank line and the signature line."""
    _check_text(text)
    if "\n\n" in text:
        # Not forbidden by the format, but a checkpoint never has one and it keeps parsing trivial.
        raise MalformedError("note text must not contain blank lines")
    return text + "\n" + signer.signature_line(text)


def open_note(note: str | bytes, verifier: NoteVerifier) -> str:
    """Verify a signed note against one trusted key; return its text, or raise.

    C2SP signed-note, "Signatures": signatures by unknown keys (a different name or key ID) are
    ignored; a signature by the known key that fails rejects the whole note; a note with no
    verifying signature by the known key is rejected.
    """
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise SizeLimitError(f"signed note is {len(note)} bytes, limit {MAX_NOTE_BYTES}")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedError("signed note is not valid UTF-8") from exc
    if len(note) > MAX_NOTE_BYTES:
        raise SizeLimitError(f"signed note is {len(note)} characters, limit {MAX_NOTE_BYTES}")
    # (1) Valid UTF-8 (checked above), no control characters other than newline.
    if _CONTROL.search(note):
        raise MalformedError("malformed note: control characters")
    # (2) The text is separated from the signatures by the last blank line.
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedError("malformed note: no signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedError("malformed note: signature block must end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        # (3) Each line: em dash, space, key name, space, base64(key ID || signature).
        if not line.startswith(_SIG_PREFIX):
            raise MalformedError("malformed note: bad signature line")
        fields = line[len(_SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise MalformedError("malformed note: bad signature line")
        name, encoded = fields
        _check_name(name)
        raw = _b64decode(encoded)
        if len(raw) < 5:
            raise MalformedError("malformed note: signature too short")
        # (4) Only the known key's signature counts; others are ignored.
        if name != verifier.name or raw[:4] != verifier.key_id:
            continue
        # (5) A failing signature by the known key rejects the note.
        if not verifier.verify(text.encode("utf-8"), raw[4:]):
            raise SignatureError("signature invalid")
        verified = True
    if not verified:
        raise SignatureError("note is not signed by the expected key")
    return text
