// Outcome derivation (spec §10.1) and formatting of times, durations,
// numbers and JSON. Pure functions: strings in, strings out.

/** Display outcomes, in filter order, with their badge tone. */
export const OUTCOMES = [
  ['allow', 'Allow', 'ok'],
  ['deny', 'Deny', 'bad'],
  ['rejected', 'Rejected', 'bad'],
  ['approval_denied', 'Approval Denied', 'bad'],
  ['approval_timeout', 'Approval Timeout', 'warn'],
  ['client_disconnected', 'Client Disconnected', 'muted'],
  ['shutdown_cancelled', 'Shutdown Cancelled', 'muted'],
  ['rate_limited', 'Rate Limited', 'warn'],
  ['spend_limited', 'Spend Limited', 'warn'],
  ['budget_exceeded', 'Budget Exceeded', 'warn'],
  ['session_unresolved', 'Session Unresolved', 'warn'],
  ['dry_run', 'Dry Run', 'info'],
  ['drift', 'Tool Drift', 'info'],
].map(([key, label, tone]) => ({ key, label, tone }));

const BY_KEY = Object.fromEntries(OUTCOMES.map((o) => [o.key, o]));

/** Block reasons that are their own outcome; every other reason is a Deny. */
const REASON_OUTCOME = {
  approval_denied: 'approval_denied',
  approval_timeout: 'approval_timeout',
  client_disconnected: 'client_disconnected',
  shutdown_cancelled: 'shutdown_cancelled',
  cancelled: 'shutdown_cancelled',
  rate_limited: 'rate_limited',
  spend_limited: 'spend_limited',
  budget_exceeded: 'budget_exceeded',
  session_unresolved: 'session_unresolved',
  missing_tool_name: 'rejected',
  header_mismatch: 'rejected',
  invalid_arguments: 'rejected',
  missing_request_id: 'rejected',
  origin_not_allowed: 'rejected',
};

/** The §7 block_reason vocabulary (plus Helio's own), for filters. */
export const BLOCK_REASONS = ['policy_denied', 'session_unresolved', 'evidence_missing', 'evidence_expired',
  'dependency_missing', 'approval_denied', 'approval_timeout', 'client_disconnected', 'shutdown_cancelled',
  'cancelled', 'rate_limited', 'spend_limited', 'budget_exceeded', 'budget_ledger_write_failed',
  'tool_definition_drift', 'install_denied', 'missing_tool_name', 'header_mismatch', 'invalid_arguments',
  'missing_request_id', 'origin_not_allowed', 'plugin_error'];

export const DECISIONS = ['allow', 'deny', 'require_approval', 'rate_limit', 'spend_limit', 'dry_run',
  'rejected', 'budget', 'tool_drift', 'tool_drift_reverted', 'tool_drift_accepted'];

export const RECORD_KINDS = ['tool_call', 'drift_event', 'install_scan', 'evaluation_expired'];

/** The outcome {key, label, tone} of a record or record summary. */
export function outcome(r) {
  const reason = r.block_reason;
  if (reason) return BY_KEY[REASON_OUTCOME[reason] || 'deny'];
  const decision = r.policy_decision;
  if (r.dry_run === true || r.dry_run === 1 || decision === 'dry_run') return BY_KEY.dry_run;
  if (decision === 'rejected') return BY_KEY.rejected;
  if (decision === 'deny') return BY_KEY.deny;
  if (typeof decision === 'string' && decision.startsWith('tool_drift')) return BY_KEY.drift;
  return BY_KEY.allow;
}

/** Context chips: how an allowed call got through, and flags. */
export function contextChips(r) {
  const chips = [];
  const status = r.approval_status;
  const chain = r.evidence_chain && typeof r.evidence_chain === 'object' ? r.evidence_chain : {};
  if (status === 'break_glass' || chain.break_glass) chips.push({ label: 'Break-glass', tone: 'bad' });
  else if (status === 'approved' && !r.block_reason) chips.push({ label: 'Via Approval', tone: 'ok' });
  else if (status === 'timeout' && !r.block_reason) chips.push({ label: 'Allowed on Timeout', tone: 'warn' });
  if (!r.block_reason && r.policy_decision === 'rate_limit') chips.push({ label: 'Rate Limit Rule', tone: 'muted' });
  if (!r.block_reason && r.policy_decision === 'spend_limit') chips.push({ label: 'Spend Limit Rule', tone: 'muted' });
  if (r.flagged_destructive === true || r.flagged_destructive === 1) chips.push({ label: 'Destructive', tone: 'warn' });
  return chips;
}

