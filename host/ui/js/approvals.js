// Approvals: the pending queue with Approve / Deny / Break-glass, and the
// resolved history.

import { api, post } from './api.js';
import { h, replace, query, modal, announce } from './dom.js';
import * as live from './live.js';
import { humanize, fmtDateTime, fmtTime, fmtSpan, fmtMoney, toMs, num, shortId } from './format.js';
import { badge, chip, jsonBlock } from './detail.js';
import { meter, setMeter } from './charts.js';

const APPROVER_KEY = 'helio.approver';
const HISTORY_PAGE = 25;
const RESOLVED = ['approved', 'denied', 'timeout', 'break_glass', 'client_disconnected', 'shutdown_cancelled'];
const STATUS_TONE = { pending: 'info', approved: 'ok', denied: 'bad', timeout: 'warn', break_glass: 'bad', client_disconnected: 'muted', shutdown_cancelled: 'muted', cancelled: 'muted' };

function approver() {
  try { return (localStorage.getItem(APPROVER_KEY) || '').trim() || 'dashboard'; } catch { return 'dashboard'; }
}

function statusBadge(status) {
  return badge(humanize(status), STATUS_TONE[status] || 'muted', 'ticket-status');
}

/** A form in a modal; `fields` nodes, `valid()` gates the confirm button. */
function confirmModal({ title, intro, fields, confirmLabel, tone, valid = () => true, submit }) {
  const error = h('p', { class: 'form-error', role: 'alert', 'data-test': 'modal-error', hidden: true });
  const confirm = h('button', { type: 'submit', class: `btn btn-${tone}`, 'data-test': 'modal-confirm' }, confirmLabel);
  const cancel = h('button', { type: 'button', class: 'btn', 'data-test': 'modal-cancel' }, 'Cancel');
  const form = h('form', { class: 'modal-form', novalidate: true }, intro, fields, error, h('div', { class: 'modal-actions' }, cancel, confirm));
  const sync = () => { confirm.disabled = !valid(); };
  form.addEventListener('input', sync);
  form.addEventListener('change', sync);
  sync();
  const dlg = modal({ title, content: form, test: 'action-modal' });
  cancel.addEventListener('click', dlg.close);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!valid()) return;
    confirm.disabled = true;
    error.hidden = true;
    try {
      await submit();
      dlg.close();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      sync();
    }
  });
  return dlg;
}

