// dom.js: building the page without markup strings. Every text the admin
// API returns goes in through textContent, never as HTML.

// h('tr.proc-row', {dataset: {pid}}, child, 'text', ...)
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const [name, id] = tag.split('#');
  const el = document.createElement(name || 'div');
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// A small line chart of `series` ([{values: [[t_ms, v], ...], cls}]) over
// the window [from, to] (ms), from 0 to max(values, `min_max`).
export function chart(series, { from, to, minMax = 1, label = '' }) {
  const W = 300;
  const H = 60;
  let max = minMax;
  for (const se of series) for (const [, v] of se.values) if (v > max) max = v;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
  svg.dataset.max = max;
  svg.append(s('line', { class: 'axis', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }));
  for (const se of series) {
    const pts = se.values
      .filter(([t]) => t >= from)
      .map(([t, v]) => `${(((t - from) / (to - from)) * W).toFixed(1)},${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`);
    if (pts.length) svg.append(s('polyline', { class: `line ${se.cls || ''}`, points: pts.join(' '), 'vector-effect': 'non-scaling-stroke' }));
  }
  return svg;
}

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

export const num = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en'));

// A message line for a failed call.
export const errorText = (e) => (e && e.message ? e.message : String(e));
