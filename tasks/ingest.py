"""Stage `ingest`: a 3D file in, the normalised asset folder and its parts table out."""

from __future__ import annotations

from pathlib import Path

from dreamedit3d_core.ingest import IngestConfig, ingest_asset
from dreamedit3d_core.ingest.sources import source_files
from storage import ArtifactWriter, file_digest
from tasks.prefect_task import stage_task
from tasks.stage import StagePlan, StageRef, run_stage

CODE_VERSION = "1"


def asset_id_for(source: Path, digest: str) -> str:
    """Readable and unique: the file's stem and the start of its content digest."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in source.stem).strip("-") or "asset"
    return f"{stem[:40]}-{digest[:8]}"


def plan(store: str, source: str, config: IngestConfig) -> StagePlan:
    path = Path(source)
    # The file itself and every file it references (glTF buffers, OBJ material libraries, textures).
    inputs = {f"file:{file.name}": file_digest(file) for file in source_files(path)}
    main_digest = inputs[f"file:{path.name}"]
    return StagePlan(
        store_uri=store,
        asset_id=asset_id_for(path, main_digest),
        stage="ingest",
        code_version=CODE_VERSION,
        config=config.model_dump(mode="json"),
        inputs=inputs,
    )


@stage_task("ingest", plan)
def ingest(store: str, source: str, config: IngestConfig) -> StageRef:
    stage_plan = plan(store, source, config)

    def compute(writer: ArtifactWriter) -> dict:
        asset = ingest_asset(Path(source), config)
        asset.write(writer.new_directory("asset"), overwrite=True)
        writer.table("parts", asset.parts_table())
        return {"source": Path(source).name, "parts": len(asset.parts), "warnings": list(asset.warnings)}

    return run_stage(stage_plan, compute, items={"asset": "asset", "parts": "parts"})
