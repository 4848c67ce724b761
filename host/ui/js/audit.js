// Audit log: filters kept in the URL, a paginated table, the detail panel,
// and export links for the current filter.

import { api } from './api.js';
import { h, replace, query, plainClick } from './dom.js';
import * as live from './live.js';
import { DECISIONS, BLOCK_REASONS, RECORD_KINDS, humanize, fmtMs, fmtTime, fmtDateTime, shortId } from './format.js';
import { recordBadges, openDetail } from './detail.js';

const TEXT_FIELDS = [['tool', 'Tool', 'name contains'], ['q', 'Search', 'words in tool, arguments, rule, error'], ['session', 'Session', 'exact id'], ['agent', 'Agent', 'exact id'], ['origin', 'Origin', 'mcp or adapter']];
const RANGES = [['', 'All time'], ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['custom', 'Custom…']];
const RANGE_MS = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
const LIMITS = [25, 50, 100, 200];
/** The URL keys this page owns (the API filters plus page state). */
const KEYS = ['tool', 'q', 'decision', 'reason', 'blocked', 'session', 'agent', 'origin', 'record_kind', 'range', 'from', 'to', 'limit', 'offset', 'record'];

function readState() {
  const p = new URLSearchParams(location.search);
  const st = {};
  for (const k of KEYS) st[k] = p.get(k) || '';
  st.limit = LIMITS.includes(Number(st.limit)) ? Number(st.limit) : 50;
  st.offset = /^\d+$/.test(st.offset) ? Number(st.offset) : 0;
  return st;
}

/** The API's filter parameters for a state (times resolved now). */
function apiFilters(st) {
  const f = {};
  for (const k of ['tool', 'q', 'decision', 'reason', 'session', 'agent', 'origin', 'record_kind']) if (st[k].trim()) f[k] = st[k].trim();
  if (st.blocked === 'true' || st.blocked === 'false') f.blocked = st.blocked;
  if (RANGE_MS[st.range]) f.from = new Date(Date.now() - RANGE_MS[st.range]).toISOString();
  if (st.range === 'custom') {
    if (st.from) f.from = st.from;
    if (st.to) f.to = st.to;
  }
  return f;
}

/** URL query for a state, without defaults. */
function urlFor(st, extra = {}) {
  const out = { ...st, ...extra };
  const q = {};
  for (const k of KEYS) {
    const v = out[k];
    if (v === '' || v === null || v === undefined) continue;
    if (k === 'limit' && Number(v) === 50) continue;
    if (k === 'offset' && Number(v) === 0) continue;
    if ((k === 'from' || k === 'to') && out.range !== 'custom') continue;
    q[k] = v;
  }
  return `/audit${query(q)}`;
}

