// views/tree.js: the supervision tree, collapsible, with each supervisor's
// strategy and restart counts and each child's status. A `supervisor` or
// `process_crashed` event refetches it; a child whose restart count grew
// since the last fetch is marked `restarted` for a few seconds. Siblings a
// rest_for_one or one_for_all supervisor stopped and started with it (new
// pid, same count) are marked `replaced` instead: the supervisor restarted
// one child, and the mark says which.
import { h, errorText } from '../dom.js';

const MARK_MS = 8000;

let app = null;
let root = null;
let body = null;
let seen = new Map(); // node key -> {pid, restarts} at the last fetch
const marked = new Map(); // node key -> time the mark ends
const closed = new Set(); // keys of supervisors the operator folded
let seq = 0;
let pending = null;

const replaced = new Map(); // node key -> time the mark ends

// The marks of node `key` now showing `pid` with `restarts`.
function mark(key, pid, restarts) {
  const before = seen.get(key);
  const now = Date.now();
  if (before && restarts > before.restarts) marked.set(key, now + MARK_MS);
  else if (before && before.pid !== pid) replaced.set(key, now + MARK_MS);
  seen.set(key, { pid, restarts });
  return { restarted: (marked.get(key) || 0) > now, replaced: (replaced.get(key) || 0) > now };
}

function supLine(s) {
  if (!s) return null;
  if (s.error) return h('span.error', {}, ` (${s.error})`);
  return h(
    'span.meta',
    {},
    ` ${s.strategy}, ${s.restarts_in_period}/${s.intensity} restarts in ${s.period_s}s (${s.restarts} in all), ${s.children_total} children${s.children_truncated ? ', list cut' : ''}`,
  );
}

// A node: the root supervisor ({pid, name, supervisor, children}) or a
// child ({id, pid, name, type, restart, status, restarts, ...}).
function node(n, key) {
  const isSup = Array.isArray(n.children);
  const id = n.id || n.name || n.pid || '?';
  const m = mark(key, n.pid, n.restarts);
  const label = h(
    'span.label',
    {},
    h('b', {}, id),
    ' ',
    h('span.mono', {}, n.pid || 'not running'),
    n.name && n.name !== id ? ` ${n.name}` : '',
    n.status ? h(`span.status.${n.status}`, {}, ` ${n.status}`) : null,
    n.restart ? h('span.meta', {}, ` ${n.type || ''} ${n.restart}, shutdown ${n.shutdown}, restarted ${n.restarts}×`) : null,
    supLine(n.supervisor),
  );
  const li = h('li.tree-node', { dataset: { id, pid: n.pid || '' } });
  if (m.restarted) li.classList.add('restarted');
  else if (m.replaced) li.classList.add('replaced');
  if (!isSup) {
    li.append(label);
    return li;
  }
  const toggle = h('button.toggle', { type: 'button', 'aria-expanded': String(!closed.has(key)) }, closed.has(key) ? '▸' : '▾');
  const kids = h('ul', { hidden: closed.has(key) }, n.children.map((c) => node(c, `${key}/${c.id || c.pid}`)));
  toggle.addEventListener('click', () => {
    const fold = !kids.hidden;
    kids.hidden = fold;
    toggle.textContent = fold ? '▸' : '▾';
    toggle.setAttribute('aria-expanded', String(!fold));
    if (fold) closed.add(key);
    else closed.delete(key);
  });
  li.append(toggle, label, kids);
  return li;
}

async function load() {
  const mine = ++seq;
  try {
    const r = await app.api('/admin/supervisors');
    if (mine !== seq || !root) return;
    body.replaceChildren(r.tree ? h('ul.tree', {}, node(r.tree, r.tree.name || 'root')) : h('p.muted', {}, 'No supervision tree.'));
  } catch (e) {
    if (mine === seq && root) body.replaceChildren(h('p.error', {}, errorText(e)));
  }
}

// Events come in bursts (a crash, then its supervisor's restart): one
// fetch for the burst, and another when the marks run out.
function soon(ms = 150) {
  clearTimeout(pending);
  pending = setTimeout(load, ms);
}

export default {
  name: 'tree',
  title: 'Supervision tree',
  mount(el, a) {
    root = el;
    app = a;
    body = h('div');
    root.replaceChildren(h('h2', {}, 'Supervision tree'), body);
    load();
  },
  refresh() {
    load();
  },
  event(type) {
    if (type === 'supervisor' || type === 'process_crashed') {
      soon();
      setTimeout(() => root && load(), MARK_MS + 100);
    }
  },
  tick() {
    // With the stream up, events say when the tree changes.
    if (!app.live) load();
  },
  unmount() {
    clearTimeout(pending);
    root = null;
  },
};
