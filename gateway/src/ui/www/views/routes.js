// views/routes.js: the route table serving now, the versions the router
// keeps, a diff between two of them, and the operations: reload from the
// directory, validate or replace with a pasted table, roll back. Errors
// are shown at their file, line and column.
import { h, num, errorText } from '../dom.js';

let app = null;
let root = null;
let els = {};
let state = null; // the last GET /admin/routes
let seq = 0;

function matchText(m, priority) {
  const parts = [];
  if (m.methods) parts.push(m.methods.join(','));
  if (m.host) parts.push(m.host);
  parts.push(m.path || (m.path_prefix ? `${m.path_prefix}/…` : '/…'));
  if (m.headers) parts.push(Object.entries(m.headers).map(([k, v]) => (v === true ? k : v === false ? `!${k}` : `${k}=${v}`)).join(' '));
  if (priority) parts.push(`priority ${priority}`);
  return parts.join(' ');
}

function actionText(r) {
  if (r.upstream) return `→ ${r.upstream}${r.rewrite ? ` (${r.rewrite})` : ''}${r.strip_prefix ? ' strip prefix' : ''}`;
  if (r.respond) return `respond ${r.respond.status}`;
  if (r.workflow) return `workflow ${r.workflow}`;
  return '';
}

// A route as a routes file holds it: the API gives each route as the routes
// language writes it plus where it was defined (file, line, column), which
// the loader refuses, so those are dropped before a PUT or a validate.
function asFile(r) {
  const o = {};
  for (const [k, v] of Object.entries(r)) if (!['file', 'line', 'column'].includes(k)) o[k] = v;
  return o;
}

function versionLabel(v) {
  return `${v.version} · ${v.routes} routes · ${v.source} · ${v.published_at}${v.current ? ' (current)' : ''}`;
}

function renderTable() {
  const t = state;
  els.summary.textContent = `version ${t.version}, ${num(t.count)} routes from ${num(t.files)} files${t.routes_dir ? ` in ${t.routes_dir}` : ''}; ${num(t.reloads_ok)} reloads, ${num(t.reloads_failed)} refused`;
  els.table.replaceChildren(
    h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'match'), h('th', {}, 'action'), h('th', {}, 'policies'), h('th', {}, 'where'))),
    h(
      'tbody',
      {},
      t.routes.map((r) =>
        h('tr', { dataset: { name: r.name || '' } }, h('td', {}, r.name || ''), h('td.mono', {}, matchText(r.match || {}, r.priority)), h('td', {}, actionText(r)), h('td', {}, (r.policies || []).join(', ')), h('td.mono', {}, r.file ? `${r.file}:${r.line}:${r.column}` : '')),
      ),
    ),
  );
  els.versions.replaceChildren(...t.versions.map((v) => h('li.route-version', { dataset: { version: v.version }, class: v.current ? 'route-version current' : undefined }, versionLabel(v))));
  const options = (sel, keep) => {
    const old = sel.value;
    sel.replaceChildren(...t.versions.map((v) => h('option', { value: v.version }, `${v.version}${v.current ? ' (current)' : ''}`)));
    if (keep && [...sel.options].some((o) => o.value === old)) sel.value = old;
  };
  options(els.rollbackTo, true);
  // Rolling back to the version serving changes nothing: offer the one before.
  const current = t.versions.find((v) => v.current);
  const older = t.versions.find((v) => !v.current);
  if (older && current && els.rollbackTo.value === String(current.version)) els.rollbackTo.value = older.version;
  options(els.diffA, true);
  options(els.diffB, true);
  if (t.versions.length > 1 && els.diffA.value === els.diffB.value) {
    els.diffA.value = t.versions[1].version;
    els.diffB.value = t.versions[0].version;
  }
  if (!els.editor.value) els.editor.value = JSON.stringify({ routes: t.routes.map(asFile) }, null, 2);
}

async function load() {
  const mine = ++seq;
  try {
    const t = await app.api('/admin/routes');
    if (mine !== seq || !root) return;
    state = t;
    renderTable();
  } catch (e) {
    if (mine === seq && root) els.summary.textContent = errorText(e);
  }
}

// An outcome's errors (and warnings) as FILE:LINE:COLUMN: message (path).
function showOutcome(title, o, ok) {
  const diag = (d, cls) => h(`li.${cls}`, {}, h('span.mono', {}, `${d.file}:${d.line}:${d.column}`), `: ${d.message}`, d.path ? h('span.muted', {}, ` (${d.path})`) : null);
  els.errors.dataset.outcome = ok ? 'ok' : 'error';
  els.errors.replaceChildren(
    h(ok ? 'p.ok' : 'p.error', {}, title),
    h('ul', {}, ((o && o.errors) || []).map((d) => diag(d, 'error')), ((o && o.warnings) || []).map((d) => diag(d, 'warning'))),
  );
}

