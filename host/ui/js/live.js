// The live stream (`GET /api/events`) and a small event bus on top of it.
// EventSource reconnects by itself after a dropped stream; when the server
// refuses it outright (readyState CLOSED) we retry with backoff and ask the
// app to re-check the session (a 401 means the sign-in page).

const EVENTS = ['heartbeat', 'action', 'approval_requested', 'approval_resolved',
  'approval_notification_failed', 'limit_warning', 'budget_update', 'budget_breached', 'lagged'];

const listeners = new Map();
const stateListeners = new Set();
let source = null;
let state = 'offline';
let retryTimer = null;
let retryDelay = 1000;
let onClosed = null;

function setState(next) {
  if (state === next) return;
  state = next;
  for (const fn of stateListeners) fn(state);
}

function emit(name, data) {
  for (const fn of listeners.get(name) || []) {
    try { fn(data); } catch (err) { console.error(err); }
  }
}

/** Subscribes to an event name; returns the unsubscribe function. */
export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(fn);
  return () => listeners.get(name).delete(fn);
}

export function onState(fn) {
  stateListeners.add(fn);
  fn(state);
  return () => stateListeners.delete(fn);
}

export function liveState() { return state; }

/** Opens the stream; `closed` is called when the server refuses it. */
export function connect(closed) {
  onClosed = closed;
  disconnect();
  open();
}

function open() {
  clearTimeout(retryTimer);
  setState(state === 'offline' ? 'connecting' : 'reconnecting');
  const es = new EventSource('/api/events', { withCredentials: true });
  source = es;
  es.onopen = () => { retryDelay = 1000; setState('connected'); };
  es.onerror = () => {
    if (source !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      source = null;
      setState('reconnecting');
      if (onClosed) onClosed();
      retryTimer = setTimeout(open, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    } else {
      setState('reconnecting');
    }
  };
  for (const name of EVENTS) {
    es.addEventListener(name, (e) => {
      if (source === es && state !== 'connected') setState('connected');
      let data = null;
      try { data = e.data ? JSON.parse(e.data) : null; } catch { data = null; }
      emit(name, data);
    });
  }
}

// A page left for another keeps nothing open: browsers allow six
// connections to a host, and a page kept in the back/forward cache with its
// stream open would hold one of them until it is evicted.
window.addEventListener('pagehide', () => disconnect());
window.addEventListener('pageshow', (e) => { if (e.persisted && onClosed) connect(onClosed); });

export function disconnect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  setState('offline');
}
