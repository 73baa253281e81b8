"""The public surface of the audit log: an accidental export (or a lost one) is noticed here."""

from __future__ import annotations

import authchain.audit
import authchain.audit.store
import authchain.jcs


def test_authchain_audit_exports() -> None:
    assert sorted(authchain.audit.__all__) == [
        "ATTRS_MAX_BYTES",
        "AuditEvent",
        "Checkpoint",
        "ConsistencyProof",
        "DEFAULT_ORIGIN",
        "EVENT_MAX_BYTES",
        "InclusionProof",
        "KINDS",
        "NoteSigner",
        "NoteVerifier",
        "OUTCOMES",
        "SignedCheckpoint",
        "VerifiedLog",
        "check_leaf",
        "leaf_hash",
        "node_hash",
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


def test_authchain_audit_store_exports() -> None:
    assert sorted(authchain.audit.store.__all__) == ["LogEntry", "LogStore", "open_store"]


def test_authchain_jcs_exports() -> None:
    assert sorted(authchain.jcs.__all__) == [
        "JsonValue",
        "MAX_DEPTH",
        "MAX_SAFE_INTEGER",
        "canonicalize",
        "check",
        "encode",
    ]
