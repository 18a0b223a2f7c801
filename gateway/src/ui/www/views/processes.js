// views/processes.js: the process table, paged on the server (100 rows a
// page, so 100k processes cost the page nothing), sorted and filtered by
// kind and name; a row opens the process's detail with Kill and Restart.
import { pidPath } from '../api.js';
import { h, bytes, duration, num, errorText } from '../dom.js';

const LIMIT = 100;
const KINDS = ['process', 'server', 'supervisor', 'statem', 'task', 'acceptor', 'connection', 'request'];
const SORTS = [
  ['age', 'age (oldest first)'],
  ['reductions', 'reductions'],
  ['mailbox', 'mailbox'],
  ['memory', 'memory'],
];

let app = null;
let root = null;
let q = { offset: 0, sort: 'age', kind: '', name: '' };
let selected = null; // pid of the detail shown
let els = {};
let nameTimer = null;
let seq = 0; // answers to older fetches are dropped

function query() {
  const p = new URLSearchParams({ limit: LIMIT, offset: q.offset, sort: q.sort });
  if (q.kind) p.set('kind', q.kind);
  if (q.name) p.set('name', q.name);
  return p.toString();
}

function describe(p) {
  if (p.kind === 'request' && p.method) return `${p.method} ${p.path || ''} → ${p.route || '–'} ${p.upstream_target || ''} (${p.elapsed_ms} ms)`;
  return p.detail || p.initial_call || '';
}

function row(p) {
  return h(
    'tr.proc-row',
    { dataset: { pid: p.pid }, class: p.pid === selected ? 'proc-row selected' : undefined, onclick: () => openDetail(p.pid) },
    h('td.mono', {}, p.pid),
    h('td', {}, p.name || ''),
    h('td', {}, p.kind),
    h('td', {}, p.status),
    h('td.num', {}, num(p.mailbox_len)),
    h('td.num', {}, num(p.reductions)),
    h('td.num', {}, bytes(p.memory)),
    h('td.num', {}, duration(p.age_ms)),
    h('td.detail', {}, describe(p)),
  );
}

async function load() {
  const mine = ++seq;
  try {
    const r = await app.api(`/admin/processes?${query()}`);
    if (mine !== seq || !root) return;
    // With the stream up the count is the samples': this answer's total
    // also counts the request process that computed it.
    els.total.textContent = String(app.live && app.last ? app.last.processes : r.total);
    const last = r.offset + r.returned;
    els.range.textContent = r.returned ? `${num(r.offset + 1)}–${num(last)} of ${num(r.matched)} matching` : `none of ${num(r.matched)} matching`;
    els.prev.disabled = r.offset === 0;
    els.next.disabled = last >= r.matched;
    els.body.replaceChildren(...r.processes.map(row));
    els.error.textContent = '';
  } catch (e) {
    if (mine === seq && root) els.error.textContent = errorText(e);
  }
}

function pidList(pids) {
  if (!pids || !pids.length) return '–';
  return pids.map((p) => h('a.pid', { href: '#/processes', onclick: (ev) => (ev.preventDefault(), openDetail(p)) }, p));
}

function field(k, v) {
  return [h('dt', {}, k), h('dd', {}, v)];
}

async function act(pid, what) {
  const text = what === 'kill' ? `Kill ${pid}? It stops at once, whatever it is doing; a supervisor may restart it.` : `Restart ${pid} through its supervisor?`;
  if (!(await app.confirm(text, what === 'kill' ? 'Kill' : 'Restart'))) return;
  try {
    // Kill is observer's: the exit signal `kill`, which no process can trap
    // (a request process's client then gets 502). The admin API's default
    // reason would let a process that traps exits live on.
    const opts = what === 'kill' ? { method: 'POST', body: { reason: 'kill' } } : { method: 'POST' };
    const r = await app.api(`/admin/processes/${pidPath(pid)}/${what}`, opts);
    els.status.textContent = what === 'kill' ? `${pid} ${r.exited ? `exited: ${r.exit_reason}` : 'traps exits and lives on'}` : `${pid} restarted as ${r.new_pid}`;
    if (what === 'restart' && r.new_pid) selected = r.new_pid;
  } catch (e) {
    els.status.textContent = errorText(e);
  }
  load();
  if (selected) openDetail(selected);
}

