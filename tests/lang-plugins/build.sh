#!/usr/bin/env bash
# Builds the Python and JavaScript fault fixtures into target/, with the same
# tools (and versions) as examples/python-stage and examples/js-stage, which
# must be built first (they install the tools).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$here/target"
(cd "$here/python-faults" && "$root/target/componentize-py/bin/componentize-py" -d "$root/wit" \
  -w policy-stage componentize --stub-wasi app -o "$here/target/python_faults.wasm")
node --input-type=module -e "
import { componentize } from '$root/examples/js-stage/node_modules/@bytecodealliance/componentize-js/src/componentize.js';
import { writeFile } from 'node:fs/promises';
const { component } = await componentize({
  sourcePath: '$here/js-faults/stage.js', witPath: '$root/wit', worldName: 'policy-stage',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile('$here/target/js_faults.wasm', component);
"
ls -l "$here/target"
