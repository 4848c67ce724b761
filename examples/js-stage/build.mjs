// Builds stage.js into target/js_stage.wasm with componentize-js (npm,
// pinned in package.json / package-lock.json), against Helio's wit/.
// Every WASI feature is disabled: Helio gives plugins none, so the component
// imports nothing but helio:governance.
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const { component, imports } = await componentize({
  sourcePath: `${here}stage.js`,
  witPath: `${here}../../wit`,
  worldName: 'policy-stage',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
const wasi = imports.filter(([name]) => name.startsWith('wasi:'));
if (wasi.length) throw new Error(`the component imports WASI: ${JSON.stringify(wasi)}`);
await mkdir(`${here}target`, { recursive: true });
await writeFile(`${here}target/js_stage.wasm`, component);
console.log(`target/js_stage.wasm: ${component.length} bytes`);
