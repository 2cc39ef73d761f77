"""Batch manifests in CSV, Parquet and YAML: the same entries from each, and every bad row named up front."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pydantic import BaseModel

from dreamedit3d_core.asset_settings import asset_field, asset_paths
from dreamedit3d_core.config import PipelineConfig, pipeline_config
from dreamedit3d_core.execution import execution_paths
from flows.manifest import ASSET_SETTINGS, ManifestError, check_asset_settings, read_manifest

BASE = pipeline_config("tiny")
GROUPS = {"mask": {"groups": {"seat": ["seat*"]}, "class_word": "chair"}}


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """A manifest folder with two asset files (their content does not matter to the manifest)."""
    folder = tmp_path / "library"
    (folder / "sub").mkdir(parents=True)
    (folder / "chair.glb").write_bytes(b"glTF")
    (folder / "sub" / "lamp.obj").write_text("v 0 0 0\n")
    return folder


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_parquet_and_yaml_give_the_same_entries(library: Path) -> None:
    csv_path = library / "manifest.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["asset", "edits", "overrides"])
        writer.writerow(["chair.glb", "a photo of <asset0> in gold | a photo of <asset1> in red", json.dumps(GROUPS)])
        writer.writerow(["sub/lamp.obj", "", ""])
    pq.write_table(
        pa.table(
            {
                "asset": ["chair.glb", "sub/lamp.obj"],
                "edits": [["a photo of <asset0> in gold", "a photo of <asset1> in red"], []],
                "overrides": [json.dumps(GROUPS), None],
            }
        ),
        library / "manifest.parquet",
    )
    (library / "manifest.yaml").write_text(
        yaml.safe_dump(
            {
                "assets": [
                    {
                        "asset": "chair.glb",
                        "edits": ["a photo of <asset0> in gold", "a photo of <asset1> in red"],
                        "overrides": GROUPS,
                    },
                    {"asset": "sub/lamp.obj"},
                ]
            }
        )
    )
    from_csv = read_manifest(csv_path, BASE)
    assert read_manifest(library / "manifest.parquet", BASE) == from_csv
    assert read_manifest(library / "manifest.yaml", BASE) == from_csv

    chair, lamp = from_csv
    assert (chair.row, lamp.row) == (1, 2)
    assert chair.asset == str((library / "chair.glb").resolve())
    assert lamp.asset == str((library / "sub" / "lamp.obj").resolve())
    assert chair.edits == ["a photo of <asset0> in gold", "a photo of <asset1> in red"]
    assert lamp.edits == []
    # A row's overrides reach that asset's config only, on top of the batch's config.
    assert chair.config(BASE).mask.groups == {"seat": ["seat*"]}
    assert chair.config(BASE).mask.class_word == "chair"
    assert chair.config(BASE).render == BASE.render
    assert lamp.config(BASE) == BASE


def test_a_spreadsheet_csv_with_a_byte_order_mark_reads(library: Path) -> None:
    path = library / "manifest.csv"
    path.write_bytes("asset,edits\nchair.glb,a photo of <asset0>\n".encode("utf-8-sig"))
    (entry,) = read_manifest(path, BASE)
    assert entry.edits == ["a photo of <asset0>"]


def test_paths_that_leave_the_manifest_folder_are_refused_naming_each_row(library: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.glb"
    outside.write_bytes(b"glTF")
    (library / "link.glb").symlink_to(outside)
    path = write_csv(
        library / "manifest.csv",
        "asset,edits\n"
        "chair.glb,a photo of <asset0>\n"
        "../outside.glb,a photo of <asset0>\n"
        f"{outside},a photo of <asset0>\n"
        "sub/../../outside.glb,\n"
        "link.glb,\n"
        f"file://{outside},\n",
    )
    with pytest.raises(ManifestError) as error:
        read_manifest(path, BASE)
    message = str(error.value)
    assert str(path) in message and "5 bad row(s)" in message
    assert "row 1:" not in message
    assert "row 2: asset '../outside.glb' escapes the manifest's folder" in message
    assert f"row 3: asset '{outside}': use a path relative to the manifest's folder" in message
    assert "row 4: asset 'sub/../../outside.glb' escapes" in message
    assert "row 5: asset 'link.glb' escapes" in message  # a symlink is followed before the check
    assert f"row 6: asset 'file://{outside}': give a path relative to the manifest's folder, not a file:// URL" in message


def test_missing_files_and_urls_are_refused_naming_the_row(library: Path) -> None:
    path = library / "manifest.yaml"
    path.write_text(
        yaml.safe_dump(
            [
                {"asset": "chair.glb", "edits": ["a photo of <asset0>"]},
                {"asset": "sub/missing.glb"},
                {"asset": "https://example.com/chair.glb"},
                {"edits": ["a photo of <asset0>"]},
            ]
        )
    )
    with pytest.raises(ManifestError) as error:
        read_manifest(path, BASE)
    message = str(error.value)
    assert "3 bad row(s)" in message
    assert "row 2: asset 'sub/missing.glb' not found" in message
    assert "row 3: asset 'https://example.com/chair.glb': give a path relative to the manifest's folder, not a https:// URL" in message
    assert "row 4: no asset given" in message


def test_bad_overrides_are_refused_naming_the_row_and_the_setting(library: Path) -> None:
    path = library / "manifest.yaml"
    path.write_text(
        yaml.safe_dump(
            [
                {"asset": "chair.glb", "overrides": {"render": {"image_sise": 64}}},
                {"asset": "chair.glb", "overrides": {"mask": {"class_word": "Two Words"}}},
                {"asset": "chair.glb", "overrides": "not a mapping"},
                {"asset": "chair.glb", "overrides": {"mask": {"groups": {"seat": []}}}},
                {"asset": "chair.glb", "overrides": GROUPS},
            ]
        )
    )
    with pytest.raises(ManifestError) as error:
        read_manifest(path, BASE)
    message = str(error.value)
    assert "4 bad row(s)" in message and "row 5" not in message
    assert "row 1:" in message and "image_sise" in message
    assert "row 2:" in message and "class_word must be one lowercase word" in message
    assert "row 3: overrides is not valid JSON" in message
    assert "row 4:" in message and "group 'seat' is empty" in message


def test_overrides_in_a_csv_must_be_a_json_object(library: Path) -> None:
    path = write_csv(library / "manifest.csv", 'asset,overrides\nchair.glb,"{""mask"": "\nchair.glb,[1]\n')
    with pytest.raises(ManifestError) as error:
        read_manifest(path, BASE)
    assert "row 1: overrides is not valid JSON" in str(error.value)
    assert "row 2: overrides must be a mapping of stage settings" in str(error.value)


def test_unknown_columns_are_errors_in_every_row_even_where_empty(library: Path) -> None:
    path = write_csv(library / "manifest.csv", "asset,edits,prompt\nchair.glb,a photo of <asset0>,\nchair.glb,,x\n")
    with pytest.raises(ManifestError) as error:
        read_manifest(path, BASE)
    message = str(error.value)
    assert "2 bad row(s)" in message
    assert "row 1: unknown column(s) ['prompt']" in message and "row 2: unknown column(s) ['prompt']" in message

    typo = library / "manifest.yaml"
    typo.write_text(yaml.safe_dump([{"asset": "chair.glb", "edit": ["a photo of <asset0>"]}]))
    with pytest.raises(ManifestError, match=r"row 1: unknown column\(s\) \['edit'\]"):
        read_manifest(typo, BASE)


def test_a_csv_row_longer_than_its_header_is_named(library: Path) -> None:
    path = write_csv(library / "manifest.csv", "asset,edits\nchair.glb,a photo of <asset0>\nchair.glb,one,two\n")
    with pytest.raises(ManifestError, match=r"1 bad row\(s\): row 2: more fields than the header"):
        read_manifest(path, BASE)


def test_edits_must_be_prompts(library: Path) -> None:
    path = library / "manifest.yaml"
    rows = [{"asset": "chair.glb", "edits": ["a photo of <asset0>", 3]}, {"asset": "chair.glb", "edits": [" "]}]
    path.write_text(yaml.safe_dump(rows))
    with pytest.raises(ManifestError) as error:
        read_manifest(path, BASE)
    assert "row 1: edits must be a list of non-empty prompts" in str(error.value)
    assert "row 2: edits must be a list of non-empty prompts" in str(error.value)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("manifest.json", "[]", "unknown manifest format '.json'"),
        ("manifest.yaml", "assets: []\n", "the manifest lists no assets"),
        ("manifest.yaml", "asset: chair.glb\n", "expected a list of assets"),
        ("manifest.yaml", "- [unclosed\n", "not valid YAML"),
        ("manifest.csv", "path,edits\nchair.glb,x\n", "needs a header row with an 'asset' column"),
        ("manifest.parquet", "not parquet", "not a readable Parquet file"),
    ],
)
def test_unreadable_manifests_say_why(library: Path, name: str, content: str, expected: str) -> None:
    path = library / name
    path.write_text(content)
    with pytest.raises(ManifestError, match=expected) as error:
        read_manifest(path, BASE)
    assert str(path) in str(error.value)


def test_a_missing_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found: .*nope.yaml"):
        read_manifest(tmp_path / "nope.yaml", BASE)


def test_overrides_may_set_only_what_an_asset_may_choose(library: Path) -> None:
    path = library / "manifest.yaml"
    path.write_text(
        yaml.safe_dump(
            [
                {"asset": "chair.glb", "overrides": {"render": {"blender_executable": "/tmp/evil.sh"}}},
                {"asset": "chair.glb", "overrides": {"ingest": {"limits": {"max_faces": 10**12}}}},
                {"asset": "chair.glb", "overrides": {"model": {"path": "/elsewhere"}}},
                {"asset": "chair.glb", "overrides": {"ingest": {"up_axis": "+z"}, "render": {"image_size": 64},
                                                     "invert": {"seed": 3}, **GROUPS}},  # fmt: skip
            ]
        )
    )
    with pytest.raises(ManifestError) as error:
        read_manifest(path, BASE)
    message = str(error.value)
    assert "3 bad row(s)" in message and "row 4" not in message
    assert "row 1: overrides may not set 'render.blender_executable'" in message
    assert "row 2: overrides may not set 'ingest.limits'" in message
    assert "row 3: overrides may not set 'model'" in message
    assert "execution and security settings come from the batch's config" in message


# What an asset could set when flows/manifest.py still wrote the list out, before the fields carried the mark.
LISTED_ASSET_SETTINGS = (
    "ingest.up_axis",
    "render.image_size",
    "mask.mode",
    "mask.groups",
    "mask.min_coverage",
    "mask.small_parts",
    "mask.rest_name",
    "mask.class_word",
    "mask.allow_overlap",
    "mask.sam.prompts",
    "mask.sam.view_prompts",
    "mask.sam.negatives_from_other_components",
    "mask.sam.overlap_rule",
    "mask.sam.depth_tolerance",
    "invert.seed",
    "invert.class_word",
    "finetune.seed",
    "finetune.prior_prompt",
    "finetune.prior_negative_prompt",
    "sample.negative_prompt",
    "sample.prompt_suffix",
    "merge.edit_kind",
    "evaluate.seed",
)


def test_what_an_asset_may_set_is_marked_on_the_config_fields() -> None:
    assert ASSET_SETTINGS == tuple(asset_paths(PipelineConfig))
    assert sorted(ASSET_SETTINGS) == sorted(LISTED_ASSET_SETTINGS) and len(set(ASSET_SETTINGS)) == len(ASSET_SETTINGS)
    execution = execution_paths(PipelineConfig)
    both = [(a, e) for a in ASSET_SETTINGS for e in execution if a == e or a.startswith(e + ".") or e.startswith(a + ".")]
    assert both == []  # no setting is both per-asset and execution-only
    check_asset_settings({"mask": {"sam": {"overlap_rule": "score"}}, "finetune": {"prior_prompt": ["a", "b"]}})  # marked
    with pytest.raises(ManifestError, match=r"may not set 'mask.sam.checkpoint': an asset may set only .*mask.sam.overlap_rule"):
        check_asset_settings({"mask": {"sam": {"checkpoint": "/elsewhere.pth"}}})  # not marked

    class Inner(BaseModel):
        word: str = asset_field("x")
        device: str = "cpu"

    class Outer(BaseModel):
        inner: Inner = Inner()
        prompts: dict[str, str] = asset_field(default_factory=dict)  # a marked mapping covers what is under it
        marked: Inner = asset_field(default_factory=Inner)  # a marked config class too: not looked into

    assert asset_paths(Outer) == ["inner.word", "prompts", "marked"]
    assert Outer().prompts == {} and Outer().inner.word == "x"


def test_files_an_asset_references_must_stay_inside_the_manifest_folder(library: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.mtl").write_text("newmtl m\n")
    (library / "sub" / "inner.mtl").write_text("newmtl m\n")
    (library / "sub" / "escape.obj").write_text("mtllib ../../secret.mtl\nv 0 0 0\n")
    (library / "sub" / "fine.obj").write_text("mtllib inner.mtl\nv 0 0 0\n")
    (library / "sub" / "linked.mtl").symlink_to(tmp_path / "secret.mtl")
    (library / "sub" / "linked.obj").write_text("mtllib linked.mtl\nv 0 0 0\n")
    path = write_csv(library / "manifest.csv", "asset,edits\nsub/escape.obj,\nsub/fine.obj,\nsub/linked.obj,\n")
    with pytest.raises(ManifestError) as error:
        read_manifest(path, BASE)
    message = str(error.value)
    assert "2 bad row(s)" in message and "row 2" not in message
    assert "row 1: asset 'sub/escape.obj': escape.obj: material library '../../secret.mtl' is outside" in message
    assert "row 3: asset 'sub/linked.obj'" in message and "symbolic link" in message


def test_yaml_aliases_a_huge_csv_field_and_bytes_that_are_not_utf8_are_refused_in_one_line(library: Path) -> None:
    """A few kilobytes of YAML aliases expand to gigabytes ("billion laughs"); a manifest never needs them."""
    laughs = "a: &a ['lol', 'lol']\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    (library / "laughs.yaml").write_text(laughs + "assets: [{asset: chair.glb, edits: *c}]\n")
    with pytest.raises(ManifestError, match="anchors and aliases .* are not allowed"):
        read_manifest(library / "laughs.yaml", BASE)
    write_csv(library / "wide.csv", "asset,edits\nchair.glb," + "x" * 200_000 + "\n")
    with pytest.raises(ManifestError, match=r"wide.csv: row 1: field larger than field limit"):
        read_manifest(library / "wide.csv", BASE)
    (library / "latin1.csv").write_bytes("asset,edits\nchair.glb,a photo of <asset0> in caf\xe9 brown\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"latin1.csv: row 1: not UTF-8 text"):
        read_manifest(library / "latin1.csv", BASE)
    (library / "latin1.yaml").write_bytes("- asset: chair.glb\n  edits: [caf\xe9]\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"latin1.yaml: not UTF-8 text"):
        read_manifest(library / "latin1.yaml", BASE)
