#!/usr/bin/env bash
# Installs what the browser test of the Streamlit app needs: Debian's chromium (Playwright's own
# browser download cannot reach its host from here, so it is never used) and the pinned
# `playwright` Python package, which only drives that chromium. Run as root; idempotent.
set -euo pipefail

# Keep in step with the `browser` extra in pyproject.toml.
PLAYWRIGHT_VERSION="1.63.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install_browser.sh: installing chromium needs root (apt-get)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi

if ! "$python" -c "import playwright, importlib.metadata as m; assert m.version('playwright') == '$PLAYWRIGHT_VERSION'" 2>/dev/null; then
  "$python" -m pip install -q "playwright==$PLAYWRIGHT_VERSION"
fi

/usr/bin/chromium --version
"$python" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
