"""``authchain demo``, ``authchain trace`` and ``authchain findings``: the attribution reports.

Thin: the scenario lives in :mod:`authchain.demo`, the reports in :mod:`authchain.attribution`; this
module opens the store, calls them, and renders the result (rich for people, ``--json`` for tools).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from authchain.attribution import Finding, Report, Severity, findings, trace
from authchain.audit.store import open_store
from authchain.cli import app
from authchain.cli._text import markup, new_console, plain, print_json
from authchain.cli.audit import opened

DEMO_DB = "authchain-demo.db"

_SEVERITY_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


#: ``authchain findings --fail-on`` exits with this code when a finding at or above the severity
#: exists (as ``authchain trace`` exits 1 on a broken path): distinct from 2 (usage) and from the
#: codes of errors (3 and up), so CI can tell "findings" from "could not look".
FINDINGS_EXIT: Final = 1

_SEVERITY_ORDER: Final = tuple(Severity)  # info, low, medium, high, critical


class _FailOn(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


def _e(value: Any) -> str:
    """``value`` as text that rich prints verbatim: log entries are untrusted, and an action name
    holding ``[/]``, ``[conceal]``, a terminal escape or a bidi control must neither break the
    report nor hide or reorder part of it."""
    return markup(value)


def _claim_text(value: Any) -> str:
    return plain(value if isinstance(value, str) else orjson.dumps(value).decode())


def render_report(console: Console, report: Report, *, title: str = "Attribution report") -> None:
    """The three answers, the path with its policies, the verdict, the findings, and apart from
    them what the reporter claimed."""
    event = report.event
    initiator = report.initiator or {}
    executor = report.executor or {}
    verdict_style = "bold green" if report.verdict == "complete" else "bold red"
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Event", f"#{_e(event['index'])} {_e(event['kind'])}  ({_e(event['id'])})")
    head.add_row("Task", _e(report.task or "-"))
    head.add_row(
        "Who initiated it?",
        f"{_e(initiator.get('id', 'unknown'))} ({_e(initiator.get('kind', '?'))})"
        if initiator
        else "unknown",
    )
    head.add_row(
        "Which identity executed it?",
        f"{_e(executor.get('id', 'unknown'))} ({_e(executor.get('kind', '?'))})"
        if executor
        else "unknown",
    )
    if report.presenter:
        # Proven by the presentation's proof, signed by a registered workload's key.
        head.add_row(
            "Who presented the token?",
            f"{_e(report.presenter.get('id'))} ({_e(report.presenter.get('kind', '?'))})",
        )
    head.add_row("Verdict", Text(report.verdict, style=verdict_style))
    console.print(Panel(head, title=title, expand=False))
    _render_refusal(console, report.refusal)

    if report.claims:
        # What a caller supplied: shown, so the investigator can weigh it, and labelled, so it is
        # never read as what the log proves.
        console.print("[bold]What the reporter claimed[/bold] [dim](claims, not evidence)[/dim]")
        for name, value in report.claims.items():
            console.print(
                Text.assemble(
                    "  " + plain(name).ljust(18) + " ", _claim_text(value), (" (claimed)", "dim")
                ),
                highlight=False,
            )

    # Blocks rather than a table: SPIFFE IDs, hashes and reasons stay whole and copyable.
    console.print("[bold]What allowed each delegation?[/bold]")
    if not report.chain:
        console.print("  nothing: this event has no authority path")
    for n, entry in enumerate(report.chain, 1):
        decision = entry.decision or {}
        console.print(
            f"  [bold]{n}.[/bold] {_e(entry.actor)}  "
            f"[dim]({_e(entry.kind)}, log #{entry.index})[/dim]",
            highlight=False,
        )
        console.print(f"     token      {_e(entry.token or '(issued by this event)')}")
        console.print(
            f"     decision   {_e(decision.get('effect', '?'))}  {_e(decision.get('id', ''))}"
        )
        for policy, reason in zip(
            decision.get("policies") or [], decision.get("reasons") or [], strict=False
        ):
            console.print(f"     policy     {_e(policy)}: {_e(reason)}", highlight=False)
        console.print(f"     policy set {_e(decision.get('policy_set_hash', '?'))}")
    render_findings(console, report.findings, title="Findings for this event")
    log = report.log
    console.print(f"[dim]log size {_e(log.get('size'))}, root {_e(log.get('root'))}[/dim]")


def _render_refusal(console: Console, refusal: dict[str, Any] | None) -> None:
    """Why the authority refused the event, and the decision that denied it."""
    if not refusal:
        return
    console.print("[bold]Why was it refused?[/bold]")
    console.print(f"  error      {_e(refusal.get('error'))}")
    if refusal.get("reason"):
        console.print(f"  reason     {_e(refusal['reason'])}")
    if refusal.get("input"):
        console.print(f"  input      {_e(refusal['input'])}")
    decision = refusal.get("decision")
    if not decision:
        return
    console.print(f"  decision   {_e(decision.get('effect', '?'))}  {_e(decision.get('id') or '')}")
    policies = decision.get("policies") or []
    reasons = decision.get("reasons") or []
    for policy, reason in zip(policies, reasons, strict=False):
        console.print(f"  policy     {_e(policy)}: {_e(reason)}")
    for reason in reasons[len(policies) :]:
        console.print(f"  reason     {_e(reason)}")
    console.print(f"  policy set {_e(decision.get('policy_set_hash') or '?')}")


def render_findings(
    console: Console, items: tuple[Finding, ...] | list[Finding], *, title: str
) -> None:
    if not items:
        console.print(f"[bold]{_e(title)}:[/bold] none")
        return
    console.print(f"[bold]{_e(title)}[/bold] ({len(items)})")
    for f in items:
        fw = f.frameworks
        style = _SEVERITY_STYLE.get(str(f.severity), "")
        evidence = " ".join(f"#{i}" for i in f.evidence) or "-"
        console.print(
            Text.assemble(
                ("  " + str(f.severity).upper().ljust(9), style), (plain(f.code), "bold")
            ),
            f"[dim]log {evidence}[/dim]",
        )
        # A message quotes the log (actions, principals, reasons): printed as plain text.
        console.print(Text("    " + plain(f.message)), highlight=False)
        refs = [
            " ".join(fw.owasp_asi),
            " ".join(fw.owasp_threats),
            "MAESTRO " + " ".join(fw.maestro),
            " ".join(fw.atlas),
            "NIST AI RMF " + " ".join(fw.nist_ai_rmf),
        ]
        console.print("    [dim]" + " · ".join(r for r in refs if r.strip()) + "[/dim]")


@app.command("demo")
def demo_command(
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help=f"SQLite file for the demo's log (default ./{DEMO_DB}, recreated)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the built-in multi-agent scenario and print the attribution report of its last action."""
    from authchain.demo import run_demo

    path = db or DEMO_DB
    if db is None:
        # The default file is the demo's own: start it afresh so the report is reproducible.
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    store = open_store(path, create=True)
    try:
        outcome = run_demo(store)
    finally:
        store.close()
    if as_json:
        print_json(outcome.to_dict())
        return
    out = new_console()
    out.print(f"[bold]Authchain demo[/bold]: log written to {_e(path)}")
    for step in outcome.steps:
        index = step.get("index")
        out.print(f"  [dim]#{_e(index)}[/dim] {_e(step['step'])}")
    out.print()
    render_report(out, outcome.report, title="The final tool action")
    out.print()
    render_findings(out, list(outcome.findings), title="Findings over the whole log")
    out.print(
        f"\n[dim]Verify the log: authchain audit verify --db {_e(path)}\n"
        f"Trace any entry: authchain trace --index N --db {_e(path)}[/dim]"
    )


