#!/usr/bin/env bash
# Creates or refreshes the project's virtualenv (.venv, or $MPCGATE_VENV) from
# requirements.lock and installs mpcgate into it in editable mode. Idempotent:
# it does nothing when the venv already matches the lock and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${MPCGATE_VENV:-.venv}"
python="${PYTHON:-python3}"

"$python" - <<'PY' || { echo "mpcgate needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY

wanted="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
stamp="$venv/.mpcgate-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    exit 0
fi
echo "installing mpcgate into $venv ..." >&2
"$python" -m venv "$venv"
pip_install() {
    # This machine's pip config names index folders that may not exist; hide only that noise.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$@" \
        2> >(grep -v "^WARNING: Location 'file:" >&2)
}
pip_install -r requirements.lock
pip_install --no-build-isolation -e .
echo "$wanted" > "$stamp"
