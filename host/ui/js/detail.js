// The audit record detail panel (shared by the feed and the audit log) and
// the evidence-chain renderer.

import { api } from './api.js';
import { h, modal, replace, query } from './dom.js';
import { meter } from './charts.js';
import {
  outcome, contextChips, kindLabel, originLabel, humanize, fmtMs, fmtTime, fmtDateTime, fmtRelative,
  fmtWindow, fmtNumber, fmtMoney, prettyJson, num, toMs,
} from './format.js';

const PREVIEW_BYTES = 4096;

export function badge(label, tone, test) {
  return h('span', { class: `badge tone-${tone}`, 'data-test': test }, label);
}

export function chip(label, tone = 'muted', test) {
  return h('span', { class: `chip tone-${tone}`, 'data-test': test }, label);
}

/** Outcome badge plus context, kind and origin chips for a record. */
export function recordBadges(r) {
  const o = outcome(r);
  const kind = kindLabel(r.record_kind);
  return [
    badge(o.label, o.tone, 'outcome-badge'),
    contextChips(r).map((c) => chip(c.label, c.tone, 'context-chip')),
    kind ? chip(kind, 'info', 'kind-chip') : null,
    chip(originLabel(r.origin), r.origin && r.origin !== 'mcp' ? 'adapter' : 'mcp', 'origin-badge'),
  ];
}

/** A <pre> of JSON text, capped at 4 KB with a "show all" toggle. */
export function jsonBlock(value, { cap = PREVIEW_BYTES, test } = {}) {
  const text = prettyJson(value);
  const pre = h('pre', { class: 'json', 'data-test': test, tabindex: 0 });
  if (text.length <= cap) {
    pre.textContent = text;
    return pre;
  }
  pre.textContent = `${text.slice(0, cap)}\n…`;
  let full = false;
  const btn = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'show-all' }, `Show all (${(text.length / 1024).toFixed(1)} KB)`);
  btn.addEventListener('click', () => {
    full = !full;
    pre.textContent = full ? text : `${text.slice(0, cap)}\n…`;
    btn.textContent = full ? 'Show less' : `Show all (${(text.length / 1024).toFixed(1)} KB)`;
  });
  return h('div', null, pre, btn);
}

function valueNode(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
  if (typeof v === 'boolean') return chip(v ? 'yes' : 'no', v ? 'ok' : 'muted');
  if (typeof v === 'string' || typeof v === 'number') return h('span', { class: 'kv-text' }, String(v));
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) {
    return v.length ? h('span', { class: 'chips' }, v.map((x) => chip(String(x)))) : h('span', { class: 'muted' }, 'none');
  }
  return jsonBlock(v, { cap: 2048 });
}

/** A definition list of an object's fields, minus `skip`. */
export function kv(obj, skip = []) {
  const rows = Object.entries(obj || {}).filter(([k]) => !skip.includes(k));
  if (!rows.length) return null;
  return h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', null, humanize(k)), h('dd', null, valueNode(v))]));
}

function listRow(label, items, tone) {
  const list = Array.isArray(items) ? items : items === undefined || items === null ? [] : [items];
  return [h('dt', null, label), h('dd', null, list.length
    ? h('span', { class: 'chips' }, list.map((x) => chip(typeof x === 'object' && x !== null ? (x.key || x.evidence_key || x.tool_name || JSON.stringify(x)) : String(x), tone)))
    : h('span', { class: 'muted' }, 'none'))];
}

function lists(obj, spec) {
  const known = spec.map(([k]) => k);
  return [
    h('dl', { class: 'kv' }, spec.filter(([k]) => k in obj).map(([k, label, tone]) => listRow(label, obj[k], tone))),
    kv(obj, known),
  ];
}

