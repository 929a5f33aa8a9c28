// centrifuge-js 2.8.5 (client protocol v1) against the server under test: the private-channel
// flow of PROTOCOL.md §5.6 through the client's own AJAX request to an app backend (no
// onPrivateSubscribe), publications from the 2.x `/api`, presence with chan_info, the refusal
// codes of §5.3 / §2.7, sub_refresh, and the 3006 disconnect + reconnect of §5.4.
//
// The client runs with the npm `ws` package as its WebSocket and `xhr2` as its XMLHttpRequest.
// The WebSocket class is wrapped only to record the frames the client sends.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import XMLHttpRequest from 'xhr2';
import Centrifuge from 'centrifuge2';
import {
  UUID_V4, apiV1, nowSec, recordEvents, sleep, startBackend, startServer, until, waitEvent,
} from './lib/harness.mjs';

const TIMEOUT = { timeout: 30000 };

let server;
let backend;
const clients = [];

/**
 * The ws class, recording every command the client sends (decoded JSON, one entry per command)
 * into `sent` and every close the client sees ({code, reason}) into `closes`.
 */
function recordingWebSocket(sent, closes) {
  return class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('close', (e) => closes.push({ code: e.code, reason: e.reason }));
    }

    send(data, ...rest) {
      for (const line of String(data).split('\n')) {
        if (line.trim() !== '') sent.push(JSON.parse(line));
      }
      return super.send(data, ...rest);
    }
  };
}

function newClient(caseName, token) {
  const sent = [];
  const closes = [];
  const c = new Centrifuge(server.wsUrl, {
    websocket: recordingWebSocket(sent, closes),
    xmlhttprequest: XMLHttpRequest,
    subscribeEndpoint: backend.subscribeEndpoint,
    subscribeParams: { case: caseName },
    refreshEndpoint: backend.refreshEndpoint,
    refreshParams: { case: caseName },
    minRetry: 300,
    maxRetry: 2000,
  });
  if (token) c.setToken(token);
  c.sent = sent;
  c.closes = closes;
  clients.push(c);
  return c;
}

/** A subscribe answer of the app backend: one entry per requested channel. */
function answer(channels) {
  return { status: 200, body: { channels } };
}

// Wraps a test body so that a failure shows the tail of the server's output.
function tt(name, fn) {
  test(name, TIMEOUT, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      e.message += `\n--- ${server ? server.kind : 'server'} output (tail) ---\n${server ? server.output().slice(-4000) : ''}`;
      throw e;
    }
  });
}

before(async () => {
  backend = await startBackend();
  server = await startServer({
    presence: true,
    join_leave: true,
    history_size: 10,
    history_lifetime: 300,
    history_recover: true,
    client_expired_sub_close_delay: 1,
    client_presence_ping_interval: 1,
  });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  if (server) await server.stop();
  if (backend) await backend.stop();
});

// ---- the main client: connect, $gossips, publication, presence, refusals, sub_refresh ----

const USER = 'u-alice';
const CONN_INFO = { name: 'Alice', plan: 'pro' };
const CHAN_INFO = { role: 'gossiper', since: 2020 };
let main;
let mainClientId;
let gossips;
const gossipJoins = [];

// The backend's policy for the main client, per requested channel.
function mainPolicy(req) {
  const client = req.body.client;
  const out = [];
  for (const ch of req.body.channels) {
    const tok = (claims) => out.push({ channel: ch, token: server.token(claims) });
    switch (ch) {
      case '$gossips':
        tok({ client, channel: ch, info: CHAN_INFO });
        break;
      case '$wrong-client':
        tok({ client: randomUUID(), channel: ch, info: CHAN_INFO });
        break;
      case '$wrong-channel':
        tok({ client, channel: '$elsewhere', info: CHAN_INFO });
        break;
      case '$expired':
        tok({ client, channel: ch, exp: nowSec() - 60 });
        break;
      case '$missing':
        break; // left out of the answer
      case '$refresh':
        tok({ client, channel: ch, info: { refreshed: req.n }, exp: nowSec() + 3 });
        break;
      default:
        break;
    }
  }
  return answer(out);
}