@app.command("trace")
def trace_command(
    event_id: Annotated[str | None, typer.Argument(help="The event's id (a UUIDv7).")] = None,
    index: Annotated[int | None, typer.Option("--index", help="The event's log index.")] = None,
    db: Annotated[str, typer.Option("--db", help="The audit log (SQLite path).")] = DEMO_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """The attribution report for one event: initiator, executor, every hop and its policy."""
    if (event_id is None) == (index is None):
        raise typer.BadParameter("name the event by its id or by --index N (exactly one)")
    with opened(db) as store:
        report = trace(store, event_id=event_id, index=index)
    if as_json:
        print_json(report.to_dict())
    else:
        render_report(new_console(), report)
    # Like ``audit verify``: a broken authority path is a non-zero exit, so scripts can gate on it.
    if report.verdict != "complete":
        raise typer.Exit(1)


@app.command("findings")
def findings_command(
    task: Annotated[str | None, typer.Option("--task", help="Only this task's entries.")] = None,
    db: Annotated[str, typer.Option("--db", help="The audit log (SQLite path).")] = DEMO_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    fail_on: Annotated[
        _FailOn | None,
        typer.Option(
            "--fail-on",
            case_sensitive=False,
            help=f"Exit {FINDINGS_EXIT} when a finding of this severity or above exists (for CI).",
        ),
    ] = None,
) -> None:
    """Every finding over the log (or one task), after verifying the log."""
    with opened(db) as store:
        items = findings(store, txn=task)
    if as_json:
        print_json([f.to_dict() for f in items])
    else:
        render_findings(
            new_console(), items, title="Findings" + (f" for task {task}" if task else "")
        )
    if fail_on is not None:
        floor = _SEVERITY_ORDER.index(Severity(fail_on.value))
        if any(_SEVERITY_ORDER.index(f.severity) >= floor for f in items):
            raise typer.Exit(FINDINGS_EXIT)