async function openDetail(pid) {
  selected = pid;
  for (const tr of els.body.querySelectorAll('tr.proc-row')) tr.classList.toggle('selected', tr.dataset.pid === pid);
  const panel = els.detail;
  panel.hidden = false;
  try {
    const p = await app.api(`/admin/processes/${pidPath(pid)}`);
    if (selected !== pid || !root) return;
    const sys = p.sys ? h('pre.sys', {}, JSON.stringify(p.sys, null, 2)) : h('span.muted', {}, 'not a behaviour');
    panel.replaceChildren(
      h('div.detail-head', {}, h('h3', {}, `${p.pid} ${p.name || ''}`), h('button#proc-close', { type: 'button', onclick: closeDetail }, 'Close')),
      h(
        'dl',
        {},
        field('kind', p.kind),
        field('initial call', p.initial_call || '–'),
        field('status', p.status),
        field('mailbox', num(p.mailbox_len)),
        field('reductions', num(p.reductions)),
        field('memory', bytes(p.memory)),
        field('age', duration(p.age_ms)),
        field('trap exit', String(p.trap_exit)),
        field('parent', p.parent ? pidList([p.parent]) : '–'),
        field('links', pidList(p.linked || p.links)),
        field('monitors', pidList(p.monitors)),
        field('monitored by', pidList(p.monitored_by)),
        field('detail', describe(p) || '–'),
      ),
      h('h4', {}, 'sys state'),
      sys,
      h(
        'div.actions',
        {},
        h('button#proc-kill.danger', { type: 'button', onclick: () => act(p.pid, 'kill') }, 'Kill'),
        h('button#proc-restart', { type: 'button', onclick: () => act(p.pid, 'restart') }, 'Restart'),
      ),
    );
  } catch (e) {
    if (selected !== pid || !root) return;
    panel.replaceChildren(
      h('div.detail-head', {}, h('h3', {}, pid), h('button#proc-close', { type: 'button', onclick: closeDetail }, 'Close')),
      h('p.error', {}, e.status === 404 ? 'This process is gone.' : errorText(e)),
    );
  }
}

function closeDetail() {
  selected = null;
  els.detail.hidden = true;
  for (const tr of els.body.querySelectorAll('tr.selected')) tr.classList.remove('selected');
}

function build() {
  els.kind = h('select#proc-kind', { onchange: () => ((q.kind = els.kind.value), (q.offset = 0), load()) }, h('option', { value: '' }, 'every kind'), KINDS.map((k) => h('option', { value: k }, k)));
  els.kind.value = q.kind;
  els.name = h('input#proc-name', { type: 'search', placeholder: 'name contains', value: q.name, oninput: () => {
    clearTimeout(nameTimer);
    nameTimer = setTimeout(() => ((q.name = els.name.value.trim()), (q.offset = 0), load()), 300);
  } });
  els.sort = h('select#proc-sort', { onchange: () => ((q.sort = els.sort.value), (q.offset = 0), load()) }, SORTS.map(([v, t]) => h('option', { value: v }, t)));
  els.sort.value = q.sort;
  els.prev = h('button#proc-prev', { type: 'button', onclick: () => ((q.offset = Math.max(0, q.offset - LIMIT)), load()) }, '‹ Previous');
  els.next = h('button#proc-next', { type: 'button', onclick: () => ((q.offset += LIMIT), load()) }, 'Next ›');
  els.total = h('span#proc-total', {}, '…');
  els.range = h('span.muted', {}, '');
  els.error = h('p.error', {});
  els.status = h('p.status', {});
  els.body = h('tbody');
  els.detail = h('div#proc-detail.panel', { hidden: true });
  const th = (t, cls) => h(`th${cls ? `.${cls}` : ''}`, {}, t);
  root.replaceChildren(
    h('h2', {}, 'Processes ', h('small', {}, els.total, ' in all')),
    h('div.toolbar', {}, h('label', {}, 'Kind ', els.kind), h('label', {}, 'Name ', els.name), h('label', {}, 'Sort ', els.sort), els.prev, els.next, els.range),
    els.error,
    els.status,
    h(
      'div.split',
      {},
      h('div.table-wrap', {}, h('table.grid', {}, h('thead', {}, h('tr', {}, th('pid'), th('name'), th('kind'), th('status'), th('mailbox', 'num'), th('reductions', 'num'), th('memory', 'num'), th('age', 'num'), th('detail'))), els.body)),
      els.detail,
    ),
  );
}

export default {
  name: 'processes',
  title: 'Processes',
  mount(el, a) {
    root = el;
    app = a;
    els = {};
    selected = null;
    build();
    load();
  },
  refresh() {
    load();
    if (selected) openDetail(selected);
  },
  event(type, data) {
    // The count follows every sample; the rows every tick.
    if (type === 'sample' && els.total) els.total.textContent = String(data.processes);
  },
  tick() {
    load();
  },
  unmount() {
    clearTimeout(nameTimer);
    root = null;
  },
};
