// DOM helpers. Every piece of text goes in through textContent or a text
// node; nothing here ever parses a string as HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs) {
  if (!attrs) return;
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'style') throw new Error('inline style attributes are not allowed (CSP); use classes or el.style');
    if (name.startsWith('on')) {
      if (typeof value !== 'function') throw new Error('event handlers must be functions (CSP)');
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if ((name === 'href' || name === 'src') && !/^\/(?![/\\])/.test(String(value))) {
      // Only same-origin paths the UI builds itself (never an API value as a URL).
      throw new Error(`${name} must be a same-origin path`);
    } else if (name === 'text') {
      el.textContent = String(value);
    } else if (name === 'value' || name === 'checked' || name === 'selected' || name === 'indeterminate') {
      el[name] = value;
    } else if (name === 'dataset') {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[k] = String(v);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false || child === true) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** h('a', {href: '/x', class: 'y', onClick: fn, 'data-test': 'z'}, 'text', childNode, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

const openModals = new Set();

/** Closes every open modal (on navigation). */
export function closeAllModals() {
  for (const close of [...openModals]) close();
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A modal <dialog>: the rest of the page is inert while it is open, Tab
 * cycles within it, Escape closes it, and focus returns to where it was.
 * `content` is a node; returns {dialog, close}.
 */
export function modal({ title, content, className = '', test = 'modal', onClose, initialFocus }) {
  const opener = document.activeElement;
  const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
  const closeBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', 'data-test': 'modal-close' }, '×');
  const dialog = h('dialog', { class: `modal ${className}`, 'aria-labelledby': titleId, 'data-test': test },
    h('header', { class: 'modal-head' }, h('h2', { id: titleId }, title), closeBtn),
    h('div', { class: 'modal-body' }, content));
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    openModals.delete(close);
    if (dialog.open) dialog.close();
    dialog.remove();
    if (onClose) onClose();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
  };
  closeBtn.addEventListener('click', close);
  dialog.addEventListener('cancel', (e) => { e.preventDefault(); close(); });
  dialog.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); close(); return; }
    if (e.key !== 'Tab') return;
    const items = [...dialog.querySelectorAll(FOCUSABLE)].filter((n) => n.offsetParent !== null || n === document.activeElement);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
  });
  // A click on the backdrop (outside the dialog box) closes it.
  dialog.addEventListener('mousedown', (e) => { if (e.target === dialog) close(); });
  openModals.add(close);
  document.body.appendChild(dialog);
  dialog.showModal();
  const target = initialFocus || dialog.querySelector('.modal-body').querySelector(FOCUSABLE) || closeBtn;
  target.focus();
  return { dialog, close };
}

/** A transient message in the page's live region. */
export function announce(message, tone = 'info') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const toast = h('div', { class: `toast toast-${tone}`, role: tone === 'error' ? 'alert' : 'status', 'data-test': 'toast' }, message);
  region.appendChild(toast);
  setTimeout(() => toast.remove(), tone === 'error' ? 8000 : 4000);
}

/** True for a plain left click that the app may handle itself. */
export function plainClick(e) {
  return e.button === 0 && !e.metaKey && !e.ctrlKey && !e.shiftKey && !e.altKey && !e.defaultPrevented;
}
