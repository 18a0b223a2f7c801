// views/tree.js: the supervision tree, collapsible, with each supervisor's
// strategy and restart counts and each child's status.
//
// Restarts are found by comparing each fetch with the one before: a child
// whose restart count grew, or whose pid changed while no sibling's count
// grew (a restart through the admin API), is marked `restarted` for a few
// seconds; siblings that a rest_for_one or one_for_all supervisor stopped
// and started along with a restarted child are marked `replaced`. The tree
// is fetched at login and on every `supervisor` or `process_crashed`
// event, shown or not, so a restart is marked as it happens, and also when
// the view is opened just after.
import { h, errorText } from '../dom.js';

const MARK_MS = 8000;

let app = null;
let root = null; // the view's element while shown
let body = null;
let tree = null; // the last answer's tree
const seen = new Map(); // node key -> {pid, restarts} at the last fetch
const marks = new Map(); // node key -> {cls, until}
const closed = new Set(); // keys of supervisors the operator folded
let seq = 0;
let pending = null;
let expiry = null;

const childKey = (key, c) => `${key}/${c.id || c.pid}`;

function setMark(key, cls, now) {
  marks.set(key, { cls, until: now + MARK_MS });
  // Drawn again when the mark runs out.
  clearTimeout(expiry);
  expiry = setTimeout(() => root && tree && render(), MARK_MS + 50);
}

// Compares supervisor `n` (key `key`) and its subtree with the last fetch.
function note(n, key, now) {
  const kids = n.children || [];
  const diffs = kids.map((c) => {
    const k = childKey(key, c);
    const before = seen.get(k);
    seen.set(k, { pid: c.pid, restarts: c.restarts });
    return {
      k,
      grew: !!before && c.restarts > before.restarts,
      moved: !!before && !!c.pid && before.pid !== c.pid,
    };
  });
  const anyGrew = diffs.some((d) => d.grew);
  for (const d of diffs) {
    if (d.grew) setMark(d.k, 'restarted', now);
    else if (d.moved) setMark(d.k, anyGrew ? 'replaced' : 'restarted', now);
  }
  kids.forEach((c) => c.children && note(c, childKey(key, c), now));
}

function markOf(key) {
  const m = marks.get(key);
  return m && m.until > Date.now() ? m.cls : null;
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
  const id = n.id || n.name || n.pid || '?';
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
  const mark = markOf(key);
  if (mark) li.classList.add(mark);
  if (!Array.isArray(n.children)) {
    li.append(label);
    return li;
  }
  const toggle = h('button.toggle', { type: 'button', 'aria-expanded': String(!closed.has(key)) }, closed.has(key) ? '▸' : '▾');
  const kids = h('ul', { hidden: closed.has(key) }, n.children.map((c) => node(c, childKey(key, c))));
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

function render() {
  body.replaceChildren(tree ? h('ul.tree', {}, node(tree, tree.name || 'root')) : h('p.muted', {}, 'No supervision tree.'));
}

async function load() {
  const mine = ++seq;
  try {
    const r = await app.api('/admin/supervisors');
    if (mine !== seq) return;
    tree = r.tree;
    if (tree) note(tree, tree.name || 'root', Date.now());
    if (root) render();
  } catch (e) {
    if (mine === seq && root) body.replaceChildren(h('p.error', {}, errorText(e)));
  }
}

// Events come in bursts (a crash, then its supervisor's restarts): one
// fetch for the burst.
function soon(ms = 150) {
  clearTimeout(pending);
  pending = setTimeout(load, ms);
}

function changes(type) {
  // `hello` opens every (re)connection: what changed while the stream was
  // down is found then.
  if (type === 'supervisor' || type === 'process_crashed' || type === 'hello') soon();
}

export default {
  name: 'tree',
  title: 'Supervision tree',
  start(a) {
    app = a;
    load();
  },
  mount(el, a) {
    root = el;
    app = a;
    body = h('div');
    root.replaceChildren(h('h2', {}, 'Supervision tree'), body);
    if (tree) render();
    load();
  },
  refresh() {
    load();
  },
  event: changes,
  background: changes,
  tick() {
    // With the stream up, events say when the tree changes.
    if (!app.live) load();
  },
  unmount() {
    root = null;
  },
};
