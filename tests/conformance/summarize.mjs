#!/usr/bin/env node
// Turns the conformance CLI's per-scenario result folders into a per-scenario verdict.
//
// Usage: node summarize.mjs --results DIR --scenarios "a b c" [--url URL] [--lenient]
//                           [--out FILE] [--json FILE]
//
// The CLI (server mode, -o DIR) writes DIR/server-<scenario>-<ISO time>/checks.json, an
// array of checks whose status is SUCCESS, FAILURE, WARNING or INFO. A scenario is
//   fail  if any check is FAILURE, if it has no checks.json (crashed / never ran), or,
//         unless --lenient, if any check is WARNING (as the CLI's own baseline mode does);
//   pass  otherwise.
// Writes sorted "scenario: pass|fail" lines to --out, a JSON report to --json, and a
// readable table to stdout. Exit code 0 if every scenario passed, 1 otherwise.

import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const resultsDir = opt('--results');
const scenarios = (opt('--scenarios') ?? '').split(/\s+/).filter(Boolean).sort();
const lenient = args.includes('--lenient');
if (!resultsDir || scenarios.length === 0) {
  console.error('usage: summarize.mjs --results DIR --scenarios "a b c" [--lenient] [--out FILE] [--json FILE]');
  process.exit(2);
}

const dirs = existsSync(resultsDir) ? readdirSync(resultsDir) : [];
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const report = {};
for (const name of scenarios) {
  const re = new RegExp(`^server-${escape(name)}-\\d{4}-\\d{2}-\\d{2}T`);
  const found = dirs.filter((d) => re.test(d)).sort();
  const dir = found.at(-1); // newest, if a scenario was run twice into one folder
  const entry = { status: 'fail', success: 0, failure: 0, warning: 0, info: 0, problems: [] };
  let checks = null;
  if (dir && existsSync(join(resultsDir, dir, 'checks.json'))) {
    try {
      checks = JSON.parse(readFileSync(join(resultsDir, dir, 'checks.json'), 'utf8'));
    } catch (e) {
      entry.problems.push({ id: '(checks.json)', status: 'FAILURE', message: `unreadable: ${e.message}` });
    }
  } else {
    entry.problems.push({ id: '(missing)', status: 'FAILURE', message: 'no checks.json: the scenario crashed or did not run' });
  }
  if (Array.isArray(checks)) {
    for (const c of checks) {
      const s = String(c.status).toLowerCase();
      if (s in entry) entry[s] += 1;
      if (c.status === 'FAILURE' || c.status === 'WARNING') {
        entry.problems.push({ id: c.id, status: c.status, message: c.errorMessage ?? c.description ?? '' });
      }
    }
    const failed = entry.failure > 0 || (!lenient && entry.warning > 0);
    entry.status = failed ? 'fail' : 'pass';
  }
  entry.resultDir = dir ?? null;
  report[name] = entry;
}

const passed = scenarios.filter((s) => report[s].status === 'pass');
const failed = scenarios.filter((s) => report[s].status === 'fail');
const lines = scenarios.map((s) => `${s}: ${report[s].status}`).join('\n') + '\n';

const outFile = opt('--out');
if (outFile) writeFileSync(outFile, lines);
const jsonFile = opt('--json');
if (jsonFile) {
  const pkg = JSON.parse(
    readFileSync(new URL('./node_modules/@modelcontextprotocol/conformance/package.json', import.meta.url), 'utf8'),
  );
  writeFileSync(
    jsonFile,
    JSON.stringify(
      {
        url: opt('--url') ?? null,
        conformanceVersion: pkg.version,
        warningsFail: !lenient,
        passed: passed.length,
        failed: failed.length,
        scenarios: report,
      },
      null,
      2,
    ) + '\n',
  );
}

const width = Math.max(...scenarios.map((s) => s.length));
for (const s of scenarios) {
  const r = report[s];
  const counts = `${r.success} ok, ${r.failure} failed, ${r.warning} warnings`;
  console.log(`${r.status === 'pass' ? 'PASS' : 'FAIL'}  ${s.padEnd(width)}  (${counts})`);
  if (r.status === 'fail') for (const p of r.problems) console.log(`        ${p.status} ${p.id}: ${p.message}`);
}
console.log(`conformance: ${passed.length} passed, ${failed.length} failed`);
process.exit(failed.length === 0 ? 0 : 1);