/** One limit, budget or window entry: a meter plus its facts. */
function limitEntry(e) {
  if (!e || typeof e !== 'object') return valueNode(e);
  const current = num(e.current ?? e.current_calls ?? e.current_spend ?? e.spent);
  const limit = num(e.limit ?? e.max_calls ?? e.max_spend);
  const money = e.currency !== undefined || e.current_spend !== undefined || e.spent !== undefined;
  const fmt = (v) => (money ? fmtMoney(v, e.currency) : fmtNumber(v));
  const windowMs = e.window_ms ?? (e.window_seconds !== undefined && e.window_seconds !== null ? num(e.window_seconds) * 1000 : undefined);
  const reset = toMs(e.reset_at_ms ?? e.reset_at);
  const name = e.name || e.rule || e.key || e.stage || 'entry';
  const facts = [];
  if (Number.isFinite(current)) facts.push(`${fmt(current)}${Number.isFinite(limit) ? ` / ${fmt(limit)}` : ''}`);
  if (e.amount !== undefined || e.attempted_amount !== undefined) facts.push(`this call: ${fmt(e.amount ?? e.attempted_amount)}`);
  if (e.remaining !== undefined) facts.push(`remaining ${fmt(e.remaining)}`);
  if (windowMs !== undefined) facts.push(`window ${fmtWindow(windowMs)}`);
  else if (typeof e.window === 'string') facts.push(`window ${e.window}`);
  if (Number.isFinite(reset)) facts.push(`resets ${fmtTime(reset)} (${fmtRelative(reset)})`);
  const skip = ['name', 'rule', 'key', 'stage', 'bucket', 'current', 'current_calls', 'current_spend', 'spent', 'limit', 'max_calls',
    'max_spend', 'currency', 'window_ms', 'window_seconds', 'window', 'reset_at_ms', 'reset_at', 'amount', 'attempted_amount', 'remaining', 'allowed'];
  return h('div', { class: 'limit-entry' },
    h('div', { class: 'limit-head' },
      h('strong', null, String(name)),
      e.bucket || (e.key && e.key !== name) ? h('code', { class: 'muted' }, String(e.bucket || e.key)) : null,
      e.stage && e.stage !== name ? chip(String(e.stage)) : null,
      typeof e.allowed === 'boolean' ? chip(e.allowed ? 'within limit' : 'over limit', e.allowed ? 'ok' : 'bad') : null),
    Number.isFinite(current) && Number.isFinite(limit) ? meter(current, limit, { label: `${name} utilisation` }) : null,
    h('p', { class: 'limit-facts' }, facts.join(' · ')),
    kv(e, skip));
}

function entries(v) {
  if (Array.isArray(v)) return v.length ? v.map(limitEntry) : h('p', { class: 'muted' }, 'none');
  return limitEntry(v);
}

