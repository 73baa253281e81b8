"""Checkpoints: the signed state of the log (C2SP tlog-checkpoint, https://c2sp.org/tlog-checkpoint).

The note text is three lines, the origin, the tree size in decimal, and the base64 root hash,
optionally followed by extension lines (Authchain writes none). The log signs it as a C2SP signed
note with Ed25519 under a key whose name is the origin.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Final

from authchain.audit.merkle import HASH_SIZE
from authchain.audit.note import NoteSigner, NoteVerifier, open_note, sign_note
from authchain.errors import CheckpointError, MalformedError, VerificationError

__all__ = ["Checkpoint", "SignedCheckpoint", "DEFAULT_ORIGIN", "sign_checkpoint", "open_checkpoint"]

#: The origin (and key name) of a log that was not given one.
DEFAULT_ORIGIN: Final = "authchain.local/log"

# C2SP tlog-checkpoint, "Note text" (2): ASCII decimal, no leading zeroes unless the tree is empty.
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_EXTENSIONS: Final = 16


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log ``origin``, the tree ``size`` and the RFC 9162 ``root_hash``."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text of C2SP tlog-checkpoint, "Note text"."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        lines.extend(self.extensions)
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a note text, strictly: three non-empty lines, then optional extension lines."""
        if not text.endswith("\n"):
            raise MalformedError("checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or len(lines) > 3 + _MAX_EXTENSIONS or any(not ln for ln in lines):
            raise MalformedError("checkpoint text must be at least three non-empty lines")
        origin, size_text, root_text = lines[:3]
        # (2) decimal tree size without leading zeroes.
        if not _SIZE.fullmatch(size_text):
            raise MalformedError("checkpoint tree size is not a canonical decimal number")
        # (3) base64 of the 32-byte SHA-256 root.
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise MalformedError("checkpoint root hash is not base64") from exc
        if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_text:
            raise MalformedError("checkpoint root hash is not the base64 of 32 bytes")
        return cls(origin, int(size_text), root, tuple(lines[3:]))


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint with its signed note, as a store keeps and serves it.

    The fields are read from ``text`` without checking the signature: call :meth:`verify` (or
    :func:`open_checkpoint`) with a trusted key before relying on them.
    """

    origin: str
    size: int
    root_hash: bytes
    text: str

    @classmethod
    def parse(cls, text: str) -> SignedCheckpoint:
        """Read a signed checkpoint's fields (unverified). Raises :class:`MalformedError`."""
        split = text.rfind("\n\n")
        if split < 0:
            raise MalformedError("a signed checkpoint has a blank line before its signatures")
        body = Checkpoint.parse(text[: split + 1])
        return cls(body.origin, body.size, body.root_hash, text)

    def verify(self, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
        """Check the signature under ``verifier`` and return the verified checkpoint."""
        return open_checkpoint(self.text, verifier, origin=origin)


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> SignedCheckpoint:
    """Sign a checkpoint as a C2SP signed note."""
    text = sign_note(checkpoint.body(), signer)
    return SignedCheckpoint(checkpoint.origin, checkpoint.size, checkpoint.root_hash, text)


def open_checkpoint(
    note: str | bytes, verifier: NoteVerifier, *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return it, or raise :class:`CheckpointError`.

    Steps: (1) the note verifies under ``verifier`` (C2SP signed-note); (2) its text is a
    well-formed checkpoint (C2SP tlog-checkpoint, "Note text"); (3) its origin is the expected
    one, by default the key name (tlog-checkpoint, "Signatures": the key name SHOULD match it).
    """
    try:
        text = open_note(note, verifier)
        checkpoint = Checkpoint.parse(text)
    except VerificationError as exc:
        raise CheckpointError(f"checkpoint refused: {exc.message}") from exc
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise CheckpointError(
            f"checkpoint is for origin {checkpoint.origin!r}, expected {expected!r}",
            size=checkpoint.size,
        )
    return checkpoint
