#!/usr/bin/env bash
# Builds the Python stage into target/python_stage.wasm: componentize-py (from
# PyPI, pinned in requirements.txt, in a venv under the repository's target/)
# compiles app.py and policy.py with CPython into a component for Helio's
# contract. --stub-wasi: the component imports no WASI at all (Helio gives
# plugins none), so it needs nothing but helio:governance.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/target/componentize-py"
if [ ! -x "$venv/bin/componentize-py" ] || ! cmp -s "$here/requirements.txt" "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.requirements"
fi
mkdir -p "$here/target"
cd "$here"
python3 -m unittest discover -s tests -q
"$venv/bin/componentize-py" -d "$root/wit" -w policy-stage componentize --stub-wasi app \
  -o target/python_stage.wasm