tt('2.8.5: connects with a connection token', async () => {
  backend.on('/centrifuge/subscribe', 'main', (req, n) => mainPolicy({ ...req, n }));
  main = newClient('main', server.token({ sub: USER, info: CONN_INFO }));
  const connected = waitEvent(main, 'connect');
  main.connect();
  const ctx = await connected;
  assert.match(ctx.client, UUID_V4, 'client ID is a UUIDv4');
  assert.equal(ctx.transport, 'websocket');
  mainClientId = ctx.client;
  const connect = main.sent[0];
  assert.equal(connect.method, undefined, 'connect is sent without a method key');
  assert.equal(connect.params.token.split('.').length, 3);
});

tt('2.8.5: subscribes to $gossips through its own request to subscribeEndpoint', async () => {
  assert.ok(mainClientId, 'connected');
  gossips = main.subscribe('$gossips');
  gossips.on('join', (ctx) => gossipJoins.push(ctx));
  const ctx = await waitEvent(gossips, 'subscribe', { what: 'subscribe event of $gossips' });
  assert.equal(ctx.channel, '$gossips');
  assert.equal(ctx.isResubscribe, false);

  const reqs = backend.requestsFor('main');
  assert.equal(reqs.length, 1, 'one request to the backend');
  assert.equal(reqs[0].method, 'POST');
  assert.deepEqual(reqs[0].body, { client: mainClientId, channels: ['$gossips'] });
  assert.equal(reqs[0].headers['x-requested-with'], 'XMLHttpRequest');
  assert.match(reqs[0].headers['content-type'], /^application\/json/);

  const subCmd = main.sent.find((c) => c.method === 1 && c.params.channel === '$gossips');
  assert.ok(subCmd, 'a subscribe command (method 1) was sent');
  assert.equal(typeof subCmd.params.token, 'string');
  assert.ok(subCmd.params.token.length > 0);
});

tt('2.8.5: a publication through POST /api arrives with the same data', async () => {
  const data = { text: 'psst', n: 1, nested: { list: [1, 'two', null, true] }, unicode: 'é✓' };
  const got = waitEvent(gossips, 'publish', { what: 'publication on $gossips' });
  const result = await apiV1(server, 'publish', { channel: '$gossips', data });
  // §8.1 gives `{}` for a 2.x publish; the reference answers `{"result":{}}`: both carry nothing.
  assert.ok(result === undefined || (typeof result === 'object' && Object.keys(result).length === 0), `empty publish result, got ${JSON.stringify(result)}`);
  const ctx = await got;
  assert.deepEqual(ctx.data, data);
  assert.equal(ctx.info, undefined, 'server API publications carry no info');
});

tt('2.8.5: presence shows this client with chan_info from the subscription token', async () => {
  const res = await gossips.presence();
  const expected = { user: USER, client: mainClientId, conn_info: CONN_INFO, chan_info: CHAN_INFO };
  assert.deepEqual(Object.keys(res.presence), [mainClientId]);
  assert.deepEqual(res.presence[mainClientId], expected);

  const stats = await gossips.presenceStats();
  assert.deepEqual(stats, { num_clients: 1, num_users: 1 });

  const apiPresence = await apiV1(server, 'presence', { channel: '$gossips' });
  assert.deepEqual(apiPresence.presence[mainClientId], expected);

  // With join_leave on, the subscriber gets its own join, carrying chan_info too.
  await until(() => gossipJoins.length > 0, { what: 'join push on $gossips' });
  assert.deepEqual(gossipJoins[0].info, expected);
});

async function refusal(channel) {
  const sub = main.subscribe(channel);
  const err = await waitEvent(sub, 'error', { what: `subscription error on ${channel}` });
  return { sub, err };
}

tt('2.8.5: a token for another client is refused with 103', async () => {
  const { err } = await refusal('$wrong-client');
  assert.equal(err.code, 103);
  assert.equal(err.message, 'permission denied');
  assert.equal(err.channel, '$wrong-client');
  assert.ok(main.sent.some((c) => c.method === 1 && c.params.channel === '$wrong-client'), 'the subscribe was sent');
});

