// centrifuge-js 5.8.0 (client protocol v2) against the server under test: connect with a token,
// subscribe to a `$` channel with a subscription token from getToken (claims sub, channel, info),
// a publication from `POST /api/publish` (X-API-Key), presence with chan_info, an expired
// subscription token (error 109 → the client calls getToken again and resubscribes, §10.8 #6),
// and the terminal 3500 closes (§10.5, §10.6, §10.8 #4–6).
//
// The reference server speaks protocol v1 only: under ROTOR_TEST_SERVER=ref this file is skipped.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge5';
import { SERVER_KIND, UUID_V4, apiV2, nowSec, recordEvents, sleep, startServer, until, waitEvent } from './lib/harness.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'the reference server speaks client protocol v1 only' : false;
const TIMEOUT = { timeout: 30000, skip: SKIP };

let server;
const clients = [];

/** Wraps the ws class to record every command the client sends (decoded JSON). */
function recordingWebSocket(sent) {
  return class RecordingWebSocket extends WebSocket {
    send(data, ...rest) {
      for (const line of String(data).split('\n')) {
        if (line.trim() !== '') sent.push(JSON.parse(line));
      }
      return super.send(data, ...rest);
    }
  };
}

function newClient(token) {
  const sent = [];
  const c = new Centrifuge(server.wsUrl, {
    token,
    websocket: recordingWebSocket(sent),
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
  });
  c.sent = sent;
  c.errors = [];
  c.on('error', (ctx) => c.errors.push(ctx)); // an 'error' without a listener would throw
  clients.push(c);
  return c;
}

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
  if (SKIP) return;
  server = await startServer({
    presence: true,
    join_leave: true,
    history_size: 10,
    history_lifetime: 300,
    history_recover: true,
  });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  if (server) await server.stop();
});

const USER = 'u-dave';
const CONN_INFO = { name: 'Dave' };
const CHAN_INFO = { role: 'reader', level: 3 };
let client;
let clientId;
let news;
const newsTokenCalls = [];

tt('5.8.0: connects with a token', async () => {
  client = newClient(server.token({ sub: USER, info: CONN_INFO }));
  const connected = waitEvent(client, 'connected');
  client.connect();
  const ctx = await connected;
  assert.match(ctx.client, UUID_V4);
  assert.equal(ctx.transport, 'websocket');
  assert.equal(client.state, 'connected');
  clientId = ctx.client;
  const connect = client.sent[0];
  assert.equal(typeof connect.id, 'number');
  assert.equal(typeof connect.connect, 'object', 'v2 connect command has a named "connect" member');
});

tt('5.8.0: subscribes to a $ channel with a token from getToken', async () => {
  assert.ok(clientId, 'connected');
  news = client.newSubscription('$news', {
    getToken: async (ctx) => {
      newsTokenCalls.push(ctx);
      return server.token({ sub: USER, channel: ctx.channel, info: CHAN_INFO });
    },
  });
  news.errors = [];
  news.on('error', (ctx) => news.errors.push(ctx));
  const subscribed = waitEvent(news, 'subscribed', { what: 'subscribed to $news' });
  news.subscribe();
  const ctx = await subscribed;
  assert.equal(ctx.channel, '$news');
  assert.deepEqual(newsTokenCalls, [{ channel: '$news' }]);
  assert.equal(news.state, 'subscribed');
  assert.deepEqual(news.errors, []);
  const cmd = client.sent.find((c) => c.subscribe && c.subscribe.channel === '$news');
  assert.ok(cmd.subscribe.token, 'subscribe carried the token');
  assert.ok(ctx.recoverable === undefined || typeof ctx.recoverable === 'boolean');
});

