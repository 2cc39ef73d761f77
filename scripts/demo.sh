#!/usr/bin/env bash
# Installs everything into .venv, writes the example asset (a small chair built from primitives) and
# edits it on the built-in `tiny` preset. Extra arguments go to `dreamedit3d edit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/dreamedit3d example examples/chair.glb
exec .venv/bin/dreamedit3d edit examples/chair.glb --edit "a photo of <asset0> and <asset1> in gold" "$@"
