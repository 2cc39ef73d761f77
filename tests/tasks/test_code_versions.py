"""Code versions cannot silently drift: a stage's source that changed without a version bump fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tasks import artifacts as a
from tasks.catalog import all_stages
from tasks.code_versions import NOUNS, PROJECT_ROOT, current, main, problems, recorded, stage_sources, update

PROMPTS = PROJECT_ROOT / "dreamedit3d_core" / "mvdiffusion" / "prompts.py"
ARTIFACTS = PROJECT_ROOT / "tasks" / "artifacts.py"
RENDERS = PROJECT_ROOT / "dreamedit3d_core" / "render" / "renders.py"


def reading(path: Path, change: callable) -> callable:
    """A source reader that sees `path` changed by `change` and every other file as it is."""

    def read(candidate: Path) -> str:
        text = candidate.read_text(encoding="utf-8")
        return change(text) if candidate == path else text

    return read


def test_the_record_matches_every_stages_source_and_version() -> None:
    assert problems(current(), recorded()) == [], "run `python -m tasks.code_versions` to see what to do"


def test_changing_a_line_of_prompts_py_without_a_version_bump_fails() -> None:
    source = PROMPTS.read_text()
    line = next(line for line in source.splitlines() if line.strip().startswith("return ") and "(" in line)
    changed = current(reading(PROMPTS, lambda text: text.replace(line, line + " if True else None", 1)))
    found = problems(changed, recorded())
    assert any("stage 'sample'" in p and "dreamedit3d_core/mvdiffusion/prompts.py" in p for p in found), found
    assert all("bump its code_version" in p for p in found)
    with pytest.raises(ValueError, match="changed but not the code version"):
        update(changed, recorded())
    stages = [p.split("'")[1] for p in found]
    assert problems(update(changed, recorded(), outputs_unchanged=stages), changed) == []  # "no change to outputs"
    bumped = {name: ({**entry, "code_version": "99"} if name in stages else entry) for name, entry in changed.items()}
    assert update(bumped, recorded()) == bumped  # a bump is recorded without ceremony


def test_comments_docstrings_and_layout_do_not_count() -> None:
    def cosmetic(text: str) -> str:
        return text.replace('"""', '"""Reworded. ', 1).replace("\n\n\n", "\n\n\n# a comment\n", 1) + "\n\n"

    assert problems(current(reading(PROMPTS, cosmetic)), recorded()) == []


def test_a_stage_depends_on_the_modules_it_reaches_and_the_scripts_it_runs() -> None:
    render = stage_sources("tasks.render")
    assert "dreamedit3d_core/render/blender_scene.py" in render  # run by Blender in a subprocess, found by its name
    # and the modules it imports from its own folder (plain imports, which the closure does not follow)
    folder = PROJECT_ROOT / "dreamedit3d_core" / "render"
    script = ast.parse((folder / "blender_scene.py").read_text())
    siblings = {n.module for n in ast.walk(script) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    siblings = {name for name in siblings if (folder / f"{name}.py").is_file()}
    assert siblings and all(f"dreamedit3d_core/render/{name}.py" in render for name in siblings), siblings
    assert "tasks/render.py" in render and "tasks/artifacts.py" not in render  # the nouns have records of their own
    assert not any(path.startswith("dreamedit3d_core/mvdiffusion/") for path in render)  # unrelated code
    assert not any(path in render for path in ("tasks/stage.py", "tasks/running.py", "tasks/catalog.py"))  # plumbing
    assert "dreamedit3d_core/mvdiffusion/prompts.py" in stage_sources("tasks.sample")



@pytest.fixture(scope="module")
def now() -> dict[str, dict]:
    """The record as the sources are now: the tests below change one file and compare with it (not with
    tasks/code_versions.json, which another change may have left behind)."""
    return current()


def replaced(old: str, new: str) -> callable:
    def change(text: str) -> str:
        assert text.count(old) == 1, old
        return text.replace(old, new)

    return change


def named(found: list[str]) -> tuple[set[str], set[str]]:
    """The stages and the nouns the problem lines name."""
    pairs = [line.split("'")[:2] for line in found]
    return {name for kind, name in pairs if kind == "stage "}, {name for kind, name in pairs if kind == "noun "}


def test_every_noun_a_stage_makes_is_recorded_with_its_format_version(now: dict[str, dict]) -> None:
    nouns = now[NOUNS]
    assert {noun.name for stage in all_stages() for noun in stage.makes} == set(nouns)
    assert all(entry["version"] == "1" and entry["declared_in"] == "tasks/artifacts.py" for entry in nouns.values())
    # what the renders' save and load use from the project: Renders, and the cameras module renders.py imports
    assert set(nouns["renders"]["sources"]) == {"dreamedit3d_core/render/renders.py", "dreamedit3d_core/geometry/cameras.py"}
    assert nouns["parts"]["sources"] == {}  # a table: all its code is in tasks/artifacts.py
    assert a.FileNoun("x", "an example", ".bin", version="2").format_version == "2" and a.PARTS.format_version == "1"


def test_changing_how_one_noun_is_saved_fails_for_that_noun_and_no_stage(now: dict[str, dict]) -> None:
    changed = current(reading(ARTIFACTS, replaced('attrs={"frame": "world"}', 'attrs={"frame": "camera"}')))
    found = problems(changed, now)
    assert named(found) == (set(), {"renders"}), found
    assert "its definition in tasks/artifacts.py" in found[0] and "bump its `version` in tasks/artifacts.py" in found[0]
    assert "--outputs-unchanged renders" in found[0]
    with pytest.raises(ValueError, match=r"format code of the noun\(s\) \['renders'\] changed"):
        update(changed, now)
    assert problems(update(changed, now, outputs_unchanged=["renders"]), changed) == []
    bumped = {**changed, NOUNS: {**changed[NOUNS], "renders": {**changed[NOUNS]["renders"], "version": "2"}}}
    assert update(bumped, now) == bumped  # a bump is recorded without ceremony
    assert problems(bumped, now) == ["noun 'renders': format version 1 -> 2 is not recorded: run `python -m tasks.code_versions --record`"]


def test_a_nouns_base_class_helpers_and_declaration_count_for_it(now: dict[str, dict]) -> None:
    base = problems(current(reading(ARTIFACTS, replaced("self.about = about", "self.about = about.strip()"))), now)
    assert named(base) == (set(), set(now[NOUNS]))  # every noun's class derives from Noun
    png = problems(current(reading(ARTIFACTS, replaced('format="PNG")', 'format="PNG", optimize=True)'))), now)
    pictures = {noun.name for stage in all_stages() for noun in stage.makes if isinstance(noun, a.PictureNoun)}
    assert named(png) == (set(), pictures)  # `png_bytes`, which PictureNoun's save calls
    suffix = replaced('"turntable", "the edited asset turning (GIF)", ".gif"', '"turntable", "the edited asset turning", ".webp"')
    assert named(problems(current(reading(ARTIFACTS, suffix)), now)) == (set(), {"turntable"})
    # the version in the declaration is not part of the digest: bumping it is a version change, not a code change
    bump = replaced('normals, part_id, albedo", version="1"', 'normals, part_id, albedo", version="2"')
    assert problems(current(reading(ARTIFACTS, bump)), now) == []


def test_a_module_a_nouns_code_imports_counts_for_the_noun(now: dict[str, dict]) -> None:
    found = problems(current(reading(RENDERS, lambda text: text + "\n\nEXTRA = 1\n")), now)
    stages, nouns = named(found)
    assert nouns == {"renders", "cameras", "world_cameras"}  # Renders, and camera_table of the same module
    assert "render" in stages and "ingest" not in stages  # the render stage imports renders.py itself; ingest does not


def test_a_helper_of_tasks_artifacts_counts_for_the_stages_that_import_it(now: dict[str, dict]) -> None:
    helper = replaced("zip(table, values, strict=True)", "zip(table, values, strict=False)")
    found = problems(current(reading(ARTIFACTS, helper)), now)
    assert named(found) == ({"evaluate"}, set()), found  # only evaluate uses `rows`; no noun does
    assert "(tasks/artifacts.py:rows)" in found[0]
    reworded = replaced('"""Columns -> rows (dicts), the shape core functions take."""', '"""Reworded."""')
    assert problems(current(reading(ARTIFACTS, reworded)), now) == []


def test_outputs_unchanged_takes_stage_and_noun_names_and_refuses_others(
    now: dict[str, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    assert update(now, now, outputs_unchanged=["render", "renders"]) == now
    with pytest.raises(ValueError, match=r"unknown stage\(s\) or noun\(s\) \['rendering'\]"):
        update(now, now, outputs_unchanged=["rendering"])
    assert main(["--outputs-unchanged", "rendering"]) == 2  # refused before anything is written
    assert "unknown stage(s) or noun(s) ['rendering']" in capsys.readouterr().err


def test_record_records_a_noun_that_is_new(now: dict[str, dict]) -> None:
    without = {**now, NOUNS: {name: entry for name, entry in now[NOUNS].items() if name != "views"}}
    assert problems(now, without) == ["noun 'views' is not recorded: run `python -m tasks.code_versions --record`"]
    assert update(now, without) == now
    assert problems(without, now) == ["noun 'views' is recorded but no stage makes it any more: run --record"]
