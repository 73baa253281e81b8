"""``authchain audit``: verify the log, print its checkpoint, export it, prove entries.

A thin adapter over :mod:`authchain.audit`: parse options, open the store, call the core, print.
Errors propagate as :class:`~authchain.errors.AuthchainError` and become one line on stderr with a
non-zero exit code (see :func:`authchain.cli.main`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import orjson
import typer

from authchain.audit.note import NoteVerifier
from authchain.audit.store import LogStore, open_store
from authchain.cli import app
from authchain.cli._text import json_text, plain
from authchain.errors import ConfigurationError

audit_app = typer.Typer(
    name="audit",
    help="The signed audit log: verify it, print its checkpoint, export it, prove entries.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

DbOption = Annotated[
    str,
    typer.Option("--db", help="The audit log: a SQLite file path (postgresql:// URLs: later)."),
]

# Logs at least this large get a progress bar (on a terminal) and parallel verification.
_LARGE_LOG = 100_000


@contextmanager
def opened(db: str) -> Iterator[LogStore]:
    """Open an existing log read-mostly: a missing file is an error, never a new empty log."""
    store = open_store(db, create=False)
    try:
        yield store
    finally:
        store.close()


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@audit_app.command("verify")
def verify_command(
    db: DbOption,
    trusted_checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-checkpoint",
            help="A signed checkpoint saved outside the store; the log must extend it. Repeatable.",
        ),
    ] = None,
    vkey: Annotated[
        str | None,
        typer.Option("--vkey", help="Verify under this key (C2SP vkey), not the one in the store."),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", min=0, help="Worker processes for event checks (default: auto)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recompute every entry, the whole tree and every checkpoint; exit non-zero on any tampering."""
    trusted = [_read_text(path, "trusted checkpoint") for path in trusted_checkpoint or []]
    verifier = NoteVerifier.from_vkey(vkey) if vkey is not None else None
    with opened(db) as store:
        size = store.size()
        workers = jobs if jobs is not None else (_auto_jobs() if size >= _LARGE_LOG else 0)
        with _progress(size) as progress:
            result = store.verify(
                trusted=trusted, verifier=verifier, progress=progress, workers=workers
            )
        key = (verifier or store.verifier()).vkey()
    if json_output:
        out = {
            "verified": True,
            "size": result.size,
            "root": result.root_hash.hex(),
            "checkpoints": result.checkpoints,
            "trusted_checkpoints": [c.size for c in result.trusted],
            "vkey": key,
        }
        _write(json_text(out, indent=False) + "\n")
        return
    trusted_note = (
        f"; consistent with {len(result.trusted)} trusted checkpoint(s)" if result.trusted else ""
    )
    _write(
        f"verified {result.size} entries and {result.checkpoints} signed checkpoints{trusted_note}\n"
        f"root {result.root_hash.hex()}\n"
        f"key {plain(key)}\n"
    )


def _auto_jobs() -> int:
    cpus = os.cpu_count() or 1
    return min(cpus, 4) if cpus > 1 else 0


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for large logs, when stderr is a terminal."""
    if total < _LARGE_LOG or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "verifying",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("verify", total=total)
        yield lambda done: bar.update(task, completed=done)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{what} file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {what} file {path}: {exc}") from exc


@audit_app.command("checkpoint")
def checkpoint_command(db: DbOption) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    with opened(db) as store:
        # A valid note holds no control characters but its newlines; one read from a tampered
        # store may, and is printed with them escaped.
        _write(plain(store.latest_checkpoint().text, lines=True))


@audit_app.command("export")
def export_command(
    db: DbOption,
    start: Annotated[int, typer.Option("--start", min=0, help="First index to export.")] = 0,
    end: Annotated[
        int | None, typer.Option("--end", min=0, help="Stop before this index (default: all).")
    ] = None,
) -> None:
    """Print entries as JSON lines: {"index": N, "event": {...}}, each event exactly as hashed.

    The one output printed byte for byte as stored (hashing it must give the leaf hash): it is
    for files and pipes, and shows log text unescaped; read it with a JSON tool, not a terminal."""
    out = sys.stdout.buffer
    with opened(db) as store:
        batch: list[bytes] = []
        for entry in store.raw_entries(start, end):
            # The stored bytes are spliced in verbatim, so hashing the "event" member of a line
            # (with the 0x00 prefix) gives the leaf hash in the tree.
            batch.append(b'{"index":%d,"event":%b}\n' % (entry.index, entry.leaf))
            if len(batch) >= 4096:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
        out.flush()


@audit_app.command("prove")
def prove_command(
    db: DbOption,
    index: Annotated[
        int | None, typer.Option("--index", min=0, help="Prove the inclusion of this entry.")
    ] = None,
    consistency: Annotated[
        int | None,
        typer.Option("--consistency", min=0, help="Prove that the log of this size is a prefix."),
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", min=0, help="Tree size to prove against (default: all).")
    ] = None,
) -> None:
    """Print an RFC 9162 inclusion (--index) or consistency (--consistency) proof as JSON."""
    if (index is None) == (consistency is None):
        # A usage error: one line and typer's exit code for usage errors.
        print(
            "authchain: error: give exactly one of --index N or --consistency OLD", file=sys.stderr
        )
        raise typer.Exit(2)
    with opened(db) as store:
        if index is not None:
            proof = store.inclusion_proof(index, size).to_dict()
        else:
            assert consistency is not None
            proof = store.consistency_proof(consistency, size).to_dict()
    _write(orjson.dumps(proof).decode() + "\n")
