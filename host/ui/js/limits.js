// Rate & spend limits (live utilisation) and budgets (pots, buckets, ledger).

import { api } from './api.js';
import { h, replace, query } from './dom.js';
import * as live from './live.js';
import { meter } from './charts.js';
import { badge, chip } from './detail.js';
import { num, toMs, fmtNumber, fmtMoney, fmtWindow, fmtSpan, fmtTime, fmtDateTime, fmtRelative, humanize } from './format.js';

/** One window of `GET /api/limits`: a rate entry (`current`), a spend
 * entry (`current_spend`, `currency`) or another stage's (`total`). */
function normalise(e, kind) {
  const current = num(kind === 'rate' ? e.current : (e.current_spend ?? e.total));
  const key = e.key ?? [e.rule, e.bucket].filter(Boolean).join(' · ');
  return { key: String(key ?? ''), rule: e.rule, bucket: e.bucket, current, limit: num(e.limit), currency: e.currency, windowMs: num(e.window_ms ?? NaN), resetMs: toMs(e.reset_at_ms) };
}

function resetText(ms) {
  if (!Number.isFinite(ms)) return '—';
  const left = ms - Date.now();
  return left > 0 ? `in ${fmtSpan(left)}` : 'now';
}

function limitTable(entries, kind, warned) {
  if (!entries.length) return h('p', { class: 'empty' }, kind === 'rate' ? 'No rate-limit windows in use.' : 'No spend-limit ledgers in use.');
  const fmt = (e, v) => (kind === 'rate' ? fmtNumber(v, 0) : fmtMoney(v, e.currency));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table limits-table' },
    h('thead', null, h('tr', null, ['Limit', 'Utilisation', 'Used', 'Window', 'Resets'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, entries.map((e) => {
      const ratio = e.limit > 0 ? e.current / e.limit : NaN;
      return h('tr', { 'data-test': 'limit-row', 'data-key': e.key, class: warned.has(e.key) ? 'flash' : '' },
        h('td', null,
          e.rule ? h('strong', null, String(e.rule)) : null,
          h('div', null, h('code', { class: e.rule ? 'muted' : '' }, String(e.bucket ?? e.key)))),
        h('td', { class: 'meter-cell' }, Number.isFinite(e.limit)
          ? meter(e.current, e.limit, { label: `${e.key} utilisation`, test: 'limit-bar' })
          : h('span', { class: 'muted' }, 'limit unknown')),
        h('td', { class: 'nowrap', 'data-test': 'limit-value' }, `${fmt(e, e.current)}${Number.isFinite(e.limit) ? ` / ${fmt(e, e.limit)}` : ''}`,
          Number.isFinite(ratio) ? h('span', { class: 'muted' }, ` (${Math.round(ratio * 100)}%)`) : null),
        h('td', { class: 'nowrap' }, fmtWindow(e.windowMs)),
        h('td', { class: 'nowrap reset', 'data-reset': Number.isFinite(e.resetMs) ? String(e.resetMs) : '', title: Number.isFinite(e.resetMs) ? fmtDateTime(e.resetMs) : '' }, resetText(e.resetMs)));
    }))));
}

function tickResets(root) {
  for (const td of root.querySelectorAll('[data-reset]')) {
    if (td.dataset.reset) td.textContent = resetText(Number(td.dataset.reset));
  }
}

export function mountLimits(root) {
  let abort = new AbortController();
  let debounce = 0;
  const warned = new Map(); // key -> until (ms)
  const rate = h('div', { 'data-test': 'rate-limits' }, h('p', { class: 'muted' }, 'Loading…'));
  const spend = h('div', { 'data-test': 'spend-limits' });
  const other = h('div', { 'data-test': 'other-limits' });
  const status = h('div', { 'data-test': 'limits-status' });
  const updated = h('span', { class: 'muted', 'data-test': 'limits-updated' });

  async function load() {
    if (document.hidden) return;
    try {
      const res = await api('/api/limits', { signal: abort.signal });
      const now = Date.now();
      for (const [k, until] of warned) if (until < now) warned.delete(k);
      const byUse = (a, b) => ((b.current / b.limit) || 0) - ((a.current / a.limit) || 0) || a.key.localeCompare(b.key);
      replace(rate, limitTable((res.rate_limits || []).map((e) => normalise(e, 'rate')).sort(byUse), 'rate', warned));
      replace(spend, limitTable((res.spend_limits || []).map((e) => normalise(e, 'spend')).sort(byUse), 'spend', warned));
      const others = Array.isArray(res.other) ? res.other : [];
      replace(other, others.length ? [h('h2', null, 'Other windows'), limitTable(others.map((e) => normalise(e, 'spend')), 'other', warned)] : null);
      replace(status);
      updated.textContent = `Updated ${fmtTime(now)}`;
    } catch (err) {
      if (err.name !== 'AbortError') replace(status, h('p', { class: 'callout tone-bad', role: 'alert' }, `Could not load limits: ${err.message}`));
    }
  }

  const unsub = live.on('limit_warning', (d) => {
    if (d && d.key) warned.set(String(d.key), Date.now() + 4000);
    clearTimeout(debounce);
    debounce = setTimeout(load, 200);
  });
  const timers = [setInterval(load, 2000), setInterval(() => tickResets(root), 1000)];

  root.appendChild(h('div', { class: 'page' },
    h('div', { class: 'page-head row' },
      h('div', null, h('h1', null, 'Rate & spend limits'), h('p', { class: 'muted' }, 'Live windows of the rate_limit and spend_limit rules. Refreshed every 2 seconds.')),
      h('span', { class: 'spacer' }), updated),
    status,
    h('section', { class: 'section' }, h('h2', null, 'Rate limits'), rate),
    h('section', { class: 'section' }, h('h2', null, 'Spend limits'), spend),
    other));
  load();

  return {
    unmount() {
      abort.abort();
      clearTimeout(debounce);
      for (const t of timers) clearInterval(t);
      unsub();
    },
  };
}