tt('2.8.5: a token for another channel is refused with 103', async () => {
  const { err } = await refusal('$wrong-channel');
  assert.equal(err.code, 103);
  assert.equal(err.message, 'permission denied');
});

tt('2.8.5: an already expired token is refused with 109', async () => {
  const { err } = await refusal('$expired');
  assert.equal(err.code, 109);
  assert.equal(err.message, 'token expired');
});

tt('2.8.5: a channel missing from the backend answer fails locally with 103', async () => {
  const { err } = await refusal('$missing');
  assert.equal(err.code, 103);
  assert.equal(err.message, 'permission denied');
  assert.ok(!main.sent.some((c) => c.method === 1 && c.params.channel === '$missing'), 'no subscribe frame was sent');
});

tt('2.8.5: the connection stays up after the refusals', async () => {
  assert.equal(main.isConnected(), true);
  const res = await gossips.presence();
  assert.ok(res.presence[mainClientId], 'presence still answered on the same connection');
  const data = { after: 'refusals' };
  const got = waitEvent(gossips, 'publish');
  await apiV1(server, 'publish', { channel: '$gossips', data });
  assert.deepEqual((await got).data, data);
});

tt('2.8.5: sub_refresh through the same endpoint keeps a subscription past its first exp', async () => {
  const disconnects = recordEvents(main, ['disconnect']);
  const sub = main.subscribe('$refresh');
  const firstExp = nowSec() + 3; // what the backend puts into the first token (± 1 s)
  await waitEvent(sub, 'subscribe', { what: 'subscribe event of $refresh' });
  const subCmd = main.sent.find((c) => c.method === 1 && c.params.channel === '$refresh');
  assert.ok(subCmd, 'subscribe sent');

  // The client asks the backend again (same client ID, only this channel) and sends sub_refresh.
  await until(() => backend.requestsFor('main').filter((r) => r.body.channels.includes('$refresh')).length >= 2, {
    timeoutMs: 8000,
    what: 'a second backend request for $refresh',
  });
  const refreshReqs = backend.requestsFor('main').filter((r) => r.body.channels.includes('$refresh'));
  assert.deepEqual(refreshReqs[1].body, { client: mainClientId, channels: ['$refresh'] });
  await until(() => main.sent.find((c) => c.method === 11 && c.params.channel === '$refresh'), {
    timeoutMs: 3000,
    what: 'a sub_refresh command (method 11)',
  });
  const subRefresh = main.sent.find((c) => c.method === 11);
  assert.equal(typeof subRefresh.params.token, 'string');
  assert.notEqual(subRefresh.params.token, subCmd.params.token);

  // Past the first exp + client_expired_sub_close_delay (1 s) + a presence tick (1 s) + margin.
  const waitMs = (firstExp + 1 + 1 + 2) * 1000 - Date.now();
  if (waitMs > 0) await sleep(waitMs);
  assert.equal(main.isConnected(), true, 'still connected');
  assert.deepEqual(disconnects, [], 'no disconnect happened');
  const data = { still: 'here' };
  const got = waitEvent(sub, 'publish', { what: 'publication on $refresh after the first exp' });
  await apiV1(server, 'publish', { channel: '$refresh', data });
  assert.deepEqual((await got).data, data);
  const presence = await sub.presence();
  assert.ok(presence.presence[mainClientId], 'present in $refresh');
  sub.unsubscribe();
});

// ---- an unrefreshed private subscription: close 3006, reconnect, resubscribe ----

