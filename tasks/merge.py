"""Stage `merge`: an edit's sampled views back onto the source asset; only the named components change.

Its `mesh` is the edited asset (GLB, normalised frame) and `mesh_source_frame` the same where the source file
had it. When an edited component maps to no geometry, the views are lifted to a whole new mesh instead (the
full reconstruction), and the report says so; where the reconstruct stage ran, that is its `reconstruction`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dreamedit3d_core.ingest import IngestedAsset
from dreamedit3d_core.merge import edit_glbs, merge_edit
from tasks.artifacts import (
    ASSET,
    CAMERAS,
    COMPONENTS,
    MASKS,
    MERGE_REPORT,
    MESH,
    MESH_PREVIEW,
    MESH_SOURCE_FRAME,
    RECONSTRUCTION,
    RENDERS,
    TURNTABLE,
    VIEWS,
)
from tasks.running import StageInputs, StageOutputs
from tasks.turntable import turntable


def merge(inputs: StageInputs, outputs: StageOutputs) -> dict:
    views, cameras, components = inputs.load(VIEWS), inputs.load(CAMERAS), inputs.load(COMPONENTS)
    asset = IngestedAsset.read(inputs.load(ASSET))
    result = merge_edit(
        asset,
        views.views[0],  # the first sample
        cameras,
        inputs.load(RENDERS),
        inputs.load(MASKS),
        components["part_ids"],
        components["token"],
        views.prompt,
        inputs.settings("merge"),
    )
    # where the views go on no geometry, the reconstruct stage (if it ran) already lifted them: the first sample,
    # the same cameras and config
    lifted = inputs.ran("reconstruct") and not result.maps_to_geometry
    reconstruction = inputs.load(RECONSTRUCTION).read_bytes() if lifted else None
    normalised, source_frame = edit_glbs(
        result, asset, views.views[0], cameras, inputs.settings("reconstruct"), reconstruction
    )
    with tempfile.TemporaryDirectory() as scratch:
        glb = Path(scratch) / "mesh.glb"
        glb.write_bytes(normalised)
        gif, strip = turntable(glb, inputs.settings("render"), Path(scratch))
        outputs.save(MESH, glb)
        outputs.save(MESH_SOURCE_FRAME, source_frame)
        outputs.save(TURNTABLE, gif)
    outputs.save(MESH_PREVIEW, strip)
    outputs.save(MERGE_REPORT, [{key: row.get(key) for key in MERGE_COLUMNS} for row in result.components])
    edited = [row for row in result.components if row["edited"]]
    return {
        "prompt": views.prompt,
        "merged": result.maps_to_geometry,
        "edits": {row["token"]: row["kind"] for row in edited},
        "seconds": round(result.seconds, 3),
        "warnings": result.warnings,
    }


MERGE_COLUMNS = ("token", "edited", "kind", "why", "faces", "gained", "lost", "agreement", "uvs", "seen_fraction")
