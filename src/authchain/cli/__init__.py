"""The ``authchain`` command line: a thin adapter over the core (docs/architecture.md).

Each sub-command group lives in its own module and registers itself on :data:`app`. Errors become
one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from authchain.errors import (
    AuthchainError,
    ConfigurationError,
    NotFoundError,
    PolicyError,
    StorageError,
    VerificationError,
)

__all__ = ["app", "main", "EXIT_CODES"]

app = typer.Typer(
    name="authchain",
    help="Attributable AI-agent actions: task tokens, request-time policy, a signed Merkle audit log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Attributable AI-agent actions: task tokens, request-time policy, a signed Merkle audit log."""


# Exit codes by error family. 2 is left to usage errors (typer/click's own convention).
EXIT_CODES: dict[type[AuthchainError], int] = {
    VerificationError: 1,
    ConfigurationError: 3,
    NotFoundError: 4,
    StorageError: 5,
    PolicyError: 6,
}


def _exit_code(exc: AuthchainError) -> int:
    for cls, code in EXIT_CODES.items():
        if isinstance(exc, cls):
            return code
    return 1


def _register() -> None:
    # Importing a command module registers its commands on ``app``. Imported lazily so that
    # ``authchain --help`` stays fast and an optional dependency missing breaks only its own group.
    from authchain.cli import _commands  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``authchain`` script."""
    _register()
    try:
        # Standalone mode lets typer report usage errors itself (exit 2); our errors propagate here.
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except AuthchainError as exc:
        # One line, whatever the message quotes (a forged entry's member, a path, a request):
        # its control and bidi characters are shown escaped (authchain.cli._text).
        from authchain.cli._text import plain

        print(f"authchain: error: {plain(exc.code)}: {plain(exc.message)}", file=sys.stderr)
        return _exit_code(exc)
    except KeyboardInterrupt:
        print("authchain: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a user never sees a traceback
        from authchain.cli._text import plain

        print(f"authchain: internal error: {type(exc).__name__}: {plain(exc)}", file=sys.stderr)
        return 70
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
