"""Code versions that cannot silently drift.

A stage's `code_version` (tasks/catalog.py) is part of its artifact key: bumping it recomputes that stage
and everything after it. It stays explicit, so that nobody loses a night of GPU work to a comment change.
What keeps it honest is the record in tasks/code_versions.json: for every stage, its code version and a
digest of each source module its artifact depends on, i.e. its compute module and every project module
that module reaches through imports (stage plumbing such as tasks/stage.py is left out). Digests are taken
over the syntax tree without docstrings, so comments, docstrings and formatting never count.

The nouns (tasks/artifacts.py) are versioned on their own, so that changing how one artifact is saved does not
touch every stage's record: a stage's closure leaves tasks/artifacts.py out, and the record's "nouns" section
holds, for every noun a catalog stage makes, its format `version` and
- "digest": its definition, i.e. the code of its class and the class's bases (with the helpers and value types
  of their module that this code uses, e.g. `columns` for tables, `EditViews` for the views) and the call that
  declares the noun (its `version` left out), each without docstrings;
- "sources": the digest of every project module that this code imports (`Renders`, `CameraSet`,
  `camera_table`), and of every module those reach, as for a stage.
A bumped format version enters the key of every stage that makes or loads the noun (tasks/stage.py). What a
stage imports from tasks/artifacts.py besides nouns and what they own (a helper such as `rows`) stays in the
stage's own sources, as "tasks/artifacts.py:NAME" with the digest of that definition and what it uses.

`python -m tasks.code_versions` checks the record (tests/tasks/test_code_versions.py does the same) and fails
when a stage's source changed and its code version did not, or a noun's code changed and its format version
did not. Then either
- bump the stage's `code_version` in tasks/catalog.py (a noun's `version` where it is declared, in
  tasks/artifacts.py) and run `python -m tasks.code_versions --record`, or,
  when the change cannot alter the stage's artifact (a refactoring, a faster equivalent) or what the noun
  saves and loads,
- run `python -m tasks.code_versions --outputs-unchanged NAME [NAME ...]` (stage and noun names), which records
  the new source with the old version: the existing artifacts stay valid.
`--record` also records stages and nouns that are new.

The digests are taken in tasks/source_digests.py (a stage's modules, and each file's digest) and
tasks/noun_digests.py (a noun's definition, and the helpers of tasks/artifacts.py); this module keeps the record.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tasks.noun_digests import artifacts_helpers, noun_entry
from tasks.source_digests import NOUNS_MODULE, PROJECT_ROOT, ReadSource, read_text, reached_sources, relative, source_digest

RECORD = Path(__file__).with_name("code_versions.json")
NOUNS = "nouns"  # the record's section of nouns, beside one entry per stage


def stage_sources(compute_module: str, read: ReadSource = read_text) -> dict[str, str]:
    """Relative path -> digest of every source a stage's artifact depends on; what its modules import from
    tasks/artifacts.py besides the nouns (and what the nouns own) as "tasks/artifacts.py:NAME"."""
    files = set(reached_sources(compute_module, read))
    helpers, modules = artifacts_helpers(files, read)
    for name in modules:
        files.update(reached_sources(name, read))
    return {**{relative(path): source_digest(path, read) for path in sorted(files)}, **helpers}


def current(read: ReadSource = read_text) -> dict[str, dict]:
    """What the record should say now: per stage, its code version and its sources' digests; under "nouns", per
    noun a catalog stage makes, its format version, the digest of its definition and its sources' digests."""
    from tasks.catalog import all_stages

    stages = all_stages()
    if any(stage.name == NOUNS for stage in stages):
        raise ValueError(f"a stage may not be called {NOUNS!r}: the record keeps its nouns under that name")
    nouns: dict[str, Any] = {}
    makers: dict[str, list[str]] = {}
    for stage in stages:
        for noun in stage.makes:
            if nouns.setdefault(noun.name, noun) is not noun:
                raise ValueError(f"two different nouns are called {noun.name!r}")
            makers.setdefault(noun.name, []).append(stage.compute_module)
    record: dict[str, dict] = {
        stage.name: {"code_version": stage.code_version, "sources": stage_sources(stage.compute_module, read)} for stage in stages
    }
    record[NOUNS] = {name: noun_entry(noun, [NOUNS_MODULE, *makers[name]], read) for name, noun in sorted(nouns.items())}
    return record


def recorded() -> dict[str, dict]:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {}


def _stages(entries: dict[str, dict]) -> dict[str, dict]:
    return {name: entry for name, entry in entries.items() if name != NOUNS}


