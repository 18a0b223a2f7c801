// views/overview.js: the system at a glance, from the `sample` events:
// readiness, routes version, and small charts of the last 5 minutes.
import { h, chart, bytes, duration, num } from '../dom.js';

const WINDOW_MS = 5 * 60 * 1000;
const MIN_WINDOW_MS = 60 * 1000;
let app = null;
let root = null;

function card(id, title, value, sub) {
  return h('div.card', {}, h('h3', {}, title), h(`div#${id}.value`, {}, value), sub ? h('div.sub', {}, sub) : null);
}

// A chart with its title, the range it is drawn over, and a legend.
function panel(title, svg, legend, fmt = (v) => num(Math.round(v))) {
  const peak = Number(svg.dataset.max);
  return h('div.panel', {}, h('h3', {}, title, h('span.peak', {}, ` 0–${fmt(peak)}`)), svg, legend ? h('div.legend', {}, legend) : null);
}

function render() {
  const s = app.last;
  if (!s) {
    root.replaceChildren(h('h2', {}, 'Overview'), h('p.muted', {}, 'Waiting for the first sample…'));
    return;
  }
  const samples = app.samples;
  // The last 5 minutes, or since the first sample (at least a minute, so
  // that a fresh page does not draw its few points across the whole width).
  const to = s.t_ms;
  const from = Math.min(to - MIN_WINDOW_MS, Math.max(to - WINDOW_MS, samples[0].t_ms));
  const series = (f) => samples.map((x) => [x.t_ms, f(x) || 0]);
  const scheds = s.schedulers.map((sc, i) => ({
    values: samples.map((x) => [x.t_ms, (x.schedulers[i] || {}).utilisation * 100 || 0]),
    cls: `s${i % 8}`,
  }));
  const queues = s.schedulers.map((sc, i) => ({
    values: samples.map((x) => [x.t_ms, (x.schedulers[i] || {}).run_queue || 0]),
    cls: `s${i % 8}`,
  }));
  const errorRate = s.requests_per_s ? (100 * (s.errors_per_s || 0)) / s.requests_per_s : 0;
  root.replaceChildren(
    h('h2', {}, 'Overview'),
    h(
      'div.cards',
      {},
      card('ov-ready', 'Ready', s.ready ? 'yes' : 'no', `up ${duration(s.uptime_ms)}`),
      card('ov-routes-version', 'Routes version', String(s.routes_version)),
      card('ov-processes', 'Processes', String(s.processes), `limit ${num(s.process_limit)}`),
      card('ov-memory', 'Memory (RSS)', bytes(s.memory.rss_bytes), `processes ${bytes(s.memory.processes_bytes)}`),
      card('ov-rps', 'Requests/s', (s.requests_per_s || 0).toFixed(1), `${num(s.in_flight)} in flight, ${num(s.requests_total)} total`),
      card('ov-errors', '5xx/s', s.errors_per_s === null ? '–' : s.errors_per_s.toFixed(1), `${errorRate.toFixed(1)}% of requests`),
    ),
    h(
      'div.panels',
      {},
      panel(
        'Scheduler utilisation (%)',
        chart(scheds, { from, to, minMax: 100, label: 'scheduler utilisation' }),
        s.schedulers.map((sc, i) => h(`span.key.s${i % 8}`, {}, `#${sc.id} ${(sc.utilisation * 100).toFixed(0)}%`)),
      ),
      panel(
        'Run queues',
        chart(queues, { from, to, minMax: 4, label: 'run queues' }),
        s.schedulers.map((sc, i) => h(`span.key.s${i % 8}`, {}, `#${sc.id} ${sc.run_queue}`)),
      ),
      panel('Processes', chart([{ values: series((x) => x.processes) }], { from, to, minMax: 10, label: 'processes' })),
      panel('Memory (RSS)', chart([{ values: series((x) => x.memory.rss_bytes) }], { from, to, minMax: 1 << 20, label: 'memory' }), null, bytes),
      panel('Requests/s', chart([{ values: series((x) => x.requests_per_s) }], { from, to, minMax: 1, label: 'requests per second' }), null, (v) => v.toFixed(1)),
      panel('5xx/s', chart([{ values: series((x) => x.errors_per_s), cls: 'bad' }], { from, to, minMax: 1, label: 'errors per second' }), null, (v) => v.toFixed(1)),
    ),
  );
}

export default {
  name: 'overview',
  title: 'Overview',
  mount(el, a) {
    root = el;
    app = a;
    render();
  },
  refresh() {
    render();
  },
  event(type) {
    if (type === 'sample') render();
  },
  unmount() {
    root = null;
  },
};
