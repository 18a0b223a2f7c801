// views/upstreams.js: each upstream's targets with their health,
// ejections, pooled connections (active and idle) and error counts.
// Ejections and readmissions refetch at once; pool counts every tick.
import { h, num, errorText } from '../dom.js';

let app = null;
let root = null;
let table = null;
let note = null;
let seq = 0;

function health(t) {
  if (t.healthy) return h('span.status.running', {}, 'healthy');
  return h('span.status.bad', {}, t.ejected_until_ms ? 'ejected' : 'down');
}

async function load() {
  const mine = ++seq;
  try {
    const r = await app.api('/admin/upstreams');
    if (mine !== seq || !root) return;
    const rows = [];
    for (const u of r.upstreams) {
      u.targets.forEach((t, i) =>
        rows.push(
          h(
            'tr.target',
            { dataset: { upstream: u.name, target: t.address } },
            h('td', {}, i === 0 ? u.name : ''),
            h('td', {}, i === 0 ? `${u.balance}${u.active_health ? ', checked' : ''}` : ''),
            h('td.mono', {}, t.address),
            h('td.num', {}, num(t.weight)),
            h('td', {}, health(t)),
            h('td.num', {}, num(t.consecutive_failures)),
            h('td.num', {}, num(t.ejections)),
            h('td.num', {}, num(t.active)),
            h('td.num', {}, num(t.idle)),
            h('td.num', {}, num(t.requests)),
            h('td.num', {}, num(t.failures)),
            h('td.detail', {}, t.last_error || ''),
          ),
        ),
      );
    }
    const th = (t, cls) => h(`th${cls ? `.${cls}` : ''}`, {}, t);
    table.replaceChildren(
      h('thead', {}, h('tr', {}, th('upstream'), th('balance'), th('target'), th('weight', 'num'), th('health'), th('failures in a row', 'num'), th('ejections', 'num'), th('active', 'num'), th('idle', 'num'), th('requests', 'num'), th('errors', 'num'), th('last error'))),
      h('tbody', {}, rows),
    );
    note.textContent = r.upstreams.length ? '' : 'No upstreams are configured.';
  } catch (e) {
    if (mine === seq && root) note.textContent = errorText(e);
  }
}

export default {
  name: 'upstreams',
  title: 'Upstreams',
  mount(el, a) {
    root = el;
    app = a;
    table = h('table#upstreams-table.grid');
    note = h('p.muted');
    root.replaceChildren(h('h2', {}, 'Upstreams'), note, table);
    load();
  },
  refresh() {
    load();
  },
  event(type) {
    if (type === 'target_ejected' || type === 'target_readmitted') load();
  },
  tick() {
    load();
  },
  unmount() {
    root = null;
  },
};