export function mountApprovals(root, ctx) {
  let abort = new AbortController();
  const elements = new Map(); // ticket id -> {el, countdown, bar, ticket}
  const stale = new Set(); // ids whose action failed: kept on screen with their error
  let historyOffset = 0;
  let historyStatus = '';
  let refreshTimer = 0;

  const nameInput = h('input', { type: 'text', id: 'approver', value: approver(), autocomplete: 'name', 'data-test': 'approver-name', maxlength: 200 });
  nameInput.addEventListener('change', () => {
    try { localStorage.setItem(APPROVER_KEY, nameInput.value.trim()); } catch { /* private mode */ }
    if (!nameInput.value.trim()) nameInput.value = 'dashboard';
  });

  const pendingList = h('div', { class: 'tickets', 'data-test': 'approvals-list', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const pendingStatus = h('p', { class: 'muted', 'data-test': 'approvals-status' }, 'Loading…');
  const pendingCount = h('span', { class: 'count', 'data-test': 'approvals-count' });
  const historyBody = h('tbody');
  const historyStatusText = h('p', { class: 'muted', 'data-test': 'history-status-text' });
  const prev = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'history-prev' }, '← Newer');
  const next = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'history-next' }, 'Older →');
  const pageInfo = h('span', { class: 'muted' });
  const statusSelect = h('select', { id: 'history-filter', 'data-test': 'history-status' },
    h('option', { value: '' }, 'All resolved'),
    RESOLVED.map((s) => h('option', { value: s }, humanize(s))));

  function ticketError(id, err) {
    const entry = elements.get(id);
    if (!entry) { announce(err.message, 'error'); return; }
    const box = entry.el.querySelector('.ticket-error');
    box.textContent = err.message;
    box.hidden = false;
    if (err.status === 409 || err.status === 404) {
      stale.add(id);
      entry.el.classList.add('is-stale');
      for (const b of entry.el.querySelectorAll('.ticket-actions button')) b.disabled = true;
      const dismiss = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'ticket-dismiss' }, 'Dismiss');
      dismiss.addEventListener('click', () => { stale.delete(id); entry.el.remove(); elements.delete(id); refresh(); });
      entry.el.querySelector('.ticket-actions').appendChild(dismiss);
      dismiss.focus();
    }
  }

  async function act(ticket, action, body) {
    await post(`/api/approvals/${encodeURIComponent(ticket.id)}/${action}`, body);
    const verb = { approve: 'Approved', deny: 'Denied', 'break-glass': 'Break-glass approved' }[action];
    announce(`${verb}: ${ticket.tool_name}`, 'ok');
    const entry = elements.get(ticket.id);
    if (entry) { entry.el.remove(); elements.delete(ticket.id); }
    scheduleRefresh();
  }

  function approve(ticket, button) {
    button.disabled = true;
    act(ticket, 'approve', { approved_by: approver() })
      .catch((err) => ticketError(ticket.id, err))
      .finally(() => { if (button.isConnected && !stale.has(ticket.id)) button.disabled = false; });
  }

  function deny(ticket) {
    const reason = h('input', { type: 'text', id: 'deny-reason', 'data-test': 'modal-reason', maxlength: 2000, autocomplete: 'off' });
    confirmModal({
      title: `Deny ${ticket.tool_name}`,
      intro: h('p', null, 'The agent receives an approval_denied error. A reason is optional and is returned to the agent.'),
      fields: h('div', { class: 'field' }, h('label', { for: 'deny-reason' }, 'Reason (optional)'), reason),
      confirmLabel: 'Deny call',
      tone: 'danger',
      submit: () => {
        const body = { denied_by: approver() };
        if (reason.value.trim()) body.reason = reason.value.trim();
        return act(ticket, 'deny', body).catch((err) => { if (err.status === 409 || err.status === 404) ticketError(ticket.id, err); throw err; });
      },
    });
  }

  function breakGlass(ticket) {
    const reason = h('input', { type: 'text', id: 'bg-reason', required: true, 'data-test': 'modal-reason', maxlength: 2000, autocomplete: 'off' });
    const check = h('input', { type: 'checkbox', id: 'bg-confirm', 'data-test': 'break-glass-confirm' });
    confirmModal({
      title: `Break-glass: ${ticket.tool_name}`,
      intro: h('div', { class: 'callout tone-bad' },
        h('p', null, h('strong', null, 'Break-glass force-approves this held call'), ', overriding the control that held it',
          ticket.breached_budgets && ticket.breached_budgets.length ? ' (the breached budgets are charged as an approved overage)' : '',
          '.'),
        h('p', null, 'It is recorded in the audit trail with your name and the reason below.')),
      fields: [
        h('div', { class: 'field' }, h('label', { for: 'bg-reason' }, 'Reason (required)'), reason),
        h('div', { class: 'field check' }, check, h('label', { for: 'bg-confirm' }, 'I understand this overrides the policy for this call.')),
      ],
      confirmLabel: 'Break glass',
      tone: 'danger',
      valid: () => reason.value.trim() !== '' && check.checked,
      submit: () => act(ticket, 'break-glass', { approved_by: approver(), reason: reason.value.trim() })
        .catch((err) => { if (err.status === 409 || err.status === 404) ticketError(ticket.id, err); throw err; }),
    });
  }

  function breached(list) {
    return h('table', { class: 'table compact', 'data-test': 'breached-budgets' },
      h('thead', null, h('tr', null, ['Budget', 'Spent', 'Limit', 'This call', 'Would be', 'Window'].map((t) => h('th', null, t)))),
      h('tbody', null, list.map((b) => {
        const after = num(b.spent) + num(b.attempted_amount);
        return h('tr', null,
          h('td', null, String(b.name ?? '')),
          h('td', null, fmtMoney(b.spent, b.currency)),
          h('td', null, fmtMoney(b.limit, b.currency)),
          h('td', null, fmtMoney(b.attempted_amount, b.currency)),
          h('td', { class: 'tone-text-bad' }, Number.isFinite(after) ? fmtMoney(after, b.currency) : '—'),
          h('td', null, String(b.window ?? '—')));
      })));
  }

  function ticketEl(t) {
    const countdown = h('span', { class: 'countdown', 'data-test': 'ticket-countdown' });
    const bar = meter(1, 1, { label: 'time left before timeout', test: 'ticket-timer' });
    bar.classList.add('meter-thin', 'meter-time');
    const approveBtn = h('button', { type: 'button', class: 'btn btn-ok', 'data-test': 'approve' }, 'Approve');
    const denyBtn = h('button', { type: 'button', class: 'btn btn-danger', 'data-test': 'deny' }, 'Deny…');
    const bgBtn = h('button', { type: 'button', class: 'btn btn-ghost-danger', 'data-test': 'break-glass' }, 'Break-glass…');
    approveBtn.addEventListener('click', () => approve(t, approveBtn));
    denyBtn.addEventListener('click', () => deny(t));
    bgBtn.addEventListener('click', () => breakGlass(t));
    const budgets = Array.isArray(t.breached_budgets) && t.breached_budgets.length ? t.breached_budgets : null;
    const why = budgets
      ? h('p', { class: 'why' }, badge('Budget breach', 'warn'), ` This call would exceed ${budgets.length === 1 ? 'a budget' : `${budgets.length} budgets`}.`)
      : h('p', { class: 'why' }, badge('Rule', 'info'), ' Held by ', h('strong', null, t.matched_rule ? String(t.matched_rule) : 'destructive-tool flag (no rule)'),
        t.rule_index !== null && t.rule_index !== undefined ? ` (#${t.rule_index})` : '', '.');
    const failures = Array.isArray(t.notification_failures) && t.notification_failures.length ? t.notification_failures : null;
    const el = h('article', { class: 'ticket', 'data-test': 'ticket', 'data-ticket-id': t.id },
      h('header', { class: 'ticket-head' },
        h('h3', { class: 'ticket-tool', 'data-test': 'ticket-tool' }, String(t.tool_name ?? '')),
        chip(`channel: ${t.channel_name ?? 'dashboard'}`, 'muted', 'ticket-channel'),
        t.origin && t.origin !== 'mcp' ? chip(`adapter: ${t.origin}`, 'info', 'ticket-origin') : null,
        h('span', { class: 'spacer' }),
        h('span', { class: 'muted' }, 'times out '), countdown),
      bar,
      why,
      budgets ? breached(budgets) : null,
      t.routing_error ? h('p', { class: 'callout tone-warn' }, `Routing: ${t.routing_error}`) : null,
      h('dl', { class: 'kv ticket-facts' },
        h('dt', null, 'Session'), h('dd', { 'data-test': 'ticket-session' }, t.session_id ? h('code', null, String(t.session_id)) : '—'),
        h('dt', null, 'Agent'), h('dd', null, t.agent_id ? String(t.agent_id) : '—'),
        h('dt', null, 'Requested'), h('dd', { 'data-test': 'ticket-requested' }, fmtDateTime(t.requested_at)),
        h('dt', null, 'Times out'), h('dd', { 'data-test': 'ticket-timeout' }, `${fmtDateTime(t.timeout_at)} (after ${fmtSpan(num(t.timeout_ms))})`),
        t.escalated_at ? [h('dt', null, 'Escalated'), h('dd', null, `${fmtDateTime(t.escalated_at)} to ${(t.escalated_to || []).join(', ') || '—'}`)] : null,
        h('dt', null, 'Ticket'), h('dd', null, h('code', { title: String(t.id) }, shortId(t.id, 13)))),
      h('div', { class: 'ticket-args' }, h('h4', null, 'Arguments'), jsonBlock(t.tool_input, { test: 'ticket-arguments' })),
      failures ? h('div', { class: 'callout tone-warn' }, h('strong', null, 'Notification failures'),
        h('ul', null, failures.map((f) => h('li', null, `${f.channel ?? '?'} (${f.phase ?? '?'}): ${f.error ?? ''}`)))) : null,
      h('p', { class: 'form-error ticket-error', role: 'alert', 'data-test': 'ticket-error', hidden: true }),
      h('div', { class: 'ticket-actions' }, approveBtn, denyBtn, bgBtn));
    return { el, countdown, bar, ticket: t };
  }

  function tick() {
    const now = Date.now();
    for (const [id, { countdown, bar, ticket }] of elements) {
      if (stale.has(id)) { countdown.textContent = 'resolved'; continue; }
      const end = toMs(ticket.timeout_at);
      const start = toMs(ticket.requested_at);
      const left = end - now;
      countdown.textContent = left > 0 ? fmtSpan(left) : 'now';
      countdown.classList.toggle('is-urgent', left < 30000);
      const totalMs = end - start;
      setMeter(bar, Math.max(0, left), totalMs > 0 ? totalMs : 1);
    }
  }

  async function refresh() {
    try {
      const res = await api(`/api/approvals${query({ status: 'pending', limit: 200 })}`, { signal: abort.signal });
      const tickets = (res && res.data) || [];
      ctx.setPending(res.total ?? tickets.length);
      const keep = new Set(tickets.map((t) => t.id));
      for (const [id, entry] of elements) {
        if (!keep.has(id) && !stale.has(id)) { entry.el.remove(); elements.delete(id); }
      }
      let anchor = null;
      for (const t of tickets) {
        let entry = elements.get(t.id);
        if (!entry) { entry = ticketEl(t); elements.set(t.id, entry); }
        const before = anchor ? anchor.nextSibling : pendingList.firstChild;
        if (entry.el !== before) pendingList.insertBefore(entry.el, before);
        anchor = entry.el;
      }
      pendingCount.textContent = String(tickets.length);
      pendingStatus.textContent = tickets.length ? '' : 'Nothing is waiting for a decision.';
      if (res.total > tickets.length) pendingStatus.textContent = `Showing the ${tickets.length} newest of ${res.total} pending tickets.`;
      tick();
    } catch (err) {
      if (err.name !== 'AbortError') pendingStatus.textContent = `Could not load pending approvals: ${err.message}`;
    }
  }

  async function loadHistory() {
    try {
      const res = await api(`/api/approvals${query({ status: historyStatus, limit: HISTORY_PAGE, offset: historyOffset })}`, { signal: abort.signal });
      const rows = ((res && res.data) || []).filter((t) => t.status !== 'pending');
      replace(historyBody, rows.map((t) => {
        const waited = toMs(t.resolved_at) - toMs(t.requested_at);
        return h('tr', { 'data-test': 'history-row', 'data-ticket-id': t.id },
          h('td', { title: fmtDateTime(t.resolved_at) }, fmtTime(t.resolved_at)),
          h('td', null, String(t.tool_name ?? '')),
          h('td', null, statusBadge(t.status)),
          h('td', null, t.resolved_by ? String(t.resolved_by) : '—', t.resolved_via ? h('span', { class: 'muted' }, ` via ${t.resolved_via}`) : null),
          h('td', { class: 'wrap' }, String(t.break_glass_reason || t.denial_reason || '')),
          h('td', null, t.matched_rule ? String(t.matched_rule) : (t.breached_budgets ? 'budget' : '—')),
          h('td', null, Number.isFinite(waited) ? fmtSpan(waited) : '—'),
          h('td', null, t.call_id ? h('a', { href: `/audit${query({ record: t.call_id })}` }, 'record') : ''));
      }));
      const total = Number(res.total) || 0;
      const shownTotal = historyStatus ? total : Math.max(0, total - elements.size);
      historyStatusText.textContent = rows.length ? '' : 'No resolved tickets (resolved tickets are kept in memory for an hour).';
      pageInfo.textContent = rows.length ? `${historyOffset + 1}–${historyOffset + rows.length} of ${shownTotal}` : '';
      prev.disabled = historyOffset === 0;
      next.disabled = historyOffset + HISTORY_PAGE >= total;
    } catch (err) {
      if (err.name !== 'AbortError') historyStatusText.textContent = `Could not load the history: ${err.message}`;
    }
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => { refresh(); loadHistory(); }, 150);
  }

  statusSelect.addEventListener('change', () => { historyStatus = statusSelect.value; historyOffset = 0; loadHistory(); });
  prev.addEventListener('click', () => { historyOffset = Math.max(0, historyOffset - HISTORY_PAGE); loadHistory(); });
  next.addEventListener('click', () => { historyOffset += HISTORY_PAGE; loadHistory(); });

  root.appendChild(h('div', { class: 'page' },
    h('div', { class: 'page-head row' },
      h('div', null, h('h1', null, 'Approvals'), h('p', { class: 'muted' }, 'Calls held for a human decision. The agent waits until you decide or the ticket times out.')),
      h('span', { class: 'spacer' }),
      h('div', { class: 'field inline' }, h('label', { for: 'approver' }, 'Deciding as'), nameInput)),
    h('section', { class: 'section' },
      h('h2', null, 'Pending ', pendingCount),
      pendingStatus,
      pendingList),
    h('section', { class: 'section' },
      h('div', { class: 'row' }, h('h2', null, 'Resolved'), h('span', { class: 'spacer' }),
        h('label', { for: 'history-filter', class: 'muted' }, 'Status '), statusSelect),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'data-test': 'history-table' },
        h('thead', null, h('tr', null, ['Resolved', 'Tool', 'Status', 'By', 'Reason', 'Rule', 'Waited', ''].map((c) => h('th', { scope: 'col' }, c)))),
        historyBody)),
      historyStatusText,
      h('div', { class: 'pager' }, prev, pageInfo, next))));

  const unsubs = [
    live.on('approval_requested', scheduleRefresh),
    live.on('approval_resolved', scheduleRefresh),
    live.on('approval_notification_failed', scheduleRefresh),
  ];
  const timers = [setInterval(tick, 1000), setInterval(scheduleRefresh, 15000)];
  refresh();
  loadHistory();

  return {
    unmount() {
      abort.abort();
      clearTimeout(refreshTimer);
      for (const t of timers) clearInterval(t);
      for (const u of unsubs) u();
    },
  };
}
