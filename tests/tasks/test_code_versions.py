"""Code versions cannot silently drift: a stage's source that changed without a version bump fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.code_versions import PROJECT_ROOT, current, problems, recorded, stage_sources, update

PROMPTS = PROJECT_ROOT / "dreamedit3d_core" / "mvdiffusion" / "prompts.py"


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
    assert "tasks/render.py" in render and "tasks/artifacts.py" in render
    assert not any(path.startswith("dreamedit3d_core/mvdiffusion/") for path in render)  # unrelated code
    assert not any(path in render for path in ("tasks/stage.py", "tasks/running.py", "tasks/catalog.py"))  # plumbing
    assert "dreamedit3d_core/mvdiffusion/prompts.py" in stage_sources("tasks.sample")
