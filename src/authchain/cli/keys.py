"""``authchain keys``: the keys an investigator needs to check the audit log offline."""

from __future__ import annotations

from typing import Annotated

import typer

from authchain.cli import app
from authchain.cli._text import plain
from authchain.cli.audit import opened

keys_app = typer.Typer(
    name="keys",
    help="Keys: the audit log's verifier key.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("public")
def public_command(
    db: Annotated[str, typer.Option("--db", help="The audit log: a SQLite file path.")],
) -> None:
    """Print the log's verifier key in C2SP vkey form: <name>+<key id>+<base64 key>."""
    with opened(db) as store:
        # The key's name is read from the store file: printed with any control character escaped.
        print(plain(store.verifier_key()))
