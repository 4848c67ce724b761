import assert from 'node:assert/strict';
import { test } from 'node:test';

import { closedReason, parseConfig, stage } from '../stage.js';
import { setNow } from './host.mjs';

// Monday 2026-12-07 10:30 UTC, and the same day at 18:30.
const MONDAY_MORNING = Date.UTC(2026, 11, 7, 10, 30);
const MONDAY_EVENING = Date.UTC(2026, 11, 7, 18, 30);
const SATURDAY = Date.UTC(2026, 11, 12, 10, 30);

test('guarded tools are allowed in business hours only', () => {
  const config = parseConfig({ tools: ['deploy_*'] });
  assert.equal(closedReason(config, 'deploy_prod', MONDAY_MORNING), null);
  assert.match(closedReason(config, 'deploy_prod', MONDAY_EVENING), /mon, tue, wed, thu, fri 09:00-17:00/);
  assert.notEqual(closedReason(config, 'deploy_prod', SATURDAY), null);
  assert.equal(closedReason(config, 'read_logs', MONDAY_EVENING), null);
});

test('the offset moves the hours', () => {
  const cet = parseConfig({ tools: ['*'], utc_offset_minutes: 60, close: '18:00' });
  assert.equal(closedReason(cet, 'x', Date.UTC(2026, 11, 7, 16, 30)), null);
  assert.notEqual(closedReason(cet, 'x', Date.UTC(2026, 11, 7, 17, 30)), null);
});

test('configuration errors name their path', () => {
  assert.throws(() => parseConfig({ tols: [] }), (e) => e[0].path === 'tols' && e[0].message === 'unknown key');
  assert.throws(() => parseConfig({ days: ['mon', 'funday'] }), (e) => e.some((x) => x.path === 'days[1]'));
  assert.throws(() => parseConfig({ open: '18:00', close: '09:00' }), (e) => e.some((x) => x.path === 'close'));
});

test('the exported stage answers the contract shapes', () => {
  stage.configure(JSON.stringify({ tools: ['delete_*'] }));
  setNow(MONDAY_EVENING);
  const verdict = stage.evaluate({ tool: () => 'delete_record' });
  assert.equal(verdict.tag, 'deny');
  assert.equal(verdict.val[1].reason, 'outside_business_hours');
  setNow(MONDAY_MORNING);
  assert.equal(stage.evaluate({ tool: () => 'delete_record' }).tag, 'allow');
});
