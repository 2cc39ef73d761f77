#!/usr/bin/env bash
# Installs everything into .venv (system libraries too), then runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/storage -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
export PREFECT_HOME="${PREFECT_HOME:-$(mktemp -d /tmp/dreamedit3d-prefect.XXXXXX)}"
exec .venv/bin/python -m pytest "$@"