function blocked(b) {
  if (!b || typeof b !== 'object') return valueNode(b);
  const head = h('div', { class: 'callout tone-bad' },
    h('div', null, b.reason ? badge(humanize(b.reason), 'bad') : null, b.rule ? h('span', { class: 'muted' }, ` rule ${b.rule}${b.rule_index !== undefined && b.rule_index !== null ? ` (#${b.rule_index})` : ''}`) : null),
    b.message ? h('p', null, String(b.message)) : null,
    b.policy_reason ? h('p', { class: 'muted' }, String(b.policy_reason)) : null,
    b.suggestion ? h('p', null, h('strong', null, 'Suggestion: '), String(b.suggestion)) : null);
  const rest = { ...b };
  for (const k of ['blocked', 'reason', 'rule', 'rule_index', 'message', 'policy_reason', 'suggestion']) delete rest[k];
  const budgets = Array.isArray(rest.budgets) ? rest.budgets : null;
  delete rest.budgets;
  return [head, kv(rest), budgets ? h('div', null, h('h4', null, 'Budgets'), entries(budgets)) : null];
}

function drift(d) {
  if (!d || typeof d !== 'object') return valueNode(d);
  const changes = Array.isArray(d.changes) ? d.changes : [];
  return [
    kv(d, ['changes']),
    changes.length ? h('table', { class: 'table compact' },
      h('thead', null, h('tr', null, h('th', null, 'Aspect'), h('th', null, 'Baseline'), h('th', null, 'Current'))),
      h('tbody', null, changes.map((c) => h('tr', null,
        h('td', null, String(c.aspect ?? '')),
        h('td', null, h('pre', { class: 'json' }, prettyJson(c.baseline))),
        h('td', null, h('pre', { class: 'json' }, prettyJson(c.current))))))) : null,
  ];
}

const SECTIONS = {
  blocked: ['Blocked', blocked],
  evidence: ['Evidence', (e) => lists(e, [['required', 'Required', 'muted'], ['found', 'Found', 'ok'], ['missing', 'Missing', 'bad'], ['expired', 'Expired', 'warn']])],
  dependencies: ['Dependencies', (d) => lists(d, [['satisfied', 'Satisfied', 'ok'], ['completed', 'Completed', 'ok'], ['failed', 'Failed', 'warn'], ['missing', 'Missing', 'bad']])],
  approval: ['Approval', (v) => kv(v)],
  budget_approval: ['Budget approval', (v) => kv(v)],
  break_glass: ['Break-glass', (v) => h('div', { class: 'callout tone-bad' }, kv(v))],
  rate_limit: ['Rate limit', entries],
  rate_limits: ['Rate limits', entries],
  rate: ['Rate', entries],
  spend_limit: ['Spend limit', entries],
  spend_limits: ['Spend limits', entries],
  spend: ['Spend', entries],
  budgets: ['Budgets', entries],
  other: ['Other windows', entries],
  tool_drift: ['Tool drift', drift],
  session: ['Session', (v) => kv(v)],
  dry_run: ['Dry-run report', (v) => kv(v)],
  sideband: ['Sideband', (v) => kv(v)],
};

/** The evidence chain, section by section; unknown keys as JSON text. */
export function evidenceChain(chain) {
  const body = h('div', { class: 'evidence', 'data-test': 'evidence-chain' });
  if (chain === null || chain === undefined) {
    body.appendChild(h('p', { class: 'muted' }, 'No controls were engaged for this call.'));
    return body;
  }
  if (typeof chain !== 'object' || Array.isArray(chain)) {
    body.appendChild(jsonBlock(chain));
    return body;
  }
  const order = Object.keys(SECTIONS);
  const keys = Object.keys(chain).sort((a, b) => {
    const ia = order.indexOf(a), ib = order.indexOf(b);
    return (ia < 0 ? 999 : ia) - (ib < 0 ? 999 : ib) || a.localeCompare(b);
  });
  for (const key of keys) {
    const known = SECTIONS[key];
    const value = chain[key];
    let content;
    try {
      content = known && value && typeof value === 'object' ? known[1](value) : jsonBlock(value);
    } catch {
      content = jsonBlock(value);
    }
    body.appendChild(h('section', { class: 'evidence-section', 'data-test': `evidence-${key}` },
      h('h4', null, known ? known[0] : key), content));
  }
  return body;
}

/** A fact row; empty facts are left out unless `always`. */
function fact(label, value, test, always = false) {
  const empty = value === null || value === undefined || value === '';
  if (empty && !always) return null;
  return [h('dt', null, label), h('dd', { 'data-test': test }, empty ? h('span', { class: 'muted' }, '—') : value)];
}

function renderRecord(r) {
  const facts = h('dl', { class: 'kv facts' },
    fact('Time', fmtDateTime(r.timestamp)),
    fact('Stored', fmtDateTime(r.created_at)),
    fact('Decision', r.policy_decision ? humanize(r.policy_decision) : null, 'detail-decision', true),
    fact('Block reason', r.block_reason ? humanize(r.block_reason) : null),
    fact('Matched rule', r.matched_rule ? `${r.matched_rule}${r.matched_rule_index !== null && r.matched_rule_index !== undefined ? ` (#${r.matched_rule_index})` : ''}` : null),
    fact('Session', r.session_id ? h('code', null, String(r.session_id)) : null, 'detail-session', true),
    fact('Session source', r.session_source),
    fact('Agent', r.agent_id, 'detail-agent', true),
    fact('Environment', r.environment),
    fact('Origin', originLabel(r.origin)),
    fact('Record kind', r.record_kind ? humanize(r.record_kind) : null),
    fact('Approval', r.approval_status ? `${humanize(r.approval_status)}${r.approved_by ? ` by ${r.approved_by}` : ''}` : null),
    fact('Approval wait', num(r.approval_wait_ms) ? fmtMs(r.approval_wait_ms) : null),
    fact('Upstream status', r.upstream_http_status),
    fact('Upstream latency', r.upstream_latency_ms !== null && r.upstream_latency_ms !== undefined ? fmtMs(r.upstream_latency_ms) : null),
    fact('Proxy compute', fmtMs(r.proxy_compute_ms)),
    fact('Total', fmtMs(r.total_duration_ms)),
    fact('Protocol', r.protocol_version),
    fact('Record id', h('code', null, String(r.id ?? ''))));
  const links = [];
  if (r.session_id) links.push(h('a', { href: `/audit${query({ session: r.session_id })}`, class: 'btn btn-small', 'data-test': 'detail-session-link' }, 'All calls of this session'));
  if (r.tool_name) links.push(h('a', { href: `/audit${query({ tool: r.tool_name })}`, class: 'btn btn-small' }, 'All calls of this tool'));
  return [
    h('div', { class: 'detail-badges' }, recordBadges(r)),
    facts,
    h('div', { class: 'row gap' }, links),
    r.upstream_error ? h('section', null, h('h3', null, 'Upstream error'), h('p', { class: 'callout tone-bad', 'data-test': 'detail-upstream-error' }, String(r.upstream_error))) : null,
    h('section', null, h('h3', null, 'Arguments'), jsonBlock(r.tool_input, { test: 'detail-arguments' })),
    h('section', null, h('h3', null, 'Evidence chain'), evidenceChain(r.evidence_chain)),
    h('section', null, h('h3', null, 'Upstream response'),
      r.response_truncated ? h('p', { class: 'muted' }, 'Helio stored this response cut short.') : null,
      r.upstream_response === null || r.upstream_response === undefined
        ? h('p', { class: 'muted' }, 'Not forwarded, or no response.')
        : jsonBlock(r.upstream_response, { test: 'detail-response' })),
    r.metadata ? h('section', null, h('h3', null, 'Metadata'), kv(typeof r.metadata === 'object' ? r.metadata : { metadata: r.metadata })) : null,
  ];
}

/** Opens the detail drawer for record `id`; returns {close}. */
export function openDetail(id, { onClose } = {}) {
  const title = h('span', null, 'Record');
  const body = h('div', { class: 'detail', 'data-test': 'detail-panel', 'data-record-id': id, 'aria-busy': 'true' },
    h('p', { class: 'muted' }, 'Loading…'));
  const dlg = modal({ title, content: body, className: 'drawer', test: 'detail-dialog', onClose });
  api(`/api/audit/${encodeURIComponent(id)}`).then((res) => {
    const r = res && res.data ? res.data : res;
    title.textContent = String(r.tool_name ?? 'Record');
    title.setAttribute('data-test', 'detail-tool');
    replace(body, renderRecord(r));
    body.setAttribute('aria-busy', 'false');
  }).catch((err) => {
    replace(body, h('p', { class: 'callout tone-bad', role: 'alert', 'data-test': 'detail-error' }, err.status === 404 ? 'Record not found.' : err.message));
    body.setAttribute('aria-busy', 'false');
  });
  return dlg;
}
