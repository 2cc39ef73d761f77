"""What the command line answers before it imports anything heavy: the version, presets, config files and the
store, each mistake in one line with exit code 2; and the effective configuration on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dreamedit3d_core.config import PipelineConfig, pipeline_config
from dreamedit3d_core.environment import ENVIRONMENT
from flows.config_docs import DOC_FILE, configuration_doc, recorded_doc
from flows.config_keys import key_tree, recorded_tree
from tests.helpers import PROJECT_ROOT, RunCli


def early(*argv: str) -> tuple[str | None, list[str]]:
    """`early_mistake(argv)` in a fresh interpreter, and the heavy modules it imported (none, it must be)."""
    script = (
        "import json, sys; from flows.cli.settings import early_mistake; "
        f"found = early_mistake({list(argv)!r}); "
        "heavy = [m for m in ('torch', 'prefect', 'diffusers', 'dreamedit3d_core.config') if m in sys.modules]; "
        "print(json.dumps([found, heavy]))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    found, heavy = json.loads(result.stdout)
    return found, heavy


def test_mistakes_are_found_without_importing_the_pipeline(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    (tmp_path / "typo.yaml").write_text("render:\n  image_sise: 128\nmask:\n  groups: {seat: [seat]}\n")
    (tmp_path / "list.yaml").write_text("- 1\n")
    (tmp_path / "good.yaml").write_text("render:\n  image_size: 128\nmask:\n  groups: {anything: [x]}\n")
    cases = {
        ("--preset", "huge"): "unknown preset 'huge'; choose one of mvdream, tiny, world",
        ("--preset=nope",): "unknown preset 'nope'",
        ("--config", str(tmp_path / "missing.yaml")): "config file not found",
        ("--config", str(tmp_path / "typo.yaml")): "typo.yaml: unknown setting 'render.image_sise'; did you mean 'render.image_size'?",
        ("--config", str(tmp_path / "list.yaml")): "expected a mapping of stage settings",
        ("--store", str(tmp_path / "afile" / "store")): "afile is a file, not a folder",
    }
    for argv, expected in cases.items():
        found, heavy = early("edit", "x.glb", *argv)
        assert found is not None and expected in found, (argv, found)
        assert heavy == [], heavy
    assert early("edit", "x.glb", "--config", str(tmp_path / "good.yaml"), "--store", str(tmp_path / "new")) == (None, [])
    (tmp_path / "world.yaml").write_text("pretrain:\n  steps: 3\n")  # the world commands' own config sections
    assert early("world", "train", "--config", str(tmp_path / "world.yaml")) == (None, [])
    (tmp_path / "mvdream.yaml").write_text("model:\n  target: ldm.MultiViewLDM\n")  # MVDream's own model file
    assert early("convert-mvdream", "x.ckpt", "--config", str(tmp_path / "mvdream.yaml"), "--out", "y") == (None, [])


def test_a_command_that_names_no_preset_makes_real_edits_and_tiny_says_it_is_noise(cli: RunCli, tmp_path: Path) -> None:
    """`world` by default; `mvdream` when a converted MVDream folder is configured; `tiny` only when named."""
    base = {k: v for k, v in os.environ.items() if k not in ("DREAMEDIT3D_PRESET", "DREAMEDIT3D_MVDREAM")}

    def show(*args: str, **env: str) -> tuple[dict, str]:
        result = cli("config", "show", "--json", *args, env={**base, **env})
        return json.loads(result.stdout), result.stderr

    settings, said = show()
    assert settings["preset"] == "world" and settings["model"]["source"] == "world" and said == ""
    settings, _ = show(DREAMEDIT3D_MVDREAM=str(tmp_path / "mvdream-model"))
    assert settings["preset"] == "mvdream" and settings["model"]["path"] == str(tmp_path / "mvdream-model")
    settings, said = show("--preset", "tiny")
    assert settings["preset"] == "tiny"
    assert said.strip() == "preset tiny: random untrained models, every edit comes out as noise (to try the pipeline in seconds; --preset world edits for real)"
    settings, said = show(DREAMEDIT3D_PRESET="tiny")
    assert settings["preset"] == "tiny" and "noise" in said
    assert early_with_env({"DREAMEDIT3D_PRESET": "huge"}, "edit", "x.glb").startswith("DREAMEDIT3D_PRESET=huge: unknown preset 'huge'")


def early_with_env(env: dict[str, str], *argv: str) -> str:
    script = f"from flows.cli.settings import early_mistake; print(early_mistake({list(argv)!r}))"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, env={**os.environ, **env}, check=True
    ).stdout.strip()


def test_the_recorded_setting_names_match_the_config_classes() -> None:
    assert recorded_tree() == key_tree(PipelineConfig), "run `python -m flows.config_keys --record`"


def test_the_settings_reference_is_what_the_config_classes_write_now() -> None:
    """docs/configuration.md: every setting once, with its marks, defaults, presets and comment."""
    assert recorded_doc() == configuration_doc(), f"{DOC_FILE} is stale: run `python -m flows.config_keys --record`"
    doc, environment = recorded_doc().split("\n## Environment variables\n")
    lines = [line for line in doc.splitlines() if line.startswith("| `")]
    rows = {line.split(" | ")[0].strip("| `"): line for line in lines}
    assert len(rows) == len(lines) and sorted(rows) == sorted(_dotted(key_tree(PipelineConfig)))  # each setting once
    assert "| per-asset |" in rows["mask.sam.prompts"] and "| execution-only |" in rows["render.threads"]
    assert "| execution-only |" in rows["model.performance.dtype"]  # inside an execution-only section
    assert "| `256` | tiny: `64`; world: `64` |" in rows["render.image_size"]  # mvdream keeps the default
    assert "initializer for components whose word the tokenizer does not know" in rows["invert.class_word"]
    assert "[presets.md](presets.md)" in doc and "(configuration.md)" in (DOC_FILE.parent / "README.md").read_text()
    variables = {line.split(" | ")[0].strip("| `"): line for line in environment.splitlines() if line.startswith("| `")}
    assert list(variables) == [declared.name for declared in ENVIRONMENT]  # every one, from its declaration
    assert "| `float` | `60` | execution-only |" in variables["DREAMEDIT3D_LOCK_LEASE_S"]
    assert "| `str` | unset | execution-only |" in variables["DREAMEDIT3D_PRESET"]


def _dotted(tree: dict, prefix: str = "") -> list[str]:
    """Every setting's dotted name, a nested config class's too; not the sections (`render`: a page section)."""
    found = []
    for name, inner in tree.items():
        found += [f"{prefix}{name}"] if prefix or not isinstance(inner, dict) else []
        found += _dotted(inner, f"{prefix}{name}.") if isinstance(inner, dict) else []
    return found


@pytest.mark.parametrize("args", [("--version",), ("edit", "x.glb", "--preset", "huge")])
def test_the_command_line_answers_these_at_once(cli: RunCli, args: tuple[str, ...]) -> None:
    result = cli(*args, check=False)
    if args == ("--version",):
        assert result.returncode == 0 and result.stdout.startswith("dreamedit3d 0.")
    else:
        assert result.returncode == 2 and result.stderr.startswith("error: unknown preset 'huge'")


def test_config_show_prints_the_effective_validated_configuration(cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "over.yaml").write_text("render:\n  image_size: 128\n")
    result = cli("config", "show", "--preset", "world", "--config", str(tmp_path / "over.yaml"), "--json")
    shown = json.loads(result.stdout)
    expected = pipeline_config("world", {"render": {"image_size": 128}}).model_dump(mode="json")
    assert shown == expected and shown["preset"] == "world" and shown["render"]["image_size"] == 128
    (tmp_path / "bad.yaml").write_text("mask:\n  min_coverage: -1\n")
    bad = cli("config", "show", "--config", str(tmp_path / "bad.yaml"), check=False)
    assert bad.returncode == 2 and bad.stderr.startswith(f"error: {tmp_path / 'bad.yaml'}: mask.min_coverage:")
