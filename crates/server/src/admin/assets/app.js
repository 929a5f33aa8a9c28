// Rotor admin UI: plain JavaScript, no framework. Logs in with the admin password (the server
// sets an HttpOnly cookie), then polls the JSON endpoints under /admin/api/ every 2 seconds.
'use strict';

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
let timer = null;

async function call(path, options = {}) {
  const init = { credentials: 'same-origin', ...options };
  if (init.body !== undefined) {
    init.method = init.method || 'POST';
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(init.body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) {
    showLogin();
    throw new Error('unauthorized');
  }
  return resp.json();
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fillTable(id, rows, render, emptyText) {
  const body = $(id).querySelector('tbody');
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell(emptyText, 'empty');
    td.colSpan = $(id).querySelectorAll('th').length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const row of rows) body.append(render(row));
}

function uptime(secs) {
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function renderCounters(info) {
  const c = info.counters;
  const total = (k) => info.nodes.reduce((a, n) => a + n[k], 0);
  const items = [
    ['Nodes', info.nodes.length],
    ['Clients', total('num_clients')],
    ['Users', total('num_users')],
    ['Channels', total('num_channels')],
    ['Subscriptions', c.num_subscriptions],
    ['Publications received', c.publications],
    ['Messages sent', c.messages_sent],
    ['Commands received', c.messages_received],
  ];
  $('counters').replaceChildren(...items.map(([label, value]) => {
    const div = document.createElement('div');
    div.className = 'counter';
    div.innerHTML = '<div class="value"></div><div class="label"></div>';
    div.querySelector('.value').textContent = value;
    div.querySelector('.label').textContent = label;
    return div;
  }));
  const status = $('status');
  const ok = c.broker_healthy && !c.draining;
  status.textContent = c.draining ? 'draining' : c.broker_healthy ? `${info.engine} engine ok` : 'engine unavailable';
  status.className = ok ? 'badge' : 'badge bad';
}

// Live chart: per node, samples keyed by the node's own uptime (its counters are as fresh as its
// last announcement, so rates come from its own clock, not from the poll interval).
const CHART_SECS = 120;
const series = new Map(); // uid -> [{ up, sent, clients }]

function sample(nodes) {
  for (const n of nodes) {
    const list = series.get(n.uid) || [];
    const last = list[list.length - 1];
    if (last && n.uptime < last.up) list.length = 0; // the node restarted
    if (!last || n.uptime > last.up) list.push({ up: n.uptime, sent: n.messages_sent || 0, clients: n.num_clients });
    while (list.length > 1 && list[list.length - 1].up - list[0].up > CHART_SECS) list.shift();
    series.set(n.uid, list);
  }
  for (const uid of series.keys()) {
    if (!nodes.some((n) => n.uid === uid)) series.delete(uid);
  }
}

/// Messages/s between consecutive samples: [{ up, rate, clients }].
function rates(list) {
  const out = [];
  for (let i = 1; i < list.length; i++) {
    const dt = list[i].up - list[i - 1].up;
    const rate = dt > 0 ? Math.max(0, list[i].sent - list[i - 1].sent) / dt : 0;
    out.push({ up: list[i].up, rate, clients: list[i].clients });
  }
  return out;
}

function polyline(points, key, max, cls) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  el.setAttribute('class', cls);
  const first = points.length ? points[0].up : 0;
  const last = points.length ? points[points.length - 1].up : 1;
  const span = Math.max(1, last - first);
  el.setAttribute('points', points.map((p) => {
    const x = ((p.up - first) / span) * 300;
    const y = 110 - (max > 0 ? (p[key] / max) * 100 : 0);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(' '));
  return el;
}

function renderCharts(nodes) {
  sample(nodes);
  const charts = nodes.map((n) => {
    const points = rates(series.get(n.uid) || []);
    const div = document.createElement('div');
    div.className = 'chart';
    div.dataset.node = n.uid;
    const h = document.createElement('h3');
    h.textContent = n.name;
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', '0 0 300 115');
    svg.setAttribute('preserveAspectRatio', 'none');
    const peak = Math.max(0, ...points.map((p) => p.rate));
    div.dataset.peakRate = String(peak);
    div.dataset.points = String(points.length);
    const maxRate = Math.max(1, peak);
    const maxConns = Math.max(1, ...points.map((p) => p.clients));
    svg.append(polyline(points, 'rate', maxRate, 'rate'), polyline(points, 'clients', maxConns, 'conns'));
    const now = points[points.length - 1];
    const legend = document.createElement('div');
    legend.className = 'legend';
    const rate = document.createElement('span');
    rate.className = 'rate';
    rate.textContent = `${now ? Math.round(now.rate) : 0} messages/s (max ${Math.round(maxRate)})`;
    const conns = document.createElement('span');
    conns.className = 'conns';
    conns.textContent = `${n.num_clients} connections`;
    legend.append(rate, conns);
    div.append(h, svg, legend);
    return div;
  });
  $('charts').replaceChildren(...charts);
}

async function refresh() {
  try {
    const [info, conns, chans] = await Promise.all([
      call('/admin/api/info'), call('/admin/api/connections'), call('/admin/api/channels'),
    ]);
    const me = info.nodes.find((n) => n.uid === info.this_node);
    $('node-name').textContent = me ? me.name : '';
    renderCounters(info);
    renderCharts(info.nodes);
    fillTable('nodes', info.nodes, (n) => {
      const tr = document.createElement('tr');
      tr.append(cell(n.name), cell(n.uid.slice(0, 8), 'mono'), cell(n.version), cell(n.num_clients),
        cell(n.num_users), cell(n.num_channels), cell(uptime(n.uptime)));
      return tr;
    }, 'no nodes');
    $('connections-count').textContent = `(${conns.connections.length})`;
    fillTable('connections', conns.connections, (c) => {
      const tr = document.createElement('tr');
      tr.dataset.client = c.client;
      tr.append(cell(c.user || '(anonymous)'), cell(c.client, 'mono'), cell(`${c.protocol} ${c.encoding}`),
        cell(c.channels.join(', ')), cell(`${c.queued_bytes} B`));
      return tr;
    }, 'no connections');
    $('channels-count').textContent = `(${chans.channels.length})`;
    fillTable('channels', chans.channels, (ch) => {
      const tr = document.createElement('tr');
      tr.className = 'clickable';
      tr.title = 'Inspect this channel';
      tr.append(cell(ch.channel, 'mono'), cell(ch.num_clients));
      tr.addEventListener('click', () => {
        $('inspect-channel').value = ch.channel;
        $('publish-channel').value = ch.channel;
      });
      return tr;
    }, 'no channels');
  } catch (e) {
    if (e.message !== 'unauthorized') $('status').textContent = 'unreachable';
  }
}

function showLogin() {
  clearInterval(timer);
  timer = null;
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-password').focus();
}

function showApp() {
  $('login').hidden = true;
  $('app').hidden = false;
  refresh();
  if (!timer) timer = setInterval(refresh, POLL_MS);
}

function show(id, value) {
  $(id).textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  $('login-submit').disabled = true;
  try {
    const resp = await fetch('/admin/auth', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: $('login-password').value }),
    });
    if (resp.ok) {
      $('login-password').value = '';
      showApp();
    } else if (resp.status === 429) {
      const wait = resp.headers.get('Retry-After');
      $('login-error').textContent = `Too many attempts: try again${wait ? ` in ${wait} s` : ' later'}`;
    } else {
      $('login-error').textContent = 'Wrong password';
    }
  } finally {
    $('login-submit').disabled = false;
  }
});

