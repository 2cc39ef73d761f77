"""Store commands: `status` (where every asset stands), `verify` (incomplete or corrupt artifacts), `prune`
(give space back) and `ledger compact`.

The commands are plain functions; flows/cli/app.py puts them on the app, in the order `--help` lists them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import DEFAULT_STORE, JsonOption, StoreOption, emit


def status(store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False) -> None:
    """Where every asset stands: assets x stages (done, failed, missing) with times from the ledger."""
    from flows.status import stage_status, status_text

    table = stage_status(store)
    emit(as_json, {"assets": table}, status_text(table))


def verify(
    store: StoreOption = DEFAULT_STORE,
    repair: Annotated[bool, typer.Option("--repair/--check-only", help="Remove broken artifacts so they are recomputed.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Find incomplete or corrupt artifacts and say what was done with them. With --check-only, exit 1 when
    there are problems (nothing is changed)."""
    from storage import ArtifactStore

    report = ArtifactStore(store).verify(repair=repair)
    payload = {
        "clean": report.clean,
        "problems": [{"what": what, "problem": problem, "action": action} for what, problem, action in report.problems],
    }
    emit(as_json, payload, str(report))
    if not repair and not report.clean:
        raise SystemExit(1)  # not typer.Exit: the app runs with standalone_mode=False, which swallows it


def prune(
    older_than: Annotated[float, typer.Option("--older-than", help="Days without use after which an artifact goes.")] = 30.0,
    apply: Annotated[bool, typer.Option("--apply", help="Remove them (without it: only say what would go).")] = False,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Give space back: the files of writes that never committed, and artifacts no run has used (computed or
    found cached) for --older-than days. Says what and how much first; removes only with --apply."""
    from storage import ArtifactStore
    from storage.prune import prune_store

    report = prune_store(ArtifactStore(store), older_than, apply)
    payload = {
        "applied": report.applied,
        "size_bytes": report.size_bytes,
        "items": [{"what": c.what, "reason": c.reason, "size_bytes": c.size_bytes} for c in report.candidates],
    }
    emit(as_json, payload, str(report))


ledger_app = typer.Typer(name="ledger", help="The run ledger: one row per stage run.", no_args_is_help=True)


@ledger_app.command("compact")
def compact_ledger(store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False) -> None:
    """Rewrite the ledger's small files as one (the ledger also does it by itself past a few hundred)."""
    from storage import ArtifactStore

    ledger = ArtifactStore(store).ledger
    before = len(ledger.parts())
    removed = ledger.compact()
    rows = ledger.read().num_rows
    emit(as_json, {"files_before": before, "files_removed": removed, "rows": rows},
         f"ledger: {before} files -> {len(ledger.parts())}, {rows} rows")
