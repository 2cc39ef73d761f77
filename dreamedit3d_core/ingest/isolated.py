"""Ingest in a child process, so that no file can hold a worker longer than a set time.

A reader cannot be interrupted from outside while it parses, but a process can be stopped. The child reads,
checks and normalises the file and writes the asset folder (`IngestedAsset.write`); the parent waits at most
`IngestConfig.timeout_s`, then stops it and refuses the file. A file the reader refuses comes back as the same
AssetError (exit code 2, its message the last line of the child's stderr); a child killed by the system (the
out-of-memory killer) is a fault of the machine, `IngestCrashed`, which a retry may get past. The child's
address space is limited to `ingest.limits.max_memory_bytes` (RLIMIT_AS), so a file that would need more
fails inside the reader with a MemoryError and is refused, not retried, and the kernel's out-of-memory
killer never has to choose between it and a neighbouring Blender or training process. The child's last
line on stdout says which files it opened and its peak memory.

    python -m dreamedit3d_core.ingest.isolated ASSET_FILE OUT_DIR CONFIG_JSON
"""

from __future__ import annotations

import json
import logging
import resource
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from dreamedit3d_core.ingest.asset import AssetError, IngestedAsset
from dreamedit3d_core.ingest.config import IngestConfig
from dreamedit3d_core.ingest.reference_resolver import SourceFile

logger = logging.getLogger(__name__)
_REFUSED = 2  # the child's exit code for a file the reader refuses


class IngestCrashed(RuntimeError):
    """The child reading the file was killed (out of memory, or stopped by the system): not the file's fault
    as far as anyone can tell, so worth another try."""


def ingest_isolated(
    path: Path | str, config: IngestConfig, out_dir: Path, report: dict[str, Any] | None = None
) -> IngestedAsset:
    """`ingest_asset(path, config)` in a child process that writes the asset to `out_dir`, stopped after
    `config.timeout_s` seconds (the file is then refused with an AssetError naming the limit).

    `report`, where given, receives `opened` (the files read, as `SourceFile`s) and `peak_rss_bytes` (the
    child's largest resident size) whether the file was ingested or refused."""
    path, out_dir = Path(path), Path(out_dir)
    command = [sys.executable, "-m", "dreamedit3d_core.ingest.isolated", str(path), str(out_dir), config.model_dump_json()]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=config.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AssetError(
            f"{path.name}: reading the file took longer than {config.timeout_s:g} s (ingest.timeout_s), so it is refused"
        ) from None
    if result.returncode == -signal.SIGKILL:
        raise IngestCrashed(f"{path.name}: the process reading the file was killed (out of memory?)")
    if result.returncode in (0, _REFUSED) and report is not None:
        status = json.loads(result.stdout.strip().splitlines()[-1])
        report["opened"] = [SourceFile(relative, path.parent / relative) for relative in status["opened"]]
        report["peak_rss_bytes"] = status["peak_rss_bytes"]
    if result.returncode == _REFUSED:
        raise AssetError((result.stderr.strip().splitlines() or [f"{path.name}: refused"])[-1])
    if result.returncode != 0:
        raise RuntimeError(f"{path.name}: the reader failed (exit code {result.returncode}):\n{result.stderr[-3000:]}")
    asset = IngestedAsset.read(out_dir)
    for message in asset.warnings:
        logger.warning(message)
    return asset


def _peak_rss_bytes() -> int:
    """This process's largest resident size since it started this program (not its parent's before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def limit_memory(max_bytes: int) -> None:
    """Limit this process's address space (RLIMIT_AS) to `max_bytes`, never above a hard limit already set."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes if hard == resource.RLIM_INFINITY else min(max_bytes, hard), hard))


def main(argv: list[str]) -> int:
    from dreamedit3d_core.ingest.ingest import ingest_asset  # the readers (trimesh) only in the child

    path, out_dir, config = Path(argv[0]), Path(argv[1]), IngestConfig.model_validate_json(argv[2])
    limit_memory(config.limits.max_memory_bytes)  # after the imports: the limit is for what the file makes us do
    opened: list[SourceFile] = []
    try:
        asset = ingest_asset(path, config, opened=opened)
        asset.write(out_dir, overwrite=True)
        code = 0
    except AssetError as error:
        sys.stderr.write(" ".join(str(error).split()) + "\n")
        code = _REFUSED
    except MemoryError:  # past the reader (cleaning, writing): still the file's size, still refused
        limit = config.limits.max_memory_bytes
        sys.stderr.write(f"{path.name}: ingesting it needs more memory than ingest.limits.max_memory_bytes={limit:,}\n")
        code = _REFUSED
    except Exception:  # a bug, not the file: the caller shows the traceback
        traceback.print_exc()
        return 1
    print(json.dumps({"opened": [file.relative for file in opened], "peak_rss_bytes": _peak_rss_bytes()}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
