// app.js: the dashboard's shell. Login, navigation between views (hash
// routes), the live event stream and the shared sample history.
//
// A view is a module whose default export is
//   { name, title,
//     mount(root, app),   // build into root (#view-<name>) and fetch
//     refresh(),          // fetch again (after a reconnect, `lagged`)
//     event(type, data),  // each frame of the event stream while shown
//     tick(),             // every 5 s while shown (optional)
//     unmount(),          // stop what mount started (optional)
//     start(app),         // once at login, shown or not (optional)
//     background(type, data) } // each frame while not shown (optional)
// and is listed once in `views` below: later views (workflows, TLS
// certificates, policies) are added the same way.
import { api, token, sharedEvents, onUnauthorised } from './api.js';
import { h } from './dom.js';
import overview from './views/overview.js';
import processes from './views/processes.js';
import tree from './views/tree.js';
import routes from './views/routes.js';
import upstreams from './views/upstreams.js';

const views = [overview, processes, tree, routes, upstreams];

// No view fetches more often than this (the event stream tells the rest).
const TICK_MS = 5000;
// Samples kept for the overview's charts (one a second: 5 minutes).
const HISTORY_MS = 5 * 60 * 1000;
const EVENTS_SHOWN = 50;

const $ = (sel) => document.querySelector(sel);

const app = {
  api,
  live: false,
  samples: [], // `sample` data, oldest first, at most HISTORY_MS old
  last: null, // the newest sample
  confirm,
};

let current = null; // the view shown
let stopEvents = null;
let ticker = null;
let everConnected = false;

function addSample(s) {
  // The stream's samples and those read from /admin/system in its place
  // may be on different clocks: the history holds one kind at a time.
  if (app.samples.length && !!app.samples[0].polled !== !!s.polled) app.samples = [];
  app.samples.push(s);
  app.last = s;
  const cut = s.t_ms - HISTORY_MS;
  while (app.samples.length && app.samples[0].t_ms < cut) app.samples.shift();
}

// Without the stream (not yet up, or a gateway without one), the overview
// is fed from /admin/system every tick, in the shape of a `sample`.
let prevSystem = null;
async function pollSystem() {
  const sys = await api('/admin/system');
  const t = Date.now();
  const total = sys.requests.total;
  const rate = prevSystem ? ((total - prevSystem.total) * 1000) / Math.max(1, t - prevSystem.t) : 0;
  prevSystem = { t, total };
  return {
    polled: true,
    t_ms: t,
    uptime_ms: sys.uptime_ms,
    ready: sys.ready && !sys.draining,
    schedulers: sys.schedulers.map(({ id, utilisation, run_queue }) => ({ id, utilisation, run_queue })),
    processes: sys.processes.count,
    process_limit: sys.processes.limit,
    memory: { rss_bytes: sys.memory.rss_bytes, processes_bytes: sys.memory.processes_bytes },
    requests_total: total,
    requests_per_s: rate,
    errors_total: null,
    errors_per_s: null,
    in_flight: sys.requests.in_flight,
    routes_version: sys.routes.version,
  };
}

function setLive(state) {
  const el = $('#live');
  el.dataset.state = state;
  el.textContent = state === 'connected' ? 'live' : state;
  const was = app.live;
  app.live = state === 'connected';
  if (app.live && everConnected && !was && current && current.refresh) current.refresh();
  if (app.live) everConnected = true;
}

function summary(type, d) {
  switch (type) {
    case 'process_crashed':
      return `${d.pid} ${d.name || d.initial_call || ''}: ${d.reason}`;
    case 'supervisor':
      return `${d.supervisor_name || d.supervisor}: ${d.event} ${d.child}${d.new_pid ? ` → ${d.new_pid}` : ''}`;
    case 'routes_reloaded':
      return `${d.ok ? 'version' : 'refused, still'} ${d.version} (${d.source})`;
    case 'target_ejected':
    case 'target_readmitted':
      return `${d.upstream} ${d.target}${d.reason ? `: ${d.reason}` : ''}`;
    case 'listener_started':
      return `${d.name} ${d.address}`;
    case 'lagged':
      return `${d.dropped} events dropped; refetching`;
    case 'hello':
      return `tandem ${d.version}, routes version ${d.routes_version}`;
    default:
      return '';
  }
}

