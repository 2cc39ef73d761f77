#!/usr/bin/env bash
# Installs everything into .venv (system libraries too), checks the worker image's dependency set, then runs the
# whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/storage -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
# The worker image (docker/Dockerfile) cannot be built here: check it against install.sh and requirements.lock, and
# resolve its dependency set against PyPI for its platform with uv, downloading no wheel (docs/container.md; seconds).
# Only for the whole suite (no arguments), as CI runs it.
[ $# -eq 0 ] && .venv/bin/python scripts/check_image.py
if [ -z "${PREFECT_HOME:-}" ]; then  # a Prefect home of the run's own, removed after it
  PREFECT_HOME="$(mktemp -d /tmp/dreamedit3d-prefect.XXXXXX)"
  trap 'rm -rf "$PREFECT_HOME"' EXIT
fi
export PREFECT_HOME
.venv/bin/python -m pytest "$@"
