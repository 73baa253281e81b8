"""``authchain policy``: check a policy directory, explain one decision (docs/policy.md, "CLI").

Thin on purpose: loading, validation, hashing and deciding all live in :mod:`authchain.policy`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from authchain._encoding import json_loads_strict
from authchain.cli import app
from authchain.cli._text import plain, print_json
from authchain.errors import ConfigurationError, MalformedError
from authchain.policy import Decision, PolicyEngine, PolicyRequest, PolicySettings

policy_app = typer.Typer(
    name="policy",
    help="Check policy sets and explain decisions (Cedar, request-time).",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")

# A request file is small; anything larger is a mistake, not a request.
_MAX_REQUEST_BYTES = 1 << 20

_JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
_SettingsOption = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        help="Settings JSON (trust domains, sensitive scopes, depth limit); "
        "default: DIR/settings.json, else the built-in defaults.",
    ),
]


def _engine(directory: Path | None, settings_file: Path | None) -> PolicyEngine:
    settings = PolicySettings.from_file(settings_file) if settings_file is not None else None
    if directory is None:
        return PolicyEngine.default(settings=settings)
    return PolicyEngine.from_directory(directory, settings=settings)


@policy_app.command("check")
def check(
    directory: Annotated[Path, typer.Argument(help="Directory of .cedar policy files.")],
    settings: _SettingsOption = None,
    as_json: _JsonOption = False,
) -> None:
    """Validate every policy against the schema; print the set's hash and policy ids."""
    engine = _engine(directory, settings)
    if as_json:
        print_json(
            {
                "source": engine.source,
                "policy_set_hash": engine.policy_set_hash,
                "policies": [
                    {"id": p.id, "effect": p.effect, "reason": p.reason, "file": p.file}
                    for p in engine.policies
                ],
                "settings": engine.settings.to_dict(),
            }
        )
        return
    # Policy files are text someone wrote: printed with their control characters escaped.
    print(f"ok: {len(engine.policies)} policies valid in {plain(engine.source)}")
    print(f"policy set hash: {engine.policy_set_hash}")
    width = max(len(plain(p.id)) for p in engine.policies)
    for p in engine.policies:
        print(f"  {plain(p.id):<{width}}  {plain(p.effect):<6}  {plain(p.reason)}")


@policy_app.command("explain")
def explain(
    request_file: Annotated[
        Path, typer.Option("--request", help="The request as JSON (docs/policy.md, 'Requests').")
    ],
    policies: Annotated[
        Path | None,
        typer.Option("--policies", help="Directory of .cedar files; default: the shipped pack."),
    ] = None,
    settings: _SettingsOption = None,
    as_json: _JsonOption = False,
) -> None:
    """Decide one request and show the effect, determining policies with reasons, and errors."""
    try:
        raw = request_file.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{request_file}: cannot read request: {exc.strerror}") from exc
    try:
        request = PolicyRequest.from_dict(json_loads_strict(raw, max_len=_MAX_REQUEST_BYTES))
    except MalformedError as exc:
        raise MalformedError(f"{request_file}: {exc.message}") from exc
    except TypeError as exc:
        raise MalformedError(f"{request_file}: {exc}") from exc
    engine = _engine(policies, settings)
    decision = engine.decide(request)
    if as_json:
        print_json(decision.to_dict())
        return
    _print_decision(decision)


def _print_decision(decision: Decision) -> None:
    print(f"effect: {decision.effect}")
    print(f"decision: {decision.id}")
    print(f"policy set hash: {decision.policy_set_hash}")
    if decision.policies:
        print("allowed by:" if decision.allowed else "denied by:")
        for policy_id, reason in zip(decision.policies, decision.reasons, strict=False):
            print(f"  {plain(policy_id)}: {plain(reason)}")
    else:
        for reason in decision.reasons:
            print(f"reason: {plain(reason)}")
    if decision.errors:
        print("errors:")
        for error in decision.errors:
            print(f"  {plain(' '.join(error.split()))}")