function onEvent(type, data) {
  if (type === 'sample') {
    addSample(data);
  } else {
    const list = $('#events');
    const time = new Date().toLocaleTimeString('en-GB');
    list.prepend(h('li', { dataset: { type } }, h('time', {}, time), h('b', {}, type), ' ', summary(type, data)));
    while (list.children.length > EVENTS_SHOWN) list.lastElementChild.remove();
  }
  for (const v of views) {
    if (v === current) {
      if (v.event) v.event(type, data);
    } else if (v.background) {
      v.background(type, data);
    }
  }
  if (type === 'lagged' && current && current.refresh) current.refresh();
}

async function tick() {
  if (!app.live) {
    try {
      onEvent('sample', await pollSystem());
    } catch {
      // the view shows its own errors
    }
  }
  if (current && current.tick) current.tick();
}

function show() {
  const name = (location.hash.match(/^#\/([a-z-]+)/) || [])[1];
  const view = views.find((v) => v.name === name);
  if (!view) {
    location.hash = `#/${views[0].name}`;
    return;
  }
  if (current && current.unmount) current.unmount();
  current = view;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === view.name);
  const root = h(`section#view-${view.name}.view`);
  $('#main').replaceChildren(root);
  document.title = `${view.title} · Tandem`;
  view.mount(root, app);
}

function showApp() {
  $('#login-screen').hidden = true;
  $('#app').hidden = false;
  $('#nav').replaceChildren(...views.map((v) => h('a', { href: `#/${v.name}`, dataset: { view: v.name } }, v.title)));
  everConnected = false;
  // One stream for all of this browser's tabs (api.js, sharedEvents).
  stopEvents = sharedEvents({ onEvent, onState: setLive, onRole: (r) => ($('#live').dataset.role = r) });
  ticker = setInterval(tick, TICK_MS);
  tick();
  for (const v of views) if (v.start) v.start(app);
  show();
}

function showLogin(message) {
  if (stopEvents) stopEvents();
  stopEvents = null;
  delete $('#live').dataset.role;
  clearInterval(ticker);
  if (current && current.unmount) current.unmount();
  current = null;
  app.samples = [];
  app.last = null;
  setLive('disconnected');
  $('#app').hidden = true;
  $('#main').replaceChildren();
  $('#events').replaceChildren(); // shown to whoever logs in next otherwise
  $('#login-screen').hidden = false;
  $('#login-error').textContent = message || '';
  $('#token').value = '';
  $('#token').focus();
}

// An in-page confirmation: resolves true when the operator confirms.
function confirm(text, yesLabel = 'Confirm') {
  const d = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-yes').textContent = yesLabel;
  return new Promise((resolve) => {
    const done = (v) => {
      $('#confirm-yes').onclick = $('#confirm-no').onclick = d.oncancel = null;
      if (d.open) d.close();
      resolve(v);
    };
    $('#confirm-yes').onclick = () => done(true);
    $('#confirm-no').onclick = () => done(false);
    d.oncancel = () => done(false);
    d.showModal();
  });
}

async function login(ev) {
  ev.preventDefault();
  const t = $('#token').value.trim();
  if (!t) return;
  token.set(t);
  $('#login-submit').disabled = true;
  try {
    await api('/admin/system');
    showApp();
  } catch (e) {
    if (e.status !== 401) {
      token.clear();
      showLogin(`The gateway did not answer: ${e.message}`);
    }
  } finally {
    $('#login-submit').disabled = false;
  }
}

onUnauthorised((message) => {
  token.clear();
  if (!$('#login-screen').hidden) {
    $('#login-error').textContent = message;
    return;
  }
  showLogin(message);
});

$('#login').addEventListener('submit', login);
$('#logout').addEventListener('click', () => {
  token.clear();
  showLogin('');
});
window.addEventListener('hashchange', () => {
  if (!$('#app').hidden) show();
});

if (token.get()) {
  api('/admin/system').then(showApp, (e) => {
    if (e.status !== 401) showLogin(`The gateway did not answer: ${e.message}`);
  });
} else {
  showLogin('');
}