// Runs an operation; its answer (200, or 422/404 with an outcome) is shown.
async function run(what, path, opts, okText) {
  try {
    const o = await app.api(path, opts);
    showOutcome(okText(o), o, true);
  } catch (e) {
    const o = e.body && typeof e.body === 'object' ? e.body : null;
    showOutcome(`${what} refused: ${o && o.errors && o.errors.length ? `${o.errors.length} error(s)` : errorText(e)}`, o, false);
  }
  load();
}

function validate() {
  return run('Validation', '/admin/routes/validate', { method: 'POST', body: els.editor.value }, (o) => `Valid: ${o.routes} routes.`);
}

async function apply() {
  if (!(await app.confirm('Replace the route table serving now with the one in the editor? It serves until the next reload from the directory.', 'Replace'))) return;
  return run('Replacement', '/admin/routes', { method: 'PUT', body: els.editor.value }, (o) => `Published as version ${o.version}: ${o.routes} routes.`);
}

async function reload() {
  return run('Reload', '/admin/routes/reload', { method: 'POST' }, (o) => `Reloaded: version ${o.version}, ${o.routes} routes.`);
}

async function rollback() {
  const version = Number(els.rollbackTo.value);
  if (!version) return;
  if (!(await app.confirm(`Roll the route table back to version ${version}?`, 'Roll back'))) return;
  return run('Rollback', '/admin/routes/rollback', { method: 'POST', body: { version } }, (o) => `Rolled back: version ${o.version} serves, ${o.routes} routes.`);
}

// Routes of two versions compared by name: added, removed, changed.
async function diff() {
  const a = els.diffA.value;
  const b = els.diffB.value;
  els.diff.replaceChildren(h('p.muted', {}, 'Loading…'));
  try {
    const [va, vb] = await Promise.all([app.api(`/admin/routes/versions/${a}`), app.api(`/admin/routes/versions/${b}`)]);
    const byName = (v) => new Map(v.routes.map((r) => [r.name, JSON.stringify(asFile(r), null, 2)]));
    const ra = byName(va);
    const rb = byName(vb);
    const items = [];
    for (const [name, text] of ra) {
      if (!rb.has(name)) items.push(h('li.diff-del', {}, h('b', {}, `− ${name}`), h('pre', {}, text)));
      else if (rb.get(name) !== text) items.push(h('li.diff-chg', {}, h('b', {}, `~ ${name}`), h('div.pair', {}, h('pre.diff-del', {}, text), h('pre.diff-add', {}, rb.get(name)))));
    }
    for (const [name, text] of rb) if (!ra.has(name)) items.push(h('li.diff-add', {}, h('b', {}, `+ ${name}`), h('pre', {}, text)));
    els.diff.replaceChildren(h('p', {}, `Version ${a} → ${b}: ${items.length ? `${items.length} route(s) differ` : 'no difference'}`), h('ul.diff', {}, items));
  } catch (e) {
    els.diff.replaceChildren(h('p.error', {}, e.status === 404 ? 'That version is no longer kept (or this gateway cannot show old versions).' : errorText(e)));
  }
}

function build() {
  els.summary = h('p.muted', {}, 'Loading…');
  els.table = h('table#routes-table.grid');
  els.versions = h('ul#routes-versions.versions');
  els.rollbackTo = h('select#routes-rollback-to');
  els.diffA = h('select#routes-diff-a');
  els.diffB = h('select#routes-diff-b');
  els.diff = h('div#routes-diff');
  els.editor = h('textarea#routes-editor', { spellcheck: 'false', rows: 16, placeholder: '{"routes": [ ... ]}' });
  els.errors = h('div#routes-errors');
  root.replaceChildren(
    h('h2', {}, 'Routes'),
    els.summary,
    h('div.toolbar', {}, h('button#routes-reload', { type: 'button', onclick: reload }, 'Reload from directory'), h('label', {}, 'Roll back to ', els.rollbackTo), h('button#routes-rollback', { type: 'button', onclick: rollback }, 'Roll back')),
    els.table,
    h(
      'div.columns',
      {},
      h('div.panel', {}, h('h3', {}, 'Versions'), els.versions, h('div.toolbar', {}, h('label', {}, 'Diff ', els.diffA), h('label', {}, ' → ', els.diffB), h('button#routes-diff-show', { type: 'button', onclick: diff }, 'Show diff')), els.diff),
      h(
        'div.panel',
        {},
        h('h3', {}, 'Edit'),
        els.editor,
        h('div.toolbar', {}, h('button#routes-validate', { type: 'button', onclick: validate }, 'Validate'), h('button#routes-apply.danger', { type: 'button', onclick: apply }, 'Replace table'), h('button#routes-load', { type: 'button', onclick: () => ((els.editor.value = ''), load()) }, 'Load current')),
        els.errors,
      ),
    ),
  );
}

export default {
  name: 'routes',
  title: 'Routes',
  mount(el, a) {
    root = el;
    app = a;
    els = {};
    build();
    load();
  },
  refresh() {
    load();
  },
  event(type) {
    if (type === 'routes_reloaded') load();
  },
  unmount() {
    root = null;
  },
};
