// The shell: auth, header (nav, live state, version, uptime, sign-out),
// client-side routing, and the pending-approvals badge.

import { api, post, authSession, setCsrf, onUnauthorized } from './api.js';
import { h, clear, replace, plainClick, closeAllModals } from './dom.js';
import * as live from './live.js';
import { fmtSpan } from './format.js';
import { signIn } from './signin.js';
import { mountFeed } from './feed.js';
import { mountApprovals } from './approvals.js';
import { mountAudit } from './audit.js';
import { mountLimits, mountBudgets } from './limits.js';
import { mountAnalytics } from './analytics.js';

const ROUTES = {
  '/': { title: 'Activity', nav: 'Feed', mount: mountFeed },
  '/approvals': { title: 'Approvals', nav: 'Approvals', mount: mountApprovals },
  '/audit': { title: 'Audit log', nav: 'Audit', mount: mountAudit },
  '/limits': { title: 'Limits', nav: 'Limits', mount: mountLimits },
  '/budgets': { title: 'Budgets', nav: 'Budgets', mount: mountBudgets },
  '/analytics': { title: 'Analytics', nav: 'Analytics', mount: mountAnalytics },
};

const main = document.getElementById('main');
const header = document.getElementById('topbar');
let current = null;
let running = false;
let authRequired = false;
let timers = [];
let unsubscribers = [];
let health = null;
let pendingTimer = null;

const pendingBadge = h('span', { class: 'nav-badge', 'data-test': 'pending-count', hidden: true, 'aria-label': 'pending approvals' }, '0');
const connDot = h('span', { class: 'conn-dot', 'aria-hidden': 'true' });
const connText = h('span', null, 'Connecting…');
const conn = h('span', { class: 'conn', role: 'status', 'data-test': 'connection-state', 'data-state': 'connecting', title: 'Live event stream' }, connDot, connText);
const healthEl = h('span', { class: 'health', 'data-test': 'health' });
const versionEl = h('span', { 'data-test': 'version' });
const uptimeEl = h('span', { 'data-test': 'uptime' });
healthEl.append(versionEl, ' · up ', uptimeEl);
const signOutBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-test': 'sign-out', hidden: true }, 'Sign out');

function navLink(path, route) {
  const test = `nav-${route.nav.toLowerCase()}`;
  return h('a', { href: path, class: 'nav-link', 'data-test': test, 'data-path': path }, route.nav, path === '/approvals' ? pendingBadge : null);
}

function buildHeader() {
  replace(header,
    h('a', { href: '/', class: 'brand', 'data-test': 'brand' },
      h('img', { src: '/ui/favicon.svg', alt: '', width: 22, height: 22 }), h('span', null, 'Helio')),
    h('nav', { class: 'nav', 'aria-label': 'Main', 'data-test': 'nav' }, Object.entries(ROUTES).map(([p, r]) => navLink(p, r))),
    h('div', { class: 'top-status' }, conn, healthEl, signOutBtn));
}

function currentPath() {
  const p = location.pathname.replace(/\/+$/, '');
  return p === '' ? '/' : p;
}

function render(focus = false) {
  const path = currentPath();
  if (current && current.path === path && current.page.update) {
    current.page.update();
    return;
  }
  if (current && current.page.unmount) current.page.unmount();
  clear(main);
  const route = ROUTES[path];
  for (const a of header.querySelectorAll('.nav-link')) {
    if (a.dataset.path === path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!route) {
    document.title = 'Not found · Helio';
    main.appendChild(h('div', { class: 'page' }, h('h1', null, 'Page not found'), h('p', null, h('a', { href: '/' }, 'Back to the activity feed'))));
    current = { path, page: {} };
    return;
  }
  document.title = `${route.title} · Helio`;
  const page = route.mount(main, { navigate, setPending }) || {};
  current = { path, page };
  if (focus) {
    const heading = main.querySelector('h1');
    if (heading) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: true }); }
    window.scrollTo(0, 0);
  }
}

/** Goes to `url` (a path with optional query) without reloading. */
export function navigate(url, { replace: replaceState = false } = {}) {
  const before = currentPath();
  closeAllModals();
  history[replaceState ? 'replaceState' : 'pushState'](null, '', url);
  render(currentPath() !== before);
}

