// Analytics: summary tiles and SVG charts over 1 h / 24 h / 7 d.

import { api } from './api.js';
import { h, replace, query } from './dom.js';
import { timeBars, hBars, donut } from './charts.js';
import { humanize, fmtDateTime, fmtTime } from './format.js';

const PRESETS = [['1h', 'Last hour', 3600e3, 'minute'], ['24h', 'Last 24 hours', 86400e3, 'hour'], ['7d', 'Last 7 days', 7 * 86400e3, 'hour']];

function tile(label, value, test, note) {
  return h('div', { class: 'tile', 'data-test': test },
    h('div', { class: 'tile-label' }, label),
    h('div', { class: 'tile-value' }, value),
    note ? h('div', { class: 'tile-note muted' }, note) : null);
}

function pct(part, whole) {
  return whole ? `${((part / whole) * 100).toFixed(1)}%` : '—';
}

function tickLabel(ms, bucket, span) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  if (bucket === 'minute') return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (span <= 86400e3 + 3600e3) return `${pad(d.getHours())}:00`;
  return `${d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${pad(d.getHours())}h`;
}

export function mountAnalytics(root) {
  let abort = new AbortController();
  let range = new URLSearchParams(location.search).get('range');
  if (!PRESETS.some(([k]) => k === range)) range = '24h';
  const tiles = h('div', { class: 'tiles', 'data-test': 'analytics-tiles' });
  const charts = h('div', { class: 'charts', 'data-test': 'analytics-charts' }, h('p', { class: 'muted' }, 'Loading…'));
  const status = h('div', { 'data-test': 'analytics-status' });
  const updated = h('span', { class: 'muted', 'data-test': 'analytics-updated' });
  const buttons = PRESETS.map(([key, label]) => {
    const b = h('button', { type: 'button', class: 'pill', 'data-test': `range-${key}`, 'aria-pressed': String(key === range) }, label);
    b.addEventListener('click', () => {
      range = key;
      for (const x of buttons) x.setAttribute('aria-pressed', String(x === b));
      history.replaceState(null, '', `/analytics${query({ range: key === '24h' ? '' : key })}`);
      load();
    });
    return b;
  });
  const refreshBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'analytics-refresh' }, 'Refresh');
  refreshBtn.addEventListener('click', () => load());

  const fetchSummary = (params) => api(`/api/analytics${query(params)}`, { signal: abort.signal });

  async function load() {
    abort.abort();
    abort = new AbortController();
    const [, label, span, bucket] = PRESETS.find(([k]) => k === range);
    const to = Date.now();
    const from = to - span;
    try {
      const a = await fetchSummary({ from: new Date(from).toISOString(), to: new Date(to).toISOString(), bucket });
      const total = Number(a.total) || 0;
      const allowed = Number(a.allowed_total) || 0;
      const blocked = Number(a.blocked_total) || 0;
      const dry = Number(a.dry_run_total) || 0;
      const rate = a.approval_rate;
      replace(tiles,
        tile('Calls', total.toLocaleString(), 'tile-total', label),
        tile('Allowed', allowed.toLocaleString(), 'tile-allowed', pct(allowed, total)),
        tile('Blocked', blocked.toLocaleString(), 'tile-blocked', pct(blocked, total)),
        tile('Dry runs', dry.toLocaleString(), 'tile-dry-run', pct(dry, total)),
        rate !== undefined ? tile('Approval rate', rate === null ? '—' : `${(Number(rate) * 100).toFixed(0)}%`, 'tile-approval-rate', 'of decided tickets') : null);
      const series = (a.series || []).map((p) => {
        const ms = Date.parse(p.bucket ?? p.hour ?? p.time);
        const b = a.bucket || bucket;
        return { value: Number(p.count) || 0, tick: Number.isFinite(ms) ? tickLabel(ms, b, span) : String(p.bucket ?? ''), label: Number.isFinite(ms) ? fmtDateTime(ms) : String(p.bucket ?? '') };
      });
      const pairs = (list, key, fmt = (x) => x) => (Array.isArray(list) ? list : []).map((x) => ({ label: fmt(String(x[key] ?? '')), value: Number(x.count) || 0 }));
      replace(charts,
        h('div', { class: 'chart-card wide' }, timeBars(series, { title: `Calls per ${(a.bucket || bucket) === 'minute' ? 'minute' : 'hour'}`, test: 'chart-timeseries' })),
        h('div', { class: 'chart-card' }, donut(pairs(a.by_decision, 'decision', humanize), { title: 'Decisions', test: 'chart-decisions' })),
        h('div', { class: 'chart-card' }, hBars(pairs(a.top_tools, 'tool_name'), { title: 'Top tools', test: 'chart-top-tools' })),
        h('div', { class: 'chart-card' }, hBars(pairs(a.by_block_reason, 'reason', humanize).map((x) => ({ ...x, tone: 'bad' })), { title: 'Blocked by reason', test: 'chart-blocked-reasons', empty: 'Nothing was blocked in this range.' })));
      replace(status);
      updated.textContent = `Updated ${fmtTime(to)}`;
    } catch (err) {
      if (err.name !== 'AbortError') replace(status, h('p', { class: 'callout tone-bad', role: 'alert' }, `Could not load analytics: ${err.message}`));
    }
  }

  root.appendChild(h('div', { class: 'page' },
    h('div', { class: 'page-head row' },
      h('div', null, h('h1', null, 'Analytics'), h('p', { class: 'muted' }, 'What agents called and what Helio decided.')),
      h('span', { class: 'spacer' }), updated, refreshBtn),
    h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Time range' }, buttons),
    status, tiles, charts));
  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, 30000);

  return {
    unmount() { abort.abort(); clearInterval(timer); },
  };
}
