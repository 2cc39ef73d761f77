#!/usr/bin/env bash
# Installs everything into .venv, writes an example object of the procedural parts world that the shipped
# `world` model never saw in training (an orange cone and a yellow cube: held-out object 74, drawn at random from
# the edit benchmark's test half), and asks for the cube in purple with the `world` preset. Extra arguments go to
# `dreamedit3d edit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
[ -f examples/world_object.glb ] || .venv/bin/dreamedit3d world example examples/world_object.glb --index 74 >&2
exec .venv/bin/dreamedit3d edit examples/world_object.glb --preset world \
    --edit "a photo of <asset0> and <asset1> in purple" "$@"
