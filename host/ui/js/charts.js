// Hand-built SVG charts. Labels are text nodes; every chart has a title, an
// aria-label summarising it, and its numbers visible or in <title> tooltips.

import { h, s } from './dom.js';

/** A round upper bound for an axis, and its tick step. */
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 1 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  const stepInt = Math.max(1, step);
  return { top: Math.ceil(max / stepInt) * stepInt, step: stepInt };
}

function truncate(text, max) {
  const t = String(text);
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

function figure(test, title, summary, svg, extra) {
  return h('figure', { class: 'chart', 'data-test': test },
    h('figcaption', { class: 'chart-title' }, title),
    svg, extra || null,
    h('p', { class: 'sr-only' }, summary));
}

/**
 * Vertical bars over time. `points`: [{label, tick, value}] where `tick` is
 * the short axis label and `label` the full one.
 */
export function timeBars(points, { title, test = 'chart-timeseries', unit = 'calls' }) {
  const W = 1200, H = 250, L = 44, R = 10, T = 12, B = 30;
  const max = Math.max(0, ...points.map((p) => p.value));
  const { top, step } = niceScale(max);
  const plotW = W - L - R, plotH = H - T - B;
  const total = points.reduce((a, p) => a + p.value, 0);
  const summary = `${title}: ${total} ${unit} in ${points.length} intervals, at most ${max} in one.`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': summary, preserveAspectRatio: 'xMidYMid meet' },
    s('title', null, summary));
  for (let v = 0; v <= top; v += step) {
    const y = T + plotH - (v / top) * plotH;
    svg.appendChild(s('line', { x1: L, x2: W - R, y1: y, y2: y, class: v === 0 ? 'axis' : 'grid' }));
    svg.appendChild(s('text', { x: L - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, String(v)));
  }
  const n = Math.max(points.length, 1);
  const slot = plotW / n;
  const bw = Math.max(1, slot * 0.75);
  const every = Math.max(1, Math.ceil(n / 12));
  points.forEach((p, i) => {
    const x = L + i * slot + (slot - bw) / 2;
    const bh = top ? (p.value / top) * plotH : 0;
    svg.appendChild(s('rect', { x, y: T + plotH - bh, width: bw, height: Math.max(bh, p.value ? 1 : 0), class: 'bar' },
      s('title', null, `${p.label}: ${p.value} ${unit}`)));
    if (i % every === 0) {
      svg.appendChild(s('text', { x: L + i * slot + slot / 2, y: H - B + 16, class: 'tick', 'text-anchor': 'middle' }, p.tick));
    }
  });
  const legend = h('p', { class: 'chart-note' }, `${total.toLocaleString()} ${unit} · peak ${max.toLocaleString()}`);
  return figure(test, title, summary, svg, legend);
}

/** Horizontal bars: [{label, value, tone?}], largest first. */
export function hBars(items, { title, test = 'chart-bars', empty = 'Nothing in this range.' }) {
  if (!items.length) return h('figure', { class: 'chart', 'data-test': test }, h('figcaption', { class: 'chart-title' }, title), h('p', { class: 'empty' }, empty));
  const W = 440, row = 26, L = 150, R = 44;
  const H = items.length * row + 8;
  const max = Math.max(...items.map((i) => i.value), 1);
  const summary = `${title}: ${items.map((i) => `${i.label} ${i.value}`).join(', ')}.`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': summary }, s('title', null, summary));
  items.forEach((item, i) => {
    const y = 4 + i * row;
    const w = ((W - L - R) * item.value) / max;
    svg.appendChild(s('text', { x: L - 8, y: y + row / 2 + 4, class: 'label', 'text-anchor': 'end' },
      truncate(item.label, 20), s('title', null, String(item.label))));
    svg.appendChild(s('rect', { x: L, y: y + 4, width: Math.max(w, 1), height: row - 8, rx: 3, class: `bar ${item.tone ? `tone-${item.tone}` : ''}` },
      s('title', null, `${item.label}: ${item.value}`)));
    svg.appendChild(s('text', { x: L + w + 6, y: y + row / 2 + 4, class: 'value' }, item.value.toLocaleString()));
  });
  return figure(test, title, summary, svg);
}

/** A donut with a legend that carries the numbers: [{label, value}]. */
export function donut(items, { title, test = 'chart-donut', empty = 'Nothing in this range.' }) {
  const total = items.reduce((a, i) => a + i.value, 0);
  if (!total) return h('figure', { class: 'chart', 'data-test': test }, h('figcaption', { class: 'chart-title' }, title), h('p', { class: 'empty' }, empty));
  const summary = `${title}: ${items.map((i) => `${i.label} ${i.value} (${Math.round((i.value / total) * 100)}%)`).join(', ')}.`;
  const R = 80, r = 50, C = 100;
  const svg = s('svg', { viewBox: '0 0 200 200', class: 'chart-svg donut', role: 'img', 'aria-label': summary }, s('title', null, summary));
  let angle = -Math.PI / 2;
  items.forEach((item, i) => {
    const frac = item.value / total;
    const cls = `slice series-${i % 8}`;
    const p = (rad, a) => `${(C + rad * Math.cos(a)).toFixed(2)} ${(C + rad * Math.sin(a)).toFixed(2)}`;
    const arc = (a1, a2) => {
      const large = a2 - a1 > Math.PI ? 1 : 0;
      return `M ${p(R, a1)} A ${R} ${R} 0 ${large} 1 ${p(R, a2)} L ${p(r, a2)} A ${r} ${r} 0 ${large} 0 ${p(r, a1)} Z`;
    };
    if (frac >= 0.9999) {
      // A full ring: two halves (one arc cannot start and end at the same point).
      const title = `${item.label}: ${item.value}`;
      svg.appendChild(s('path', { d: `${arc(angle, angle + Math.PI)} ${arc(angle + Math.PI, angle + 2 * Math.PI)}`, class: cls }, s('title', null, title)));
      return;
    }
    const a2 = angle + frac * 2 * Math.PI;
    svg.appendChild(s('path', { d: arc(angle, a2), class: cls }, s('title', null, `${item.label}: ${item.value}`)));
    angle = a2;
  });
  svg.appendChild(s('text', { x: C, y: C - 2, class: 'donut-total', 'text-anchor': 'middle' }, total.toLocaleString()));
  svg.appendChild(s('text', { x: C, y: C + 16, class: 'tick', 'text-anchor': 'middle' }, 'total'));
  const legend = h('ul', { class: 'legend' }, items.map((item, i) => h('li', null,
    h('span', { class: `swatch series-${i % 8}`, 'aria-hidden': 'true' }),
    h('span', { class: 'legend-label' }, item.label),
    h('span', { class: 'legend-value' }, `${item.value.toLocaleString()} · ${Math.round((item.value / total) * 100)}%`))));
  const wrap = h('div', { class: 'donut-wrap' }, svg, legend);
  return figure(test, title, summary, wrap);
}

/** A utilisation meter (HTML, width set through CSSOM). */
export function meter(value, max, { label, test = 'meter' } = {}) {
  const el = h('div', { class: 'meter', role: 'meter', 'aria-valuemin': 0, 'aria-label': label || 'utilisation', 'data-test': test },
    h('div', { class: 'meter-fill' }));
  setMeter(el, value, max);
  return el;
}

/** Updates a meter made by `meter()`. */
export function setMeter(el, value, max) {
  const ratio = max > 0 ? value / max : 0;
  const tone = ratio >= 1 ? 'bad' : ratio >= 0.8 ? 'warn' : 'ok';
  const fill = el.firstChild;
  fill.className = `meter-fill tone-${tone}`;
  fill.style.width = `${(Math.max(0, Math.min(1, ratio)) * 100).toFixed(1)}%`;
  el.setAttribute('aria-valuemax', String(max > 0 ? max : 1));
  el.setAttribute('aria-valuenow', String(Number.isFinite(value) ? value : 0));
  el.dataset.ratio = Number.isFinite(ratio) ? ratio.toFixed(4) : '';
}
