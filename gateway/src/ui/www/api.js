// api.js: the admin API as the dashboard calls it. The token lives in
// sessionStorage only (gone with the tab) and travels as a bearer header on
// every call, never in a URL. The event stream is read with fetch, since
// EventSource cannot send a header, and parsed as Server-Sent Events.

const KEY = 'tandem.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && typeof body === 'object' ? body.detail || body.error : body;
    super(`${status}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
    this.status = status;
    this.body = body;
  }
}

// Called with a message when the gateway refuses the token (401).
let unauthorised = () => {};
export function onUnauthorised(fn) {
  unauthorised = fn;
}

function headers() {
  return { Authorization: `Bearer ${token.get() || ''}` };
}

// A JSON call. `body` is sent as JSON (a string as it is). Resolves with
// the parsed answer; rejects with ApiError for any status but 2xx.
export async function api(path, { method = 'GET', body } = {}) {
  const init = { method, headers: headers(), cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: kept as text
  }
  if (r.status === 401) unauthorised('The gateway refused the token.');
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// One frame "id: N\nevent: TYPE\ndata: JSON" (comments start with ':').
function parseFrame(frame) {
  let type = 'message';
  const data = [];
  for (const raw of frame.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return null;
  try {
    return { type, data: JSON.parse(data.join('\n')) };
  } catch {
    return null;
  }
}

// A frame longer than this is not the gateway's: the stream is dropped
// rather than buffered without end.
const MAX_FRAME = 1 << 20;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Keeps /admin/events open, reconnecting with backoff (1 s doubling to
// 30 s; at once after `lagged`). onEvent(type, data) for each frame;
// onState('connected' | 'disconnected'). Returns a function that stops it.
export function openEvents({ onEvent, onState }) {
  let stopped = false;
  let ctrl = null;
  (async () => {
    let delay = 1000;
    while (!stopped) {
      let lagged = false;
      ctrl = new AbortController();
      try {
        const r = await fetch('/admin/events', { headers: headers(), cache: 'no-store', signal: ctrl.signal });
        if (r.status === 401) {
          unauthorised('The gateway refused the token.');
          return;
        }
        if (!r.ok || !r.body) throw new Error(`events: HTTP ${r.status}`);
        onState('connected');
        delay = 1000;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const ev = parseFrame(buf.slice(0, end));
            buf = buf.slice(end + 2);
            if (!ev) continue;
            if (ev.type === 'lagged') lagged = true;
            onEvent(ev.type, ev.data);
          }
          if (buf.length > MAX_FRAME) throw new Error('events: frame too long');
        }
      } catch {
        // reconnected below
      }
      if (stopped) return;
      onState('disconnected');
      await sleep(lagged ? 100 : delay);
      if (!lagged) delay = Math.min(delay * 2, 30000);
    }
  })();
  return () => {
    stopped = true;
    if (ctrl) ctrl.abort();
  };
}

// "<0.12.3>" as the path segment the admin API takes: "0.12.3".
export const pidPath = (pid) => pid.replace(/^<|>$/g, '');

// One event stream for every tab of this origin that is logged in.
// Chromium opens at most 6 HTTP/1.1 connections to a host, and each
// stream holds one for as long as it is open: a stream per tab would leave
// a seventh tab without a connection to load anything. So the tabs elect
// a leader with a Web Lock: the tab holding LOCK reads /admin/events and
// posts each frame, and its connected/disconnected state, on CHANNEL; the
// others only listen. When the leader closes or logs out, its lock is
// released and a waiting tab takes it and opens the stream. A tab that is
// not logged in neither waits for the lock nor listens, so it is sent
// nothing. Same arguments and result as openEvents, and onRole('leader' |
// 'follower') when the tab's part changes.
const LOCK = 'tandem-events';
const CHANNEL = 'tandem-events';

export function sharedEvents({ onEvent, onState, onRole = () => {} }) {
  if (!navigator.locks || typeof BroadcastChannel !== 'function') {
    onRole('leader');
    return openEvents({ onEvent, onState });
  }
  const chan = new BroadcastChannel(CHANNEL);
  const quit = new AbortController();
  let leading = false;
  let state = 'connecting';
  let release = null;
  const setState = (s) => {
    state = s;
    onState(s);
  };
  chan.onmessage = ({ data: m }) => {
    if (quit.signal.aborted || !m || typeof m !== 'object') return;
    if (m.kind === 'ask') {
      // A tab that just joined learns the stream's state at once.
      if (leading) chan.postMessage({ kind: 'state', state });
    } else if (!leading && m.kind === 'frame') {
      onEvent(m.type, m.data);
    } else if (!leading && m.kind === 'state') {
      setState(m.state);
    }
  };
  onRole('follower');
  chan.postMessage({ kind: 'ask' });
  navigator.locks
    .request(LOCK, { signal: quit.signal }, async () => {
      if (quit.signal.aborted) return;
      leading = true;
      onRole('leader');
      const stop = openEvents({
        onEvent: (type, data) => {
          chan.postMessage({ kind: 'frame', type, data });
          onEvent(type, data);
        },
        onState: (s) => {
          chan.postMessage({ kind: 'state', state: s });
          setState(s);
        },
      });
      // Held until this tab logs out (or closes, which releases it).
      await new Promise((resolve) => {
        release = resolve;
        if (quit.signal.aborted) resolve();
      });
      stop();
      leading = false;
      chan.postMessage({ kind: 'state', state: 'disconnected' });
    })
    .catch(() => {
      // aborted while waiting: this tab logged out
    });
  return () => {
    quit.abort();
    if (release) release();
    // Posted from the lock's callback after the stream stops; the channel
    // closes after that.
    setTimeout(() => chan.close(), 0);
  };
}