document.addEventListener('click', (e) => {
  if (!running || !plainClick(e)) return;
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.hasAttribute('download') || (a.target && a.target !== '_self')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (url.hash && url.pathname === location.pathname) return; // in-page anchors (skip link)
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (!ROUTES[path]) return;
  e.preventDefault();
  if (url.pathname + url.search === location.pathname + location.search) return;
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => {
  if (!running) return;
  closeAllModals();
  render(true);
});

function setPending(n) {
  const count = Number(n) || 0;
  pendingBadge.textContent = String(count);
  pendingBadge.hidden = count === 0;
  pendingBadge.setAttribute('aria-label', `${count} pending approval${count === 1 ? '' : 's'}`);
}

function refreshPending() {
  clearTimeout(pendingTimer);
  pendingTimer = setTimeout(() => {
    api('/api/approvals?status=pending&limit=1').then((r) => setPending(r && r.total)).catch(() => {});
  }, 150);
}

async function refreshHealth() {
  try {
    const r = await api('/api/health');
    health = { version: r.version, uptime: Number(r.uptime) || 0, at: Date.now() };
    versionEl.textContent = r.version ? `v${r.version}` : 'Helio';
    healthEl.classList.remove('is-down');
  } catch {
    healthEl.classList.add('is-down');
    versionEl.textContent = 'unreachable';
  }
  tickUptime();
}

function tickUptime() {
  if (!health) { uptimeEl.textContent = '—'; return; }
  uptimeEl.textContent = fmtSpan((health.uptime * 1000) + (Date.now() - health.at));
}

function showConn(state) {
  conn.dataset.state = state;
  connText.textContent = { connected: 'Live', reconnecting: 'Reconnecting…', connecting: 'Connecting…', offline: 'Offline' }[state] || state;
  conn.title = `Live event stream: ${state}`;
}

function startApp(session) {
  running = true;
  authRequired = Boolean(session.auth_required);
  setCsrf(session.csrf_token);
  document.body.classList.remove('signed-out');
  buildHeader();
  signOutBtn.hidden = !authRequired;
  unsubscribers = [
    live.onState(showConn),
    live.on('approval_requested', refreshPending),
    live.on('approval_resolved', refreshPending),
  ];
  live.connect(checkSession);
  refreshHealth();
  refreshPending();
  timers = [setInterval(tickUptime, 1000), setInterval(refreshHealth, 60000), setInterval(refreshPending, 30000)];
  render();
}

function stopApp() {
  running = false;
  if (current && current.page.unmount) current.page.unmount();
  current = null;
  live.disconnect();
  for (const t of timers) clearInterval(t);
  for (const u of unsubscribers) u();
  timers = [];
  unsubscribers = [];
  closeAllModals();
  setCsrf(null);
}

function showSignIn(notice) {
  if (running) stopApp();
  document.body.classList.add('signed-out');
  clear(header);
  header.appendChild(h('span', { class: 'brand' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 22, height: 22 }), h('span', null, 'Helio')));
  document.title = 'Sign in · Helio';
  clear(main);
  signIn(main, { notice, onSuccess: (session) => { clear(main); startApp(session); } });
}

/** After the stream is refused: is the session still good? */
async function checkSession() {
  try {
    const s = await authSession();
    if (s.auth_required && !s.authenticated) showSignIn('Your session has ended. Sign in again.');
  } catch { /* unreachable: the stream keeps retrying */ }
}

signOutBtn.addEventListener('click', async () => {
  signOutBtn.disabled = true;
  try { await post('/api/auth/logout', {}, { quiet401: true }); } catch { /* signed out either way */ }
  signOutBtn.disabled = false;
  showSignIn('Signed out.');
});

onUnauthorized(() => { if (running || !document.body.classList.contains('signed-out')) showSignIn('Your session has ended. Sign in again.'); });

async function boot() {
  try {
    const session = await authSession();
    if (session.auth_required && !session.authenticated) showSignIn();
    else startApp(session);
  } catch (err) {
    replace(main, h('div', { class: 'page' },
      h('h1', null, 'Helio is not reachable'),
      h('p', { class: 'callout tone-bad', role: 'alert', 'data-test': 'boot-error' }, err.message || String(err)),
      h('button', { type: 'button', class: 'btn', onClick: boot }, 'Try again')));
  }
}

boot();
