"""Check the worker image's dependency set without building the image (CI has no Docker daemon).

    .venv/bin/python scripts/check_image.py   # what scripts/test.sh runs, before pytest

1. docker/Dockerfile against the repository: its apt-get install list equals `runtime_packages` of
   scripts/install.sh, every `pip install` takes requirements.lock as constraints, and the image installs the
   project's [project.dependencies] (then the project itself), nothing else; its Python is pyproject's.
2. That set resolved against PyPI for the image's platform, downloading no wheel: `uv pip compile
   --only-binary=:all:` for CPython 3.11 on manylinux x86_64 up to the glibc of the base image's Debian, with
   requirements.lock as constraints. Success proves that every package the image installs exists as a wheel for
   that platform and that the set is consistent; then every resolved package must be pinned by the lock at the
   resolved version (pip, setuptools and wheel aside: `pip freeze` leaves them out of lock files).

Both variants are checked; they share one set when their stages install the same things. Prints a table and
writes it to benchmarks/results/image_dependencies.md; exit code 1 with the reason (the pin without a wheel,
the package the lock does not pin, the apt package only one side has) on any failure.

The Dockerfile is read by image_dockerfile.py and the set resolved by image_resolution.py, modules of this folder
that this script imports (putting the folder on sys.path, for the tests that load this file by its path).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

# `python FILE` puts FILE's folder first on sys.path; loading this file by its path (as the tests do) does not
_FOLDER = str(Path(__file__).resolve().parent)
if _FOLDER not in sys.path:
    sys.path.insert(0, _FOLDER)

from image_dockerfile import (  # noqa: E402
    LOCK,
    VARIANTS,
    ImageCheckError,
    ImagePlan,
    plan_variant,
    read_instructions,
    read_stages,
)
from image_resolution import platform_label, resolve, total_download, uv_command  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]


RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "image_dependencies.md"


PYPI = "https://pypi.org/simple"


def install_sh_packages(text: str) -> list[str]:
    match = re.search(r"^runtime_packages=\(([^)]*)\)", text, re.MULTILINE)
    if match is None:
        raise ImageCheckError("scripts/install.sh: no `runtime_packages=(...)` list of the runtime apt packages")
    return match.group(1).split()


def check_consistency(root: Path) -> dict[str, ImagePlan]:
    """Part 1: the Dockerfile against install.sh, requirements.lock and pyproject.toml; each variant's plan."""
    instructions = read_instructions((root / "docker" / "Dockerfile").read_text())
    arguments, stages, final = read_stages(instructions)
    if final != "${VARIANT}" or arguments.get("VARIANT") not in VARIANTS:
        raise ImageCheckError(f"docker/Dockerfile must end in `FROM ${{VARIANT}}`, after `ARG VARIANT=` one of {VARIANTS}")
    wanted = install_sh_packages((root / "scripts" / "install.sh").read_text())
    requires_python = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    problems: list[str] = []
    plans = {variant: plan_variant(stages, variant) for variant in VARIANTS}
    for variant, plan in plans.items():
        only_image = sorted(set(plan.apt_packages) - set(wanted))
        only_install_sh = sorted(set(wanted) - set(plan.apt_packages))
        if only_image or only_install_sh:
            problems.append(
                f"{variant}: apt packages differ from scripts/install.sh's runtime_packages: only in the image "
                f"{only_image or 'none'}, only in install.sh {only_install_sh or 'none'}"
            )
        if requires_python != f"=={plan.python}.*":
            problems.append(f"{variant}: {plan.base_image} has Python {plan.python}, pyproject.toml needs {requires_python}")
        if not plan.pip_installs:
            problems.append(f"{variant}: no `pip install` line")
        for install in plan.pip_installs:
            if LOCK not in install.constraints:
                problems.append(f"{variant}: docker/Dockerfile line {install.line}: `pip install` without `-c {LOCK}`")
            unknown = [target for target in install.targets if target != "."]
            if unknown:
                problems.append(
                    f"{variant}: docker/Dockerfile line {install.line}: installs {unknown}, which are not the project "
                    f"or its dependencies (add them to pyproject.toml's dependencies and to {LOCK})"
                )
        installs_dependencies = [i for i in plan.pip_installs if i.requirement_files or ("." in i.targets and not i.no_deps)]
        if not installs_dependencies:
            problems.append(f"{variant}: the project's dependencies are never installed (`pip install -c {LOCK} .`)")
        if not any("." in install.targets for install in plan.pip_installs):
            problems.append(f"{variant}: the project itself is never installed (`pip install ... .`)")
    if problems:
        raise ImageCheckError("docker/Dockerfile does not match the repository:\n  " + "\n  ".join(problems))
    return plans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-url", default=PYPI, help=f"the package index to resolve against (default {PYPI})")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help=argparse.SUPPRESS)  # for the tests
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the table is written")
    parser.add_argument("--find-links", help=argparse.SUPPRESS)  # the tests' local wheels, instead of an index
    args = parser.parse_args(argv)
    index = ["--no-index", f"--find-links={args.find_links}"] if args.find_links else [f"--index-url={args.index_url}"]
    where = args.find_links or args.index_url
    started = time.perf_counter()
    try:
        plans = check_consistency(args.root)
        uv = uv_command()
        version = subprocess.run([*uv, "--version"], check=False, capture_output=True, text=True).stdout.split()
        resolver = " ".join(version[:2]) or "uv"
        groups: dict[ImagePlan, list[str]] = {}
        for variant, plan in plans.items():
            groups.setdefault(plan, []).append(variant)
        rows = []
        for plan, variants in groups.items():
            resolution = resolve(args.root, plan, index, uv)
            size = total_download(resolution.sizes)
            rows.append((", ".join(variants), plan, len(resolution.packages), size, resolution.seconds, resolution.unpinned))
    except ImageCheckError as error:
        sys.stderr.write(f"check_image: FAILED: {error}\n")
        return 1
    seconds = time.perf_counter() - started
    lines = [
        "# The worker image's dependency set",
        "",
        f"Written by scripts/check_image.py: docker/Dockerfile checked against scripts/install.sh and {LOCK}, and its",
        f"dependency set resolved by {resolver} (`uv pip compile`, wheel metadata only) against {where},",
        f"downloading and installing no wheel ({seconds:.1f} s in all).",
        "",
        "| variant | base image | platform | packages resolved | download size | seconds to resolve |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for variants, plan, count, size, resolve_seconds, _ in rows:
        row = [variants, plan.base_image, platform_label(plan), str(count), size, f"{resolve_seconds:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for variants, plan, _, _, _, unpinned in rows:
        lines.append(f"{variants}: apt packages {' '.join(plan.apt_packages)} (= scripts/install.sh's runtime_packages).")
        if unpinned:
            lines.append(f"{variants}: not pinned by {LOCK} (pip freeze leaves them out): {', '.join(unpinned)}.")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