const LEDGER_PAGE = 50;

export function mountBudgets(root, ctx) {
  let abort = new AbortController();
  let ledgerAbort = new AbortController();
  let debounce = 0;
  let ledgerName = new URLSearchParams(location.search).get('name') || '';
  let ledgerOffset = 0;
  const list = h('div', { class: 'budgets', 'data-test': 'budgets-list' }, h('p', { class: 'muted' }, 'Loading…'));
  const breaches = h('div', { class: 'breaches', 'data-test': 'budget-breaches', 'aria-live': 'polite' });
  const ledger = h('section', { class: 'section', 'data-test': 'ledger', hidden: true });

  function bucketRow(b, budget) {
    const spent = num(b.spent);
    const limit = num(budget.limit);
    const reset = toMs(b.reset_at_ms);
    return h('tr', { 'data-test': 'bucket-row', 'data-bucket-key': b.bucket_key },
      h('td', null, h('code', null, String(b.bucket_key ?? ''))),
      h('td', { class: 'meter-cell' }, meter(spent, limit, { label: `${budget.name} ${b.bucket_key} spent`, test: 'budget-bar' })),
      h('td', { class: 'nowrap' }, `${fmtMoney(b.spent, budget.currency)} / ${fmtMoney(budget.limit, budget.currency)}`,
        spent > limit ? h('span', { class: 'tone-text-bad' }, ' over') : null),
      h('td', { class: 'nowrap', 'data-test': 'bucket-remaining' }, fmtMoney(b.remaining, budget.currency)),
      h('td', { class: 'nowrap', 'data-reset': Number.isFinite(reset) ? String(reset) : '', title: Number.isFinite(reset) ? fmtDateTime(reset) : '' },
        Number.isFinite(reset) ? resetText(reset) : (budget.window === 'session' ? 'never (session)' : '—')),
      h('td', { class: 'nowrap', title: fmtDateTime(b.last_activity_ms) }, fmtRelative(b.last_activity_ms)));
  }

  function budgetCard(b) {
    const buckets = Array.isArray(b.buckets) ? b.buckets : [];
    const href = `/budgets${query({ name: b.name })}`;
    return h('article', { class: `budget${b.name === ledgerName ? ' is-selected' : ''}`, 'data-test': 'budget', 'data-budget-name': b.name },
      h('header', { class: 'budget-head' },
        h('h3', null, String(b.name ?? '')),
        h('span', { class: 'budget-limit' }, fmtMoney(b.limit, b.currency)),
        chip(`window ${b.window ?? '—'}`),
        chip(`key ${b.key ?? 'global'}`),
        chip(`on exceed: ${humanize(b.on_exceed ?? 'deny')}`, b.on_exceed === 'require_approval' ? 'info' : 'warn'),
        h('span', { class: 'spacer' }),
        h('a', { href, class: 'btn btn-small', 'data-test': 'budget-ledger-link', 'aria-current': b.name === ledgerName ? 'true' : null }, 'Ledger')),
      buckets.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
          h('thead', null, h('tr', null, ['Bucket', 'Depletion', 'Spent', 'Remaining', 'Resets', 'Last activity'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', null, buckets.map((x) => bucketRow(x, b)))))
        : h('p', { class: 'empty' }, 'No spend in the current window.'));
  }

  async function load() {
    try {
      const res = await api('/api/budgets', { signal: abort.signal });
      const budgets = (res && res.budgets) || [];
      replace(list, budgets.length ? budgets.map(budgetCard) : h('p', { class: 'empty' }, 'No budgets are configured (budgets: in helio.yaml).'));
    } catch (err) {
      if (err.name !== 'AbortError') replace(list, h('p', { class: 'callout tone-bad', role: 'alert' }, `Could not load budgets: ${err.message}`));
    }
  }

  async function loadLedger() {
    ledgerAbort.abort();
    ledgerAbort = new AbortController();
    if (!ledgerName) { ledger.hidden = true; return; }
    ledger.hidden = false;
    const base = `/api/budgets/${encodeURIComponent(ledgerName)}/events`;
    const head = h('div', { class: 'row' },
      h('h2', null, 'Ledger: ', h('span', { 'data-test': 'ledger-name' }, ledgerName)),
      h('span', { class: 'spacer' }),
      h('a', { class: 'btn btn-small', href: `${base}/export${query({ format: 'csv' })}`, download: '', 'data-test': 'export-csv' }, 'Export CSV'),
      h('a', { class: 'btn btn-small', href: `${base}/export${query({ format: 'json' })}`, download: '', 'data-test': 'export-json' }, 'Export JSON'),
      h('a', { class: 'btn btn-small', href: '/budgets', 'data-test': 'ledger-close' }, 'Close'));
    try {
      const res = await api(`${base}${query({ limit: LEDGER_PAGE, offset: ledgerOffset })}`, { signal: ledgerAbort.signal });
      const rows = (res && res.data) || [];
      const total = Number(res.total) || 0;
      const prev = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'ledger-prev', disabled: ledgerOffset === 0 }, '← Newer');
      const next = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'ledger-next', disabled: ledgerOffset + rows.length >= total }, 'Older →');
      prev.addEventListener('click', () => { ledgerOffset = Math.max(0, ledgerOffset - LEDGER_PAGE); loadLedger(); });
      next.addEventListener('click', () => { ledgerOffset += LEDGER_PAGE; loadLedger(); });
      replace(ledger, head,
        rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'data-test': 'ledger-table' },
          h('thead', null, h('tr', null, ['Time', 'Kind', 'Amount', 'Bucket', 'Tool', 'Origin', 'Record'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', null, rows.map((e) => h('tr', { 'data-test': 'ledger-row', 'data-kind': e.kind },
            h('td', { class: 'nowrap', title: fmtDateTime(e.timestamp_ms ?? e.timestamp) }, fmtTime(e.timestamp_ms ?? e.timestamp)),
            h('td', null, e.kind === 'approved_overage' ? badge('Approved overage', 'warn', 'overage-badge') : chip(humanize(e.kind ?? 'spend'))),
            h('td', { class: 'num nowrap' }, fmtMoney(e.amount, e.currency)),
            h('td', null, h('code', null, String(e.bucket_key ?? ''))),
            h('td', null, String(e.tool_name ?? '')),
            h('td', null, String(e.origin ?? '')),
            h('td', null, e.audit_record_id ? h('a', { href: `/audit${query({ record: e.audit_record_id })}` }, 'record') : '—'))))))
          : h('p', { class: 'empty' }, 'No ledger entries (entries older than the audit retention are purged).'),
        h('div', { class: 'pager' }, prev, h('span', { class: 'muted', 'data-test': 'ledger-total' },
          total ? `${ledgerOffset + 1}–${ledgerOffset + rows.length} of ${total}` : ''), next));
    } catch (err) {
      if (err.name !== 'AbortError') replace(ledger, head, h('p', { class: 'callout tone-bad', role: 'alert' }, `Could not load the ledger: ${err.message}`));
    }
  }

  function refresh() {
    clearTimeout(debounce);
    debounce = setTimeout(() => { load(); if (ledgerOffset === 0) loadLedger(); }, 300);
  }

  const unsubs = [
    live.on('budget_update', refresh),
    live.on('budget_breached', (d) => {
      refresh();
      if (!d) return;
      breaches.prepend(h('p', { class: 'callout tone-warn', 'data-test': 'budget-breach' },
        h('strong', null, `${fmtTime(Date.now())} Budget ${d.name ?? ''} breached`),
        ` — bucket ${d.bucket_key ?? '?'}: ${fmtMoney(d.spent, d.currency)} spent of ${fmtMoney(d.limit, d.currency)}, attempted ${fmtMoney(d.attempted_amount, d.currency)} (${humanize(d.on_exceed ?? '')}).`));
      while (breaches.children.length > 5) breaches.lastChild.remove();
    }),
  ];
  const timers = [setInterval(() => tickResets(list), 1000), setInterval(() => { if (!document.hidden) load(); }, 10000)];

  root.appendChild(h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Budgets'), h('p', { class: 'muted' }, 'Cross-tool spending pots and how far each bucket is drawn down.')),
    breaches,
    list,
    ledger));
  load();
  loadLedger();

  return {
    update() {
      const name = new URLSearchParams(location.search).get('name') || '';
      if (name !== ledgerName) { ledgerName = name; ledgerOffset = 0; load(); loadLedger(); }
      if (name) ledger.scrollIntoView({ block: 'start', behavior: 'smooth' });
    },
    unmount() {
      abort.abort();
      ledgerAbort.abort();
      clearTimeout(debounce);
      for (const t of timers) clearInterval(t);
      for (const u of unsubs) u();
    },
  };
}
