// A Helio policy stage in JavaScript (helio:governance@0.2.0, world
// `policy-stage`): tools that may only be called in business hours.
//
// The clock is the host's (`now-ms`): a stage has no other (the component is
// built with WASI disabled, so `Date.now()` would be frozen at build time).
//
// Configuration (helio.yaml `config:`):
//   tools:   ["deploy_*", "delete_record"]   globs (`*` any run of characters)
//   days:    ["mon", "tue", "wed", "thu", "fri"]
//   open:    "09:00"   close: "17:00"        in the offset below
//   utc_offset_minutes: 60                   e.g. CET
import { log, nowMs } from 'helio:governance/host@0.2.0';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const KEYS = ['tools', 'days', 'open', 'close', 'utc_offset_minutes'];

let config = null;

/** Reads the configuration; throws `[{path, message}]` (config errors). */
export function parseConfig(raw) {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw [{ path: '', message: 'must be an object' }];
  }
  const errors = [];
  for (const key of Object.keys(raw)) {
    if (!KEYS.includes(key)) errors.push({ path: key, message: 'unknown key' });
  }
  const minutes = (key, fallback) => {
    const text = raw[key] ?? fallback;
    const match = typeof text === 'string' && /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
    if (!match) {
      errors.push({ path: key, message: 'must be a time of day such as "09:00"' });
      return 0;
    }
    return Number(match[1]) * 60 + Number(match[2]);
  };
  const tools = raw.tools ?? [];
  if (!Array.isArray(tools) || tools.some((t) => typeof t !== 'string' || t === '')) {
    errors.push({ path: 'tools', message: 'must be a list of tool names or globs' });
  }
  const days = raw.days ?? ['mon', 'tue', 'wed', 'thu', 'fri'];
  if (!Array.isArray(days)) errors.push({ path: 'days', message: 'must be a list of days' });
  else days.forEach((d, i) => {
    if (!DAYS.includes(d)) errors.push({ path: `days[${i}]`, message: `must be one of ${DAYS.join(', ')}` });
  });
  const offset = raw.utc_offset_minutes ?? 0;
  if (!Number.isInteger(offset) || Math.abs(offset) > 14 * 60) {
    errors.push({ path: 'utc_offset_minutes', message: 'must be a whole number of minutes within ±840' });
  }
  const parsed = {
    tools: Array.isArray(tools) ? tools.map(glob) : [],
    days: Array.isArray(days) ? days : [],
    open: minutes('open', '09:00'),
    close: minutes('close', '17:00'),
    offset,
  };
  if (parsed.close <= parsed.open) errors.push({ path: 'close', message: 'must be after open' });
  if (errors.length) throw errors;
  return parsed;
}

function glob(pattern) {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

/** Whether `tool` may be called at `ms` (epoch milliseconds): null if so, else why not. */
export function closedReason(parsed, tool, ms) {
  if (!parsed.tools.some((re) => re.test(tool))) return null;
  const local = new Date(ms + parsed.offset * 60_000);
  const day = DAYS[local.getUTCDay()];
  const minute = local.getUTCHours() * 60 + local.getUTCMinutes();
  if (parsed.days.includes(day) && minute >= parsed.open && minute < parsed.close) return null;
  return `${tool} may only be called ${parsed.days.join(', ')} ${hhmm(parsed.open)}-${hhmm(parsed.close)} (UTC${sign(parsed.offset)})`;
}

const hhmm = (m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
const sign = (offset) => (offset === 0 ? '' : `${offset > 0 ? '+' : '-'}${hhmm(Math.abs(offset))}`);

function configure(configJson) {
  config = parseConfig(JSON.parse(configJson));
  log('info', `js-stage guards ${config.tools.length} tool pattern(s)`);
}

function evaluate(call) {
  if (config === null) throw { message: 'evaluate before configure' };
  const tool = call.tool();
  const why = closedReason(config, tool, Number(nowMs()));
  if (why === null) {
    return { tag: 'allow', val: { action: 'allow', explanation: 'within business hours', redact: [], observe: false } };
  }
  return {
    tag: 'deny',
    val: [
      { action: 'deny', rule: 'business-hours', explanation: why, redact: [], observe: false },
      {
        reason: 'outside_business_hours',
        message: `Blocked: ${why}`,
        suggestion: 'Retry during business hours, or ask an operator.',
        retryAllowed: true,
      },
    ],
  };
}

export const stage = { configure, evaluate };