tt('5.8.0: a publication through POST /api/publish (X-API-Key) arrives', async () => {
  const data = { headline: 'v2 works', n: 42, tags: ['a', 'b'] };
  const got = waitEvent(news, 'publication', { what: 'publication on $news' });
  const reply = await apiV2(server, 'publish', { channel: '$news', data });
  assert.equal(reply.error, undefined, `no error: ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.result, 'object');
  // History is on for this channel: the current API answers the position (§10.8 #11).
  assert.equal(typeof reply.result.offset, 'number');
  assert.ok(reply.result.offset > 0);
  assert.equal(typeof reply.result.epoch, 'string');
  const ctx = await got;
  assert.deepEqual(ctx.data, data);
  assert.equal(ctx.channel, '$news');
  assert.equal(ctx.offset, reply.result.offset);
  assert.equal(ctx.info, undefined, 'server API publications carry no info');
});

tt('5.8.0: presence includes this client with chan_info', async () => {
  const res = await news.presence();
  const me = res.clients[clientId];
  assert.ok(me, `presence has ${clientId}: ${JSON.stringify(res)}`);
  assert.equal(me.client, clientId);
  assert.equal(me.user, USER);
  assert.deepEqual(me.chanInfo, CHAN_INFO);
  assert.deepEqual(me.connInfo, CONN_INFO);

  const stats = await news.presenceStats();
  assert.equal(stats.numClients, 1);
  assert.equal(stats.numUsers, 1);

  const api = await apiV2(server, 'presence', { channel: '$news' });
  assert.equal(api.error, undefined);
  assert.deepEqual(api.result.presence[clientId], { client: clientId, user: USER, conn_info: CONN_INFO, chan_info: CHAN_INFO });
});

tt('5.8.0: an expired subscription token → error 109, getToken again, subscribed', async () => {
  const calls = [];
  const sub = client.newSubscription('$expiring', {
    minResubscribeDelay: 50,
    maxResubscribeDelay: 200,
    getToken: async (ctx) => {
      calls.push(ctx);
      const exp = calls.length === 1 ? nowSec() - 60 : nowSec() + 3600;
      return server.token({ sub: USER, channel: ctx.channel, exp });
    },
  });
  const events = recordEvents(sub, ['error', 'subscribed', 'unsubscribed']);
  const subscribed = waitEvent(sub, 'subscribed', { what: 'subscribed after the token was fetched again' });
  sub.subscribe();
  await subscribed;
  assert.equal(calls.length, 2, 'getToken was called again after 109');
  assert.deepEqual(events.map((e) => e.event), ['error', 'subscribed']);
  const err = events[0].ctx;
  assert.equal(err.type, 'subscribe');
  assert.equal(err.channel, '$expiring');
  assert.equal(err.error.code, 109);
  const subs = client.sent.filter((c) => c.subscribe && c.subscribe.channel === '$expiring');
  assert.equal(subs.length, 2, 'two subscribe commands');
  assert.notEqual(subs[0].subscribe.token, subs[1].subscribe.token);
  assert.equal(client.state, 'connected', 'the connection stayed up');
  sub.unsubscribe();
  client.removeSubscription(sub);
});

tt('5.8.0: a connection token with an invalid signature ends disconnected with 3500', async () => {
  const good = server.token({ sub: 'u-mallory' });
  const [h, p] = good.split('.');
  const c = newClient(`${h}.${p}.${Buffer.from('forged').toString('base64url')}`);
  const states = recordEvents(c, ['connecting', 'connected', 'disconnected']);
  const disc = waitEvent(c, 'disconnected', { what: 'disconnected 3500' });
  c.connect();
  const ctx = await disc;
  assert.equal(ctx.code, 3500);
  assert.equal(ctx.reason, 'invalid token');
  await sleep(500); // a reconnect would have started by now (minReconnectDelay 100 ms)
  assert.equal(c.state, 'disconnected');
  assert.equal(c.sent.filter((cmd) => cmd.connect).length, 1, 'no reconnect');
  assert.deepEqual(states.map((e) => e.event), ['connecting', 'disconnected']);
});

tt('5.8.0: a subscription token for another user closes the connection with 3500', async () => {
  const c = newClient(server.token({ sub: 'u-erin' }));
  c.connect();
  await waitEvent(c, 'connected');
  const sub = c.newSubscription('$private', {
    getToken: async (ctx) => server.token({ sub: 'someone-else', channel: ctx.channel }),
  });
  sub.on('error', () => {});
  const disc = waitEvent(c, 'disconnected', { what: 'disconnected 3500' });
  sub.subscribe();
  const ctx = await disc;
  assert.equal(ctx.code, 3500);
  await until(() => c.state === 'disconnected', { what: 'state disconnected' });
});

tt('5.8.0: a subscription token may carry the client ID; a wrong one closes with 3500', async () => {
  const c = newClient(server.token({ sub: 'u-frank' }));
  c.connect();
  const { client: id } = await waitEvent(c, 'connected');
  const ok = c.newSubscription('$with-client', {
    getToken: async (ctx) => server.token({ sub: 'u-frank', channel: ctx.channel, client: id }),
  });
  ok.on('error', () => {});
  const subscribed = waitEvent(ok, 'subscribed', { what: 'subscribed with a matching client claim' });
  ok.subscribe();
  await subscribed;

  const bad = c.newSubscription('$wrong-client', {
    getToken: async (ctx) => server.token({ sub: 'u-frank', channel: ctx.channel, client: '00000000-0000-4000-8000-000000000000' }),
  });
  bad.on('error', () => {});
  const disc = waitEvent(c, 'disconnected', { what: 'disconnected 3500' });
  bad.subscribe();
  assert.equal((await disc).code, 3500);
});