tt('2.8.5: when the backend stops answering, the connection is closed 3006 and the client reconnects', async () => {
  let firstClient = null;
  let firstExp = 0;
  backend.on('/centrifuge/subscribe', 'expiring', (req) => {
    const { client, channels } = req.body;
    if (firstClient === null) {
      firstClient = client;
      firstExp = nowSec() + 2;
      return answer(channels.map((ch) => ({ channel: ch, token: server.token({ client, channel: ch, exp: firstExp }) })));
    }
    if (client === firstClient) return { status: 503, body: { error: 'backend down' } };
    return answer(channels.map((ch) => ({ channel: ch, token: server.token({ client, channel: ch }) })));
  });

  const c = newClient('expiring', server.token({ sub: 'u-bob' }));
  const events = recordEvents(c, ['connect', 'disconnect']);
  c.connect();
  const first = await waitEvent(c, 'connect');
  const sub = c.subscribe('$expiring');
  const subEvents = recordEvents(sub, ['subscribe', 'unsubscribe', 'error']);
  await waitEvent(sub, 'subscribe');

  const disc = await waitEvent(c, 'disconnect', { timeoutMs: 15000, what: 'disconnect 3006' });
  const discAt = Date.now() / 1000;
  assert.equal(disc.reason, 'subscription expired');
  assert.equal(disc.reconnect, true);
  assert.deepEqual(c.closes[0], { code: 3006, reason: '{"reason":"subscription expired","reconnect":true}' });
  assert.ok(discAt > firstExp + 1 - 0.5, `closed after exp + client_expired_sub_close_delay (exp ${firstExp}, closed ${discAt})`);

  const second = await waitEvent(c, 'connect', { timeoutMs: 10000, what: 'reconnect' });
  assert.match(second.client, UUID_V4);
  assert.notEqual(second.client, first.client, 'a new client ID after reconnect');

  await until(() => subEvents.filter((e) => e.event === 'subscribe').length >= 2, { what: 'resubscribe after reconnect' });
  const resub = subEvents.filter((e) => e.event === 'subscribe')[1].ctx;
  assert.equal(resub.isResubscribe, true);

  const reqs = backend.requestsFor('expiring');
  assert.deepEqual(reqs[0].body, { client: first.client, channels: ['$expiring'] });
  assert.ok(reqs.some((r) => r.body.client === first.client && r !== reqs[0]), 'the client tried to refresh through the backend');
  assert.deepEqual(reqs[reqs.length - 1].body, { client: second.client, channels: ['$expiring'] });
  assert.deepEqual(events.map((e) => e.event), ['connect', 'disconnect', 'connect']);

  const data = { back: true };
  const got = waitEvent(sub, 'publish');
  await apiV1(server, 'publish', { channel: '$expiring', data });
  assert.deepEqual((await got).data, data);
  c.disconnect();
});

// ---- connection token outcomes (§2.7, §4.1) ----

tt('2.8.5: a connection token with a bad signature is closed 3002 without reconnect', async () => {
  const c = newClient('bad-conn');
  const good = server.token({ sub: 'u-mallory' });
  const [h, p] = good.split('.');
  c.setToken(`${h}.${p}.${Buffer.from('not the signature').toString('base64url')}`);
  const disc = waitEvent(c, 'disconnect', { what: 'disconnect for an invalid token' });
  c.connect();
  const ctx = await disc;
  assert.deepEqual(ctx, { reason: 'invalid token', reconnect: false });
  await until(() => c.closes.length > 0, { what: 'the close frame' });
  assert.deepEqual(c.closes, [{ code: 3002, reason: '{"reason":"invalid token","reconnect":false}' }]);
});

tt('2.8.5: an expired connection token makes the client fetch a new one and connect', async () => {
  backend.on('/centrifuge/refresh', 'conn-refresh', () => ({ status: 200, body: { token: server.token({ sub: 'u-carol', exp: nowSec() + 3600 }) } }));
  const c = newClient('conn-refresh', server.token({ sub: 'u-carol', exp: nowSec() - 10 }));
  const connected = waitEvent(c, 'connect', { timeoutMs: 10000, what: 'connect after a token refresh' });
  c.connect();
  const ctx = await connected;
  assert.match(ctx.client, UUID_V4);
  assert.equal(backend.requestsFor('conn-refresh', '/centrifuge/refresh').length, 1);
  const connects = c.sent.filter((cmd) => cmd.method === undefined && cmd.params && cmd.params.token);
  assert.equal(connects.length, 2, 'connect, then connect again with the new token');
  assert.notEqual(connects[0].params.token, connects[1].params.token);
  c.disconnect();
});
