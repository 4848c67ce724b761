#!/usr/bin/env bash
# Run Helio's end-to-end tests. Creates/updates the venv at target/py-venv from
# tests/e2e/requirements.txt when needed, then runs pytest on tests/e2e.
#   tests/e2e/run.sh [pytest args...]
# Set HELIO_BIN=/path/to/helio to include the tests that need the binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/py-venv"
req="$root/tests/e2e/requirements.txt"
stamp="$venv/.e2e-requirements"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
cd "$root"
# Our Python SDK (python-sdk/, import `helio`): the sideband tests use it the
# way an agent would, so it is built and installed fresh on every run.
if ! built=$("$venv/bin/python" -m build --no-isolation --outdir target/python-sdk-dist python-sdk 2>&1); then
  printf '%s\n' "$built" >&2
  exit 1
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
  "target/python-sdk-dist/helio_sdk-$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' python-sdk/src/helio/_version.py)-py3-none-any.whl"
exec "$venv/bin/python" -m pytest tests/e2e "$@"
