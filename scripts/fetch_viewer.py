"""Vendor Google's <model-viewer> into the package: the exact npm tarball the lock names, integrity-checked.

    python scripts/fetch_viewer.py              # install it if missing (a warning when the registry is unreachable)
    python scripts/fetch_viewer.py --required   # the same, but fail when it cannot be installed (the tests need it)

The lock (`dreamedit3d_core/evaluate/viewer/model-viewer.json`) pins the version, the tarball's npm integrity
(sha512) and the sha256 of the one file taken from it (the self-contained UMD build, three.js included), which
reports and galleries inline so that they open offline. Without it they show pictures instead of 3D viewers.
Only the registry is contacted; nothing is run from the tarball.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[1] / "dreamedit3d_core" / "evaluate" / "viewer"
LOCK = FOLDER / "model-viewer.json"


def installed(lock: dict) -> bool:
    target = FOLDER / Path(lock["file"]).name
    return target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == lock["sha256"]


def fetch(lock: dict, timeout: float = 60.0) -> None:
    with urllib.request.urlopen(lock["tarball"], timeout=timeout) as response:  # noqa: S310 (a pinned https URL)
        tarball = response.read()
    algorithm, _, expected = lock["integrity"].partition("-")
    if base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode() != expected:
        raise RuntimeError(f"{lock['tarball']}: integrity mismatch (expected {lock['integrity']})")
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        members = {member.name: member for member in archive.getmembers() if member.isfile()}
        script = archive.extractfile(members[lock["file"]]).read()  # type: ignore[union-attr]
        licence = archive.extractfile(members["package/LICENSE"]).read()  # type: ignore[union-attr]
    if hashlib.sha256(script).hexdigest() != lock["sha256"]:
        raise RuntimeError(f"{lock['file']} in {lock['tarball']}: sha256 differs from the lock")
    (FOLDER / "LICENSE-model-viewer").write_bytes(licence)
    staging = FOLDER / (Path(lock["file"]).name + ".partial")
    staging.write_bytes(script)
    staging.replace(FOLDER / Path(lock["file"]).name)  # whole or absent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--required", action="store_true", help="fail when it cannot be installed")
    args = parser.parse_args(argv)
    lock = json.loads(LOCK.read_text())
    if installed(lock):
        return 0
    name = f"{lock['package']}@{lock['version']}"
    try:
        fetch(lock)
    except (OSError, RuntimeError, KeyError, tarfile.TarError) as error:
        level = "error" if args.required else "warning"
        sys.stderr.write(f"[install] {level}: could not install {name} ({error}); reports show pictures, not 3D\n")
        return 1 if args.required else 0
    sys.stderr.write(f"[install] {name} vendored into {FOLDER}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
