"""The report's page: before and after in 3D with the vendored viewer, pictures and a hint without it."""

from __future__ import annotations

import numpy as np

from dreamedit3d_core.evaluate.config import EvaluateConfig
from dreamedit3d_core.evaluate.page import VIEWER_MISSING, viewer_script, viewer_version
from dreamedit3d_core.evaluate.report import html_report
from tasks.catalog import evaluate_key

PICTURE = np.full((8, 16, 3), 200, np.uint8)
SIDES = [("before: the source asset", b"glTF-source", PICTURE), ("after: a photo of <asset0> in gold", b"glTF-edit", PICTURE)]


def test_with_the_viewer_before_and_after_are_3d_views_and_the_script_is_inlined_once() -> None:
    page = html_report("chair: gold", [("strip", PICTURE)], {"preserved_psnr": 40.0}, before_after=SIDES, viewer_js="/*mv*/")
    assert page.count("<model-viewer ") == 2 and page.count("<script>/*mv*/</script>") == 1
    assert "data:model/gltf-binary;base64," in page and "after: a photo of &lt;asset0&gt; in gold" in page
    assert "kept parts, edited vs source (PSNR, dB)" in page and "above about 30 dB" in page  # metrics in words


def test_without_the_viewer_the_page_shows_pictures_and_says_how_to_get_3d() -> None:
    page = html_report("chair: gold", [], {}, before_after=SIDES, viewer_js=None)
    assert "<model-viewer" not in page and "<script" not in page
    assert page.count("data:image/png;base64,") == 2 and VIEWER_MISSING.split(":")[0] in page


def test_the_installed_viewer_is_the_locked_file_and_part_of_the_evaluate_key() -> None:
    script = viewer_script()
    assert script is not None and "model-viewer" in script  # scripts/install.sh vendored it
    assert viewer_version() == "@google/model-viewer@4.4.0"
    assert evaluate_key(EvaluateConfig())["viewer"] == viewer_version()
    assert evaluate_key(EvaluateConfig(report_3d=False))["viewer"] is None