$('logout').addEventListener('click', async () => {
  await fetch('/admin/logout', { method: 'POST', credentials: 'same-origin' });
  showLogin();
});

$('publish-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  let data;
  try {
    data = JSON.parse($('publish-data').value);
  } catch (e) {
    show('publish-result', `Data is not valid JSON: ${e.message}`);
    return;
  }
  const channel = $('publish-channel').value.trim();
  const reply = await call('/admin/api/publish', { body: { channel, data } });
  show('publish-result', reply.error ? `Error ${reply.error.code}: ${reply.error.message}` : `Published to ${channel}: ${JSON.stringify(reply.result)}`);
  refresh();
});

async function inspect(kind) {
  const channel = encodeURIComponent($('inspect-channel').value.trim());
  const reply = await call(`/admin/api/${kind}?channel=${channel}`);
  show('inspect-result', reply.error ? `Error ${reply.error.code}: ${reply.error.message}` : reply.result);
}
$('presence-submit').addEventListener('click', () => inspect('presence'));
$('history-submit').addEventListener('click', () => inspect('history'));

// Logged in already (cookie) or admin_insecure: go straight to the app.
fetch('/admin/api/info', { credentials: 'same-origin' })
  .then((r) => (r.ok ? showApp() : showLogin()))
  .catch(showLogin);
