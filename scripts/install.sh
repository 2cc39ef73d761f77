#!/usr/bin/env bash
# Installs DreamEdit3D into .venv/ in the project root, with the exact versions in requirements.lock,
# plus the system libraries it needs. Safe to run again: it does nothing when nothing changed.
# `--test` adds what only the tests need: pytest, import-linter and Playwright, the Khronos glTF validator (npm),
# and Debian's Chromium (the gallery and report tests open the pages in it).
# Messages go to stderr, so that a command run after it (scripts/demo.sh --json) keeps stdout to itself.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 3>&1 1>&2  # everything below writes to stderr
mode=user
[ "${1:-}" = "--test" ] && mode=test

# The runtime system libraries: open3d links libusb and libEGL; bpy (Blender as a module) needs the X/GL client
# libraries even headless. docker/Dockerfile installs the same packages (scripts/check_image.py keeps them equal).
runtime_libraries=(libusb-1.0.so.0 libGL.so.1 libEGL.so.1 libXi.so.6 libXrender.so.1 libxkbcommon.so.0 libSM.so.6 libXxf86vm.so.1)
runtime_packages=(libusb-1.0-0 libgl1 libegl1 libxi6 libxrender1 libxkbcommon0 libsm6 libxxf86vm1)
need_apt=()
for lib in "${runtime_libraries[@]}"; do
  ldconfig -p | grep -q "$lib" || need_apt+=("$lib")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[install] system libraries missing (${need_apt[*]}): installing with apt-get"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${runtime_packages[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "DreamEdit3D needs Python 3.11 (bpy 4.5 is built for it)"'

# The Khronos glTF validator (npm) checks every GLB the pipeline writes, in the tests.
if [ "$mode" = test ] && [ ! -d .tools/node_modules/gltf-validator ]; then
  if ! command -v npm >/dev/null; then
    echo "[install] npm missing: installing nodejs and npm with apt-get"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools gltf-validator@2.0.0-dev.3.10 >/dev/null
fi

# Chromium (Debian's package), driven by Playwright, opens the gallery and the reports in the tests.
if [ "$mode" = test ] && ! command -v chromium >/dev/null; then
  echo "[install] chromium missing: installing it with apt-get"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# Google's <model-viewer> (npm tarball, integrity-checked), inlined into reports and galleries for their 3D
# views; without it they show pictures. The tests need it.
if [ "$mode" = test ]; then "$PYTHON" scripts/fetch_viewer.py --required; else "$PYTHON" scripts/fetch_viewer.py; fi

stamp=".venv/.dreamedit3d-installed"
want="$mode-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)"
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$have" = "$want" ] || { [ "$mode" = user ] && [ "$have" = "test-${want#user-}" ]; }; then
  exit 0  # up to date (a test install holds everything a user install does)
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "[install] installing pinned packages into .venv (a few minutes on a fresh machine)"
extras=""; [ "$mode" = test ] && extras="[test]"
.venv/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -e ".$extras"
echo "$want" > "$stamp"
