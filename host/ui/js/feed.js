// Activity feed: live cards from the event stream, older records backfilled
// from /api/feed as the list scrolls, outcome filters applied in the page.

import { api } from './api.js';
import { h, replace, query, plainClick } from './dom.js';
import * as live from './live.js';
import { OUTCOMES, outcome, fmtMs, fmtTime, fmtDateTime, shortId } from './format.js';
import { recordBadges, openDetail } from './detail.js';

const PAGE = 50;
const MAX_CARDS = 1000;

function card(r) {
  const meta = r.metadata && typeof r.metadata === 'object' ? r.metadata : {};
  const item = (label, value, test, cls = '') => (value === null || value === undefined || value === ''
    ? null
    : h('span', { class: `meta-item ${cls}`, 'data-test': test }, h('span', { class: 'meta-label' }, label), String(value)));
  return h('article', { class: 'card', 'data-test': 'feed-card', 'data-record-id': r.id, 'data-outcome': outcome(r).key },
    h('div', { class: 'card-top' },
      h('a', { href: `/audit${query({ record: r.id })}`, class: 'card-tool', 'data-test': 'card-tool' }, String(r.tool_name ?? '(no tool name)')),
      h('span', { class: 'card-badges' }, recordBadges(r)),
      h('time', { class: 'card-time', datetime: r.timestamp || r.created_at || '', title: fmtDateTime(r.timestamp || r.created_at) }, fmtTime(r.timestamp || r.created_at))),
    h('div', { class: 'card-meta' },
      item('rule', r.matched_rule, 'card-rule'),
      // The reason adds to the badge only where the outcome is generic.
      item('reason', ['deny', 'rejected'].includes(outcome(r).key) ? r.block_reason : null, 'card-reason'),
      item('took', Number.isFinite(Number(r.total_duration_ms)) ? fmtMs(r.total_duration_ms) : null, 'card-duration'),
      r.session_id ? h('span', { class: 'meta-item', 'data-test': 'card-session', title: String(r.session_id) }, h('span', { class: 'meta-label' }, 'session'), shortId(r.session_id, 10)) : null,
      item('agent', r.agent_id, 'card-agent'),
      item('channel', meta.channel_id, 'card-channel'),
      item('sender', meta.sender_name || meta.sender_id, 'card-sender')));
}

