// Client limits with the 2.x keys as centrifuge-js 2.8.5 (client protocol v1) sees them
// (CHANNELS-MODERN.md §4.1): `client_user_connection_limit` closes a user's extra connection
// with 3013 "connection limit" and no reconnect; `client_channel_limit` refuses the extra
// subscription with error 106 while the connection and the other subscriptions go on.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import Centrifuge from 'centrifuge2';
import { apiV1, sleep, startServer, until, waitEvent } from './lib/harness.mjs';

let server;
const clients = [];

function recordingWebSocket(closes) {
  return class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('close', (e) => closes.push({ code: e.code, reason: e.reason }));
    }
  };
}

function newClient(user) {
  const closes = [];
  const c = new Centrifuge(server.wsUrl, { websocket: recordingWebSocket(closes), minRetry: 100, maxRetry: 300 });
  c.setToken(server.token({ sub: user }));
  c.closes = closes;
  clients.push(c);
  return c;
}

function tt(name, fn) {
  test(name, { timeout: 30000 }, async () => {
    try {
      await fn();
    } catch (e) {
      e.message += `\n--- server output (tail) ---\n${server ? server.output().slice(-3000) : ''}`;
      throw e;
    }
  });
}

before(async () => {
  server = await startServer({ client_user_connection_limit: 1, client_channel_limit: 2 });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  if (server) await server.stop();
});

tt('2.8.5: a second connection of the same user is closed 3013 without reconnect', async () => {
  const first = newClient('limited');
  const connected = waitEvent(first, 'connect', { what: 'first connection' });
  first.connect();
  await connected;
  const second = newClient('limited');
  const disc = waitEvent(second, 'disconnect', { what: 'second connection refused' });
  second.connect();
  const ctx = await disc;
  assert.deepEqual(ctx, { reason: 'connection limit', reconnect: false });
  await until(() => second.closes.length > 0, { what: 'the close frame' });
  assert.deepEqual(second.closes, [{ code: 3013, reason: '{"reason":"connection limit","reconnect":false}' }]);
  // It does not try again; the first connection is untouched.
  await sleep(500);
  assert.equal(second.closes.length, 1, 'no reconnect');
  assert.equal(first.isConnected(), true);
  // Another user connects fine.
  const other = newClient('someone-else');
  const ok = waitEvent(other, 'connect', { what: 'another user' });
  other.connect();
  await ok;
  first.disconnect();
  other.disconnect();
});

tt('2.8.5: a subscription over client_channel_limit is refused with 106, the others work', async () => {
  const c = newClient('many-channels');
  const got = [];
  const subs = ['one', 'two'].map((ch) => {
    const sub = c.subscribe(ch);
    sub.on('publish', (ctx) => got.push([ch, ctx.data.n]));
    return waitEvent(sub, 'subscribe', { what: `subscribe ${ch}` });
  });
  c.connect();
  await Promise.all(subs);
  const third = c.subscribe('three');
  const err = await waitEvent(third, 'error', { what: 'the refused subscription' });
  assert.equal(err.code, 106, JSON.stringify(err));
  assert.equal(err.message, 'limit exceeded');
  assert.equal(c.isConnected(), true);
  await apiV1(server, 'publish', { channel: 'two', data: { n: 1 } });
  await until(() => got.length === 1, { what: 'a publication on a subscribed channel' });
  assert.deepEqual(got, [['two', 1]]);
  c.disconnect();
});