def _noun_changes(entry: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """What changed in a noun's code: its definition, and the paths of its sources that changed."""
    sources, before = entry["sources"], old.get("sources", {})
    changed = sorted(path for path in set(sources) | set(before) if sources.get(path) != before.get(path))
    return (["its definition in " + entry["declared_in"]] if entry["digest"] != old.get("digest") else []) + changed


def problems(now: dict[str, dict], record: dict[str, dict]) -> list[str]:
    """One line per stage or noun whose record is out of date, saying what changed and what to do."""
    lines = []
    for stage, entry in _stages(now).items():
        old = record.get(stage)
        if old is None:
            lines.append(f"stage {stage!r} is not recorded: run `python -m tasks.code_versions --record`")
            continue
        changed = sorted(
            path for path in set(entry["sources"]) | set(old["sources"]) if entry["sources"].get(path) != old["sources"].get(path)
        )
        if entry["code_version"] != old["code_version"]:
            lines.append(
                f"stage {stage!r}: code version {old['code_version']} -> {entry['code_version']} is not recorded: "
                "run `python -m tasks.code_versions --record`"
            )
        elif changed:
            lines.append(
                f"stage {stage!r}: its source changed ({', '.join(changed)}) but its code version did not: bump its "
                f"code_version in tasks/catalog.py and run `python -m tasks.code_versions --record`, or, if its "
                f"artifacts cannot change, run `python -m tasks.code_versions --outputs-unchanged {stage}`"
            )
    lines += [f"stage {stage!r} is recorded but no longer in the catalog: run --record" for stage in sorted(set(_stages(record)) - set(now))]
    nouns, recorded_nouns = now.get(NOUNS, {}), record.get(NOUNS, {})
    for noun, entry in nouns.items():
        old = recorded_nouns.get(noun)
        if old is None:
            lines.append(f"noun {noun!r} is not recorded: run `python -m tasks.code_versions --record`")
        elif entry["version"] != old["version"]:
            lines.append(
                f"noun {noun!r}: format version {old['version']} -> {entry['version']} is not recorded: "
                "run `python -m tasks.code_versions --record`"
            )
        elif changes := _noun_changes(entry, old):
            lines.append(
                f"noun {noun!r}: its format code changed ({', '.join(changes)}) but its format version did not: bump "
                f"its `version` in {entry['declared_in']} and run `python -m tasks.code_versions --record`, or, if what "
                f"it saves and loads cannot change, run `python -m tasks.code_versions --outputs-unchanged {noun}`"
            )
    lines += [f"noun {noun!r} is recorded but no stage makes it any more: run --record" for noun in sorted(set(recorded_nouns) - set(nouns))]
    return lines


def update(now: dict[str, dict], record: dict[str, dict], outputs_unchanged: Iterable[str] = ()) -> dict[str, dict]:
    """The new record: stages and nouns with a new version (or new ones) as they are now; stages whose source
    changed with the same version, and nouns whose code changed with the same format version, only when named in
    `outputs_unchanged`. Raises ValueError for the others, and for a name that is neither a stage nor a noun."""
    allowed = set(outputs_unchanged)
    stages, nouns, recorded_nouns = _stages(now), now.get(NOUNS, {}), record.get(NOUNS, {})
    unknown = allowed - set(stages) - set(nouns)
    if unknown:
        raise ValueError(f"unknown stage(s) or noun(s) {sorted(unknown)}; stages are {', '.join(stages)}; nouns are {', '.join(nouns)}")
    refused = [
        stage
        for stage, entry in stages.items()
        if stage in record
        and entry["code_version"] == record[stage]["code_version"]
        and entry["sources"] != record[stage]["sources"]
        and stage not in allowed
    ]
    refused_nouns = [
        noun
        for noun, entry in nouns.items()
        if noun in recorded_nouns
        and entry["version"] == recorded_nouns[noun]["version"]
        and _noun_changes(entry, recorded_nouns[noun])
        and noun not in allowed
    ]
    errors = []
    if refused:
        errors.append(
            f"the source of {refused} changed but not the code version: bump it in tasks/catalog.py, or pass "
            f"--outputs-unchanged {' '.join(refused)} if their artifacts cannot change"
        )
    if refused_nouns:
        errors.append(
            f"the format code of the noun(s) {refused_nouns} changed but not the format version: bump their `version` "
            f"where they are declared (tasks/artifacts.py), or pass --outputs-unchanged {' '.join(refused_nouns)} if what "
            "they save and load cannot change"
        )
    if errors:
        raise ValueError("; ".join(errors))
    return now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or update tasks/code_versions.json.")
    parser.add_argument(
        "--record", action="store_true", help="record stages and nouns whose (format) version was bumped, and new ones"
    )
    parser.add_argument(
        "--outputs-unchanged",
        nargs="+",
        default=[],
        metavar="NAME",
        help="record these stages' or nouns' new source with their old (format) version",
    )
    args = parser.parse_args(argv)
    now, record = current(), recorded()
    if args.record or args.outputs_unchanged:
        try:
            RECORD.write_text(json.dumps(update(now, record, args.outputs_unchanged), indent=1, sort_keys=True) + "\n")
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"recorded {len(_stages(now))} stages and {len(now[NOUNS])} nouns in {RECORD.relative_to(PROJECT_ROOT)}")
        return 0
    found = problems(now, record)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"{len(_stages(now))} stages and {len(now[NOUNS])} nouns: code and format versions match their sources")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
