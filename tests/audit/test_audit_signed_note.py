"""C2SP signed notes and tlog-checkpoints: the Go reference vectors, and what a verifier refuses."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import nacl.signing
import pytest

from authchain.audit.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    sign_checkpoint,
)
from authchain.audit.merkle import EMPTY_ROOT
from authchain.audit.note import NoteSigner, NoteVerifier, key_id, open_note, sign_note
from authchain.errors import (
    CheckpointError,
    InvalidKeyError,
    MalformedError,
    SignatureError,
)

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "c2sp_signed_note.json").read_text(encoding="utf-8")
)


def _go_signer() -> NoteSigner:
    # PRIVATE+KEY+<name>+<key id>+base64(0x01 || seed); the base64 itself may contain '+'.
    encoded = VECTORS["private_key"].split("+", 4)[4]
    raw = base64.b64decode(encoded)
    assert raw[0] == 0x01
    return NoteSigner(VECTORS["name"], raw[1:])


def test_signing_the_go_vector_reproduces_the_published_note() -> None:
    assert sign_note(VECTORS["text"], _go_signer()) == VECTORS["note"]


def test_the_go_vector_verifies_under_its_vkey() -> None:
    verifier = NoteVerifier.from_vkey(VECTORS["vkey"])
    assert verifier.key_id.hex() == VECTORS["key_id"]
    assert verifier.vkey() == VECTORS["vkey"]
    assert _go_signer().verifier == verifier
    assert open_note(VECTORS["note"], verifier) == VECTORS["text"]


def test_signatures_by_unknown_keys_are_ignored() -> None:
    note = VECTORS["note"] + VECTORS["other_signature_line"]
    assert open_note(note, NoteVerifier.from_vkey(VECTORS["vkey"])) == VECTORS["text"]
    assert open_note(note, NoteVerifier.from_vkey(VECTORS["other_vkey"])) == VECTORS["text"]


@pytest.mark.parametrize("note", VECTORS["malformed_notes"])
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(MalformedError):
        open_note(note, NoteVerifier.from_vkey(VECTORS["vkey"]))


@pytest.mark.parametrize("vkey", VECTORS["invalid_vkeys"])
def test_invalid_vkeys_are_refused(vkey: str) -> None:
    with pytest.raises(InvalidKeyError):
        NoteVerifier.from_vkey(vkey)


def test_every_mangling_of_a_vkey_is_refused() -> None:
    vkey = VECTORS["vkey"]
    for i in range(len(vkey)):
        for replacement in {"x", "A", "+"} - {vkey[i]}:
            mangled = vkey[:i] + replacement + vkey[i + 1 :]
            with pytest.raises(InvalidKeyError):
                NoteVerifier.from_vkey(mangled)
    for end in range(1, len(vkey)):
        with pytest.raises(InvalidKeyError):
            NoteVerifier.from_vkey(vkey[:end])


def test_key_id_is_the_truncated_hash_of_name_newline_type_and_key() -> None:
    verifier = NoteVerifier.from_vkey(VECTORS["vkey"])
    import hashlib

    expected = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()[:4]
    assert key_id("PeterNeumann", verifier.public_key) == expected == bytes.fromhex("c74f20a3")


@pytest.fixture
def log_signer() -> NoteSigner:
    return NoteSigner("authchain.test/log", nacl.signing.SigningKey.generate())


def test_a_checkpoint_has_the_tlog_checkpoint_text(log_signer: NoteSigner) -> None:
    checkpoint = Checkpoint("authchain.test/log", 20852163, bytes(range(32)))
    signed = sign_checkpoint(checkpoint, log_signer)
    body, _, signature = signed.text.partition("\n\n")
    assert body + "\n" == (
        "authchain.test/log\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    )
    assert signature.startswith("\u2014 authchain.test/log ")
    raw = base64.b64decode(signature.split(" ")[2])
    assert raw[:4] == log_signer.key_id and len(raw) == 4 + 64


def test_a_signed_checkpoint_verifies_under_its_vkey(log_signer: NoteSigner) -> None:
    checkpoint = Checkpoint("authchain.test/log", 7, EMPTY_ROOT)
    signed = sign_checkpoint(checkpoint, log_signer)
    verifier = NoteVerifier.from_vkey(log_signer.verifier.vkey())
    assert open_checkpoint(signed.text, verifier) == checkpoint
    assert SignedCheckpoint.parse(signed.text) == signed


def test_a_checkpoint_with_a_changed_body_is_refused(log_signer: NoteSigner) -> None:
    signed = sign_checkpoint(Checkpoint("authchain.test/log", 7, EMPTY_ROOT), log_signer)
    for forged in (
        signed.text.replace("\n7\n", "\n8\n"),
        signed.text.replace("authchain.test/log\n", "authchain.test/log2\n", 1),
        signed.text.replace("47DEQ", "47DEq"),
    ):
        assert forged != signed.text
        with pytest.raises(CheckpointError):
            open_checkpoint(forged, log_signer.verifier)


def test_a_checkpoint_signed_by_another_key_is_refused(log_signer: NoteSigner) -> None:
    impostor = NoteSigner("authchain.test/log", nacl.signing.SigningKey.generate())
    signed = sign_checkpoint(Checkpoint("authchain.test/log", 7, EMPTY_ROOT), impostor)
    with pytest.raises(CheckpointError, match="not signed by the expected key"):
        open_checkpoint(signed.text, log_signer.verifier)


def test_a_signature_with_a_wrong_key_id_is_refused(log_signer: NoteSigner) -> None:
    signed = sign_checkpoint(Checkpoint("authchain.test/log", 7, EMPTY_ROOT), log_signer)
    body, _, line = signed.text.partition("\n\n")
    raw = base64.b64decode(line.split(" ")[2])
    wrong_id = bytes([raw[0] ^ 1]) + raw[1:]
    forged = f"{body}\n\n\u2014 authchain.test/log {base64.b64encode(wrong_id).decode()}\n"
    with pytest.raises(CheckpointError):
        open_checkpoint(forged, log_signer.verifier)


def test_a_bad_signature_by_the_known_key_rejects_the_whole_note(log_signer: NoteSigner) -> None:
    signed = sign_checkpoint(Checkpoint("authchain.test/log", 7, EMPTY_ROOT), log_signer)
    body, _, line = signed.text.partition("\n\n")
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[10] ^= 1
    bad = f"\u2014 authchain.test/log {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(CheckpointError, match="signature invalid"):
        open_checkpoint(signed.text + bad, log_signer.verifier)


def test_a_checkpoint_for_another_origin_is_refused(log_signer: NoteSigner) -> None:
    signed = sign_checkpoint(Checkpoint("someone.else/log", 7, EMPTY_ROOT), log_signer)
    with pytest.raises(CheckpointError, match="origin"):
        open_checkpoint(signed.text, log_signer.verifier)


@pytest.mark.parametrize(
    "body",
    [
        "origin\n007\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n7\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",
        "origin\n7\nAAAA\n",
        "origin\n7\n",
        "origin\n7\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    ],
    ids=["leading zero", "negative", "unpadded", "short root", "no root", "no newline"],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(MalformedError):
        Checkpoint.parse(body)


def test_note_text_with_control_characters_cannot_be_signed(log_signer: NoteSigner) -> None:
    with pytest.raises(MalformedError):
        sign_note("origin\n1\x00\n", log_signer)
    with pytest.raises(SignatureError):
        open_note(sign_note("a\n", log_signer), NoteVerifier.from_vkey(VECTORS["vkey"]))