/** ISO (UTC) ⇄ the value of a datetime-local input (local time). */
function isoToLocal(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
function localToIso(v) {
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : `${d.toISOString().slice(0, 16)}Z`;
}

export function mountAudit(root, ctx) {
  let st = readState();
  let abort = new AbortController();
  let detail = null;
  let detailId = null;
  let fresh = 0;

  const inputs = {};
  const field = (name, label, control, hint) => h('div', { class: 'field' },
    h('label', { for: `f-${name}` }, label, hint ? h('span', { class: 'hint' }, ` ${hint}`) : null), control);
  const select = (name, options) => h('select', { id: `f-${name}`, name, 'data-test': `filter-${name}` },
    options.map(([v, l]) => h('option', { value: v }, l)));

  for (const [name, , hint] of TEXT_FIELDS) {
    inputs[name] = h('input', { type: 'search', id: `f-${name}`, name, 'data-test': `filter-${name}`, placeholder: hint, autocomplete: 'off', maxlength: 1024 });
  }
  inputs.decision = select('decision', [['', 'Any'], ...DECISIONS.map((d) => [d, humanize(d)])]);
  inputs.reason = select('reason', [['', 'Any'], ['__blocked', 'Any block (blocked)'], ['__none', 'None (not blocked)'], ...BLOCK_REASONS.map((r) => [r, humanize(r)])]);
  inputs.record_kind = select('record_kind', [['', 'Any'], ...RECORD_KINDS.map((k) => [k, humanize(k)])]);
  inputs.range = select('range', RANGES);
  inputs.from = h('input', { type: 'datetime-local', id: 'f-from', name: 'from', 'data-test': 'filter-from' });
  inputs.to = h('input', { type: 'datetime-local', id: 'f-to', name: 'to', 'data-test': 'filter-to' });
  const custom = h('div', { class: 'custom-range' }, field('from', 'From', inputs.from), field('to', 'To', inputs.to));
  inputs.range.addEventListener('change', () => { custom.hidden = inputs.range.value !== 'custom'; });

  const form = h('form', { class: 'filters', 'data-test': 'audit-filters', role: 'search' },
    field('tool', 'Tool', inputs.tool),
    field('decision', 'Decision', inputs.decision),
    field('reason', 'Block reason', inputs.reason),
    field('session', 'Session', inputs.session),
    field('agent', 'Agent', inputs.agent),
    field('range', 'Time', inputs.range),
    custom,
    field('q', 'Search', inputs.q),
    field('record_kind', 'Record kind', inputs.record_kind),
    field('origin', 'Origin', inputs.origin),
    h('div', { class: 'filter-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', 'data-test': 'filter-apply' }, 'Apply'),
      h('a', { href: '/audit', class: 'btn', 'data-test': 'filter-reset' }, 'Reset')));

  const tbody = h('tbody', { 'data-test': 'audit-rows' });
  const status = h('div', { 'data-test': 'audit-status' });
  const info = h('span', { class: 'muted', 'data-test': 'audit-total' });
  const prev = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'audit-prev' }, '← Newer');
  const next = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'audit-next' }, 'Older →');
  const limitSel = h('select', { 'aria-label': 'Rows per page', 'data-test': 'audit-limit' }, LIMITS.map((n) => h('option', { value: String(n) }, `${n} per page`)));
  const exportCsv = h('a', { class: 'btn btn-small', download: '', 'data-test': 'export-csv' }, 'Export CSV');
  const exportJson = h('a', { class: 'btn btn-small', download: '', 'data-test': 'export-json' }, 'Export JSON');
  const freshBtn = h('button', { type: 'button', class: 'btn btn-small btn-accent', 'data-test': 'audit-fresh', hidden: true });

  function syncForm() {
    for (const [name] of TEXT_FIELDS) inputs[name].value = st[name];
    inputs.decision.value = st.decision;
    inputs.reason.value = st.reason || (st.blocked === 'true' ? '__blocked' : st.blocked === 'false' ? '__none' : '');
    inputs.record_kind.value = st.record_kind;
    inputs.range.value = RANGES.some(([v]) => v === st.range) ? st.range : '';
    inputs.from.value = st.from ? isoToLocal(st.from) : '';
    inputs.to.value = st.to ? isoToLocal(st.to) : '';
    custom.hidden = inputs.range.value !== 'custom';
    limitSel.value = String(st.limit);
  }

  function formState() {
    const next = { ...st, offset: 0, record: '' };
    for (const [name] of TEXT_FIELDS) next[name] = inputs[name].value.trim();
    next.decision = inputs.decision.value;
    const reason = inputs.reason.value;
    next.reason = reason.startsWith('__') ? '' : reason;
    next.blocked = reason === '__blocked' ? 'true' : reason === '__none' ? 'false' : '';
    next.record_kind = inputs.record_kind.value;
    next.range = inputs.range.value;
    next.from = next.range === 'custom' && inputs.from.value ? localToIso(inputs.from.value) : '';
    next.to = next.range === 'custom' && inputs.to.value ? localToIso(inputs.to.value) : '';
    return next;
  }

  function row(r) {
    const href = urlFor(st, { record: r.id });
    return h('tr', { class: 'clickable', 'data-test': 'audit-row', 'data-record-id': r.id },
      h('td', { class: 'nowrap', title: fmtDateTime(r.timestamp || r.created_at) }, fmtTime(r.timestamp || r.created_at)),
      h('td', { class: 'tool-cell' }, h('a', { href, 'data-test': 'row-tool' }, String(r.tool_name ?? ''))),
      h('td', null, h('span', { class: 'badges' }, recordBadges(r))),
      h('td', null, r.matched_rule ? String(r.matched_rule) : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'mono nowrap', title: r.session_id ? String(r.session_id) : '' }, r.session_id ? shortId(r.session_id, 10) : '—'),
      h('td', null, r.agent_id ? String(r.agent_id) : '—'),
      h('td', { class: 'num nowrap' }, fmtMs(r.total_duration_ms)));
  }

  function openRecord(id) {
    if (detail && detailId === id) return;
    if (detail) detail.close();
    detailId = id;
    detail = openDetail(id, {
      onClose: () => {
        detail = null;
        detailId = null;
        const p = new URLSearchParams(location.search);
        if (location.pathname === '/audit' && p.get('record') === id) {
          st.record = '';
          history.replaceState(null, '', urlFor(st));
        }
      },
    });
  }

  async function load() {
    abort.abort();
    abort = new AbortController();
    const filters = apiFilters(st);
    exportCsv.href = `/api/audit/export${query({ format: 'csv', ...filters })}`;
    exportJson.href = `/api/audit/export${query({ format: 'json', ...filters })}`;
    tbody.setAttribute('aria-busy', 'true');
    replace(status);
    fresh = 0;
    freshBtn.hidden = true;
    try {
      const res = await api(`/api/audit${query({ ...filters, limit: st.limit, offset: st.offset })}`, { signal: abort.signal });
      const rows = (res && res.data) || [];
      const total = Number(res.total) || 0;
      replace(tbody, rows.map(row));
      if (!rows.length) replace(status, h('p', { class: 'empty' }, st.offset ? 'No records on this page.' : 'No records match these filters.'));
      // Past 10,000 records some filters are not counted exactly (the
      // total is then a lower bound): whether there is more is whether
      // this page was full.
      const exact = res.total_exact !== false;
      const of = exact ? total.toLocaleString() : `${total.toLocaleString()}+`;
      info.textContent = total ? `${(st.offset + 1).toLocaleString()}–${(st.offset + rows.length).toLocaleString()} of ${of}` : '0 records';
      prev.disabled = st.offset === 0;
      next.disabled = exact ? st.offset + rows.length >= total : !res.next_cursor;
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(tbody);
      replace(status, h('p', { class: 'callout tone-bad', role: 'alert', 'data-test': 'audit-error' }, `Could not load the audit log: ${err.message}`));
      info.textContent = '';
    } finally {
      tbody.setAttribute('aria-busy', 'false');
    }
  }

  function go(nextState, { push = true } = {}) {
    st = nextState;
    const url = urlFor(st);
    if (push) history.pushState(null, '', url); else history.replaceState(null, '', url);
    load();
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); go(formState()); });
  prev.addEventListener('click', () => go({ ...st, offset: Math.max(0, st.offset - st.limit) }));
  next.addEventListener('click', () => go({ ...st, offset: st.offset + st.limit }));
  limitSel.addEventListener('change', () => go({ ...st, limit: Number(limitSel.value), offset: 0 }));
  freshBtn.addEventListener('click', () => go({ ...st, offset: 0 }, { push: false }));
  tbody.addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-record-id]');
    if (!tr) return;
    const link = e.target.closest('a');
    if (link && !plainClick(e)) return;
    if (!link && String(window.getSelection ? window.getSelection() : '').length) return;
    e.preventDefault();
    const id = tr.dataset.recordId;
    st.record = id;
    history.replaceState(null, '', urlFor(st));
    openRecord(id);
  });

  const unsub = live.on('action', () => {
    if (st.offset !== 0) return;
    fresh += 1;
    freshBtn.textContent = `${fresh > 99 ? '99+' : fresh} new · refresh`;
    freshBtn.hidden = false;
  });

  root.appendChild(h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Audit log'), h('p', { class: 'muted' }, 'Every recorded call. Filters are kept in the address, so a filtered view can be shared.')),
    form,
    h('div', { class: 'toolbar' }, info, freshBtn, h('span', { class: 'spacer' }), exportCsv, exportJson),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'data-test': 'audit-table' },
      h('thead', null, h('tr', null, ['Time', 'Tool', 'Outcome', 'Rule', 'Session', 'Agent', 'Took'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody)),
    status,
    h('div', { class: 'pager' }, prev, limitSel, next)));

  syncForm();
  load();
  if (st.record) openRecord(st.record);

  return {
    update() {
      const before = JSON.stringify({ ...st, record: '' });
      st = readState();
      syncForm();
      if (JSON.stringify({ ...st, record: '' }) !== before) load();
      if (st.record) openRecord(st.record);
      else if (detail) detail.close();
    },
    unmount() {
      abort.abort();
      unsub();
      if (detail) detail.close();
    },
  };
}