/** The record-kind chip label, or null for an ordinary tool call. */
export function kindLabel(kind) {
  return { install_scan: 'Install Scan', drift_event: 'Drift', evaluation_expired: 'Expired' }[kind] || null;
}

export function originLabel(origin) {
  if (!origin || origin === 'mcp') return 'MCP';
  return origin;
}

/** `policy_denied` → `Policy denied`. */
export function humanize(word) {
  if (word === null || word === undefined || word === '') return '';
  const text = String(word).replace(/[_-]+/g, ' ').trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A number from a number or numeric string; NaN otherwise. */
export function num(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') return Number(v);
  return NaN;
}

export function fmtNumber(v, digits = 2) {
  const n = num(v);
  if (!Number.isFinite(n)) return v === null || v === undefined ? '—' : String(v);
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function fmtMoney(v, currency) {
  const n = num(v);
  if (!Number.isFinite(n)) return v === null || v === undefined ? '—' : String(v);
  const text = n.toLocaleString(undefined, { minimumFractionDigits: Number.isInteger(n) ? 0 : 2, maximumFractionDigits: 2 });
  return currency ? `${text} ${currency}` : text;
}

/** Milliseconds as `0.42 ms`, `12 ms`, `1.2 s`, `3m 04s`. */
export function fmtMs(v) {
  const ms = num(v);
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return fmtSpan(ms);
}

/** A span as `45s`, `3m 04s`, `2h 05m`, `3d 4h`. */
export function fmtSpan(ms) {
  if (!Number.isFinite(ms)) return '—';
  const total = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(total / 86400);
  const hh = Math.floor((total % 86400) / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${pad(mm)}m`;
  if (mm) return `${mm}m ${pad(ss)}s`;
  return `${ss}s`;
}

/** A window length: `1 min`, `24 h`, `7 d`. */
export function fmtWindow(ms) {
  const n = num(ms);
  if (!Number.isFinite(n) || n <= 0) return '—';
  const units = [[86400000, 'd'], [3600000, 'h'], [60000, 'min'], [1000, 's']];
  for (const [size, unit] of units) if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  return fmtSpan(n);
}

/** Milliseconds since the epoch from a number or an ISO string. */
export function toMs(v) {
  if (v === null || v === undefined || v === '') return NaN;
  if (typeof v === 'number') return v;
  const n = Date.parse(v);
  return Number.isFinite(n) ? n : num(v);
}

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

/** Local time: `14:03:22` today, `7 Dec 14:03:22` otherwise. */
export function fmtTime(v) {
  const ms = toMs(v);
  if (!Number.isFinite(ms)) return v ? String(v) : '—';
  const d = new Date(ms);
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  if (sameDay(d, new Date())) return time;
  return `${d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${time}`;
}

/** Full local date and time, for titles and detail views. */
export function fmtDateTime(v) {
  const ms = toMs(v);
  if (!Number.isFinite(ms)) return v ? String(v) : '—';
  return new Date(ms).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

/** `in 4m 10s` / `3m ago`. */
export function fmtRelative(v, now = Date.now()) {
  const ms = toMs(v);
  if (!Number.isFinite(ms)) return '—';
  const diff = ms - now;
  if (Math.abs(diff) < 1000) return 'now';
  return diff > 0 ? `in ${fmtSpan(diff)}` : `${fmtSpan(-diff)} ago`;
}

/** Pretty JSON text for any value (strings that hold JSON are parsed first). */
export function prettyJson(v) {
  if (v === undefined) return '';
  if (typeof v === 'string') {
    const t = v.trim();
    if (t.startsWith('{') || t.startsWith('[')) {
      try { return JSON.stringify(JSON.parse(t), null, 2); } catch { /* not JSON */ }
    }
    return v;
  }
  try { return JSON.stringify(v, null, 2); } catch { return String(v); }
}

/** A long id shortened for display (`01a24e9d…1d`). */
export function shortId(id, keep = 8) {
  if (!id) return '—';
  const text = String(id);
  return text.length > keep + 4 ? `${text.slice(0, keep)}…${text.slice(-4)}` : text;
}
