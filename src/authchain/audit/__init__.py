"""The tamper-evident audit log (docs/audit-log.md).

Events (:mod:`~authchain.audit.events`) are RFC 8785 canonical JSON; the log is an RFC 9162 Merkle
tree (:mod:`~authchain.audit.merkle`) whose state is a C2SP checkpoint signed as a C2SP note with
Ed25519 (:mod:`~authchain.audit.checkpoint`, :mod:`~authchain.audit.note`);
:func:`~authchain.audit.verify.verify_log` recomputes a whole log. Storage is behind
:class:`authchain.audit.store.LogStore` (import stores from :mod:`authchain.audit.store`).
"""

from __future__ import annotations

from authchain.audit.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    sign_checkpoint,
)
from authchain.audit.events import EVENT_VERSION, AuditEvent
from authchain.audit.merkle import (
    ConsistencyProof,
    InclusionProof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from authchain.audit.note import NoteSigner, NoteVerifier, open_note, sign_note
from authchain.audit.verify import VerifiedLog, verify_log

__all__ = [
    "AuditEvent",
    "Checkpoint",
    "ConsistencyProof",
    "EVENT_VERSION",
    "InclusionProof",
    "NoteSigner",
    "NoteVerifier",
    "SignedCheckpoint",
    "VerifiedLog",
    "leaf_hash",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]
