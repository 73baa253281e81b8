"""The public surface of the audit log: an accidental export (or a lost one) is noticed here."""

from __future__ import annotations

import authchain.audit
import authchain.audit.store
import authchain.jcs


def test_authchain_audit_exports() -> None:
    # What investigators and witnesses call: events, checkpoints, notes, proofs, verification.
    # Limits and the leaf checker stay in their modules.
    assert sorted(authchain.audit.__all__) == [
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
    for name in authchain.audit.__all__:
        assert hasattr(authchain.audit, name)


def test_authchain_audit_records_exports() -> None:
    import authchain.audit.records as records

    assert "read" in records.__all__ and "Record" in records.__all__ and "Kind" in records.__all__


def test_authchain_audit_store_exports() -> None:
    assert sorted(authchain.audit.store.__all__) == ["Claim", "LogEntry", "LogStore", "open_store"]


def test_authchain_jcs_exports() -> None:
    assert sorted(authchain.jcs.__all__) == [
        "JsonValue",
        "MAX_DEPTH",
        "MAX_SAFE_INTEGER",
        "canonicalize",
        "check",
        "encode",
    ]
