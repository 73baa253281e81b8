"""``authchain version``."""

from __future__ import annotations

from authchain.cli import app


@app.command()
def version() -> None:
    """Print the installed version."""
    from authchain import __version__

    print(__version__)