export function mountFeed(root, ctx) {
  const ids = new Set();
  const selected = new Set((new URLSearchParams(location.search).get('outcome') || '').split(',').filter(Boolean));
  let loading = false;
  let done = false;
  let paused = false;
  let queued = [];
  let buffer = [];
  let frame = 0;
  let autoLoads = 0;
  let lastState = live.liveState();
  let abort = new AbortController();

  const list = h('div', { class: 'feed-list', 'data-test': 'feed-list', 'aria-label': 'Activity, newest first' });
  const status = h('p', { class: 'muted feed-status', 'data-test': 'feed-status' });
  const moreBtn = h('button', { type: 'button', class: 'btn', 'data-test': 'feed-load-more' }, 'Load older');
  const sentinel = h('div', { class: 'sentinel' });
  const notice = h('div', { 'data-test': 'feed-notice' });
  const pauseBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'feed-pause', 'aria-pressed': 'false' }, 'Pause');
  const counter = h('span', { class: 'muted', 'data-test': 'feed-count' });

  const pills = OUTCOMES.map((o) => {
    const b = h('button', { type: 'button', class: `pill tone-${o.tone}`, 'data-test': 'feed-filter', 'data-outcome': o.key, 'aria-pressed': String(selected.has(o.key)) }, o.label);
    b.addEventListener('click', () => {
      if (selected.has(o.key)) selected.delete(o.key); else selected.add(o.key);
      b.setAttribute('aria-pressed', String(selected.has(o.key)));
      applyFilter();
    });
    return b;
  });
  const clearBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'feed-filter-clear' }, 'All outcomes');
  clearBtn.addEventListener('click', () => {
    selected.clear();
    for (const p of pills) p.setAttribute('aria-pressed', 'false');
    applyFilter();
  });

  function visible(el) { return selected.size === 0 || selected.has(el.dataset.outcome); }

  function applyFilter() {
    let shown = 0;
    for (const el of list.children) { el.hidden = !visible(el); if (!el.hidden) shown += 1; }
    counter.textContent = selected.size ? `${shown} of ${list.children.length} loaded match` : `${list.children.length} loaded`;
    clearBtn.disabled = selected.size === 0;
    const url = new URL(location.href);
    if (selected.size) url.searchParams.set('outcome', [...selected].join(',')); else url.searchParams.delete('outcome');
    history.replaceState(null, '', url.pathname + url.search);
    showEmpty();
  }

  function showEmpty() {
    if (list.children.length === 0 && done) status.textContent = 'No activity yet. Calls through Helio appear here as they happen.';
    else if (done) status.textContent = 'That is everything.';
    else status.textContent = '';
    moreBtn.hidden = done;
  }

  function add(el, top) {
    el.hidden = !visible(el);
    if (top) list.insertBefore(el, list.firstChild); else list.appendChild(el);
  }

  function flush() {
    frame = 0;
    const batch = buffer;
    buffer = [];
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i -= 1) {
      const el = card(batch[i]);
      el.classList.add('card-new');
      el.hidden = !visible(el);
      frag.appendChild(el);
    }
    list.insertBefore(frag, list.firstChild);
    while (list.children.length > MAX_CARDS) {
      ids.delete(list.lastChild.dataset.recordId);
      list.lastChild.remove();
      done = false;
    }
    applyFilter();
  }

  function receive(r) {
    if (!r || !r.id || ids.has(r.id)) return;
    ids.add(r.id);
    if (paused) {
      queued.push(r);
      if (queued.length > MAX_CARDS) ids.delete(queued.shift().id);
      pauseBtn.textContent = `Resume (${queued.length} new)`;
      return;
    }
    buffer.push(r);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  async function loadMore() {
    if (loading || done) return;
    loading = true;
    moreBtn.disabled = true;
    status.textContent = 'Loading…';
    try {
      const res = await api(`/api/feed${query({ limit: PAGE, offset: list.children.length + buffer.length })}`, { signal: abort.signal });
      const rows = (res && res.data) || [];
      for (const r of rows) {
        if (!r || !r.id || ids.has(r.id)) continue;
        ids.add(r.id);
        add(card(r), false);
      }
      if (rows.length < PAGE) done = true;
      if (typeof res.total === 'number' && list.children.length >= res.total) done = true;
      status.textContent = '';
    } catch (err) {
      if (err.name === 'AbortError') return;
      status.textContent = `Could not load the feed: ${err.message}`;
    } finally {
      loading = false;
      moreBtn.disabled = false;
    }
    applyFilter();
    // Keep filling while the end of the list is on screen (filters can hide a whole page).
    const rect = sentinel.getBoundingClientRect();
    if (!done && rect.top < window.innerHeight + 200 && autoLoads < 5) { autoLoads += 1; loadMore(); } else autoLoads = 0;
  }

  /** After a gap in the stream, picks up what arrived meanwhile. */
  async function catchUp() {
    try {
      const res = await api(`/api/feed${query({ limit: PAGE })}`, { signal: abort.signal });
      const missing = ((res && res.data) || []).filter((r) => r && r.id && !ids.has(r.id));
      for (let i = missing.length - 1; i >= 0; i -= 1) receive(missing[i]);
    } catch { /* the next event will do */ }
  }

  function reload() {
    abort.abort();
    abort = new AbortController();
    ids.clear();
    list.replaceChildren();
    buffer = [];
    queued = [];
    done = false;
    replace(notice);
    loadMore();
  }

  pauseBtn.addEventListener('click', () => {
    paused = !paused;
    pauseBtn.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      buffer.push(...queued);
      queued = [];
      if (!frame) frame = requestAnimationFrame(flush);
    }
    pauseBtn.textContent = paused ? 'Resume' : 'Pause';
  });
  moreBtn.addEventListener('click', () => { autoLoads = 0; loadMore(); });
  list.addEventListener('click', (e) => {
    const el = e.target.closest('.card');
    if (!el) return;
    const link = e.target.closest('a');
    if (link && !plainClick(e)) return;
    if (!link && window.getSelection && String(window.getSelection()).length) return; // selecting text
    e.preventDefault();
    el.classList.remove('card-new');
    openDetail(el.dataset.recordId);
  });

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((x) => x.isIntersecting)) { autoLoads = 0; loadMore(); }
  }, { rootMargin: '300px' });

  const unsubs = [
    live.on('action', receive),
    live.on('lagged', (d) => {
      replace(notice, h('div', { class: 'callout tone-warn', role: 'status' },
        `The live stream fell behind and skipped ${d && d.missed ? d.missed : 'some'} records. `,
        h('button', { type: 'button', class: 'btn btn-small', onClick: reload, 'data-test': 'feed-reload' }, 'Reload feed')));
    }),
    live.onState((st) => {
      if (st === 'connected' && lastState === 'reconnecting' && list.children.length) catchUp();
      lastState = st;
    }),
  ];

  root.appendChild(h('div', { class: 'page' },
    h('div', { class: 'page-head' },
      h('h1', null, 'Activity'),
      h('p', { class: 'muted' }, 'Every governed call as Helio records it, newest first.')),
    h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Filter by outcome' }, h('span', { class: 'toolbar-label' }, 'Outcome'), pills, clearBtn),
    h('div', { class: 'toolbar' }, pauseBtn, counter),
    notice,
    list,
    sentinel,
    h('div', { class: 'feed-foot' }, status, moreBtn)));
  observer.observe(sentinel);
  applyFilter();
  loadMore();

  return {
    unmount() {
      abort.abort();
      observer.disconnect();
      if (frame) cancelAnimationFrame(frame);
      for (const u of unsubs) u();
    },
    update() {
      // The nav link back to the feed (no query) clears the filter.
      selected.clear();
      for (const o of (new URLSearchParams(location.search).get('outcome') || '').split(',')) if (o) selected.add(o);
      for (const p of pills) p.setAttribute('aria-pressed', String(selected.has(p.dataset.outcome)));
      applyFilter();
    },
  };
}
