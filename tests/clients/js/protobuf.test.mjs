// The real clients' Protobuf builds against the server under test (issue 3, item 9):
// centrifuge-js 2.8.5's `dist/centrifuge.protobuf.js` with `protocol: 'protobuf'` and a
// `format=protobuf` URL (client protocol v1), and centrifuge-js 5.8.0's `build/protobuf` entry
// point (client protocol v2). Each connects with a token, subscribes (a `$` channel with a
// subscription token), receives a publication sent through the HTTP API, sees its presence with
// chan_info, and recovers missed publications after its socket is cut.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import XMLHttpRequest from 'xhr2';
import { Centrifuge as Centrifuge5 } from 'centrifuge5/build/protobuf';
import { SERVER_KIND, apiV1, apiV2, nowSec, startBackend, until, waitEvent } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const Centrifuge2 = require('centrifuge2/dist/centrifuge.protobuf.js');

const SKIP = SERVER_KIND === 'ref' ? 'protobuf v2 and recovery checks target rotor' : false;
const OPTS = { timeout: 30000, skip: SKIP };

let server;
let backend;

/** Protobuf clients get payloads as the raw bytes the publisher sent (here JSON text). */
const dec = (b) => JSON.parse(Buffer.from(b).toString());
const clients = [];

before(async () => {
  if (SKIP) return;
  const { startServer } = await import('./lib/harness.mjs');
  server = await startServer({
    presence: true,
    join_leave: true,
    history_size: 100,
    history_lifetime: 300,
    history_recover: true,
  });
  backend = await startBackend();
});

after(async () => {
  for (const c of clients) c.disconnect();
  if (backend) await backend.stop();
  if (server) await server.stop();
});

/** A ws class that remembers its instances, so a test can cut the socket under the client. */
function trackingWebSocket(list) {
  return class TrackingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      list.push(this);
    }
  };
}

test('2.8.5 protobuf: private subscribe, publication, presence with chan_info, recovery', OPTS, async () => {
  const sockets = [];
  backend.on('/centrifuge/subscribe', 'pb', (req) => ({
    status: 200,
    body: {
      channels: req.body.channels.map((channel) => ({
        channel,
        token: server.token({ client: req.body.client, channel, info: { role: 'pb' } }),
      })),
    },
  }));
  const c = new Centrifuge2(`${server.wsUrl}?format=protobuf`, {
    protocol: 'protobuf',
    websocket: trackingWebSocket(sockets),
    xmlhttprequest: XMLHttpRequest,
    subscribeEndpoint: backend.subscribeEndpoint,
    subscribeParams: { case: 'pb' },
    minRetry: 100,
    maxRetry: 500,
  });
  clients.push(c);
  c.setToken(server.token({ sub: 'pb2', info: { name: 'two' } }));
  const connected = waitEvent(c, 'connect');
  c.connect();
  const ctx = await connected;
  assert.match(ctx.client, /^[0-9a-f-]{36}$/);

  const sub = c.subscribe('$pbroom');
  const pubs = [];
  sub.on('publish', (p) => pubs.push(dec(p.data)));
  await waitEvent(sub, 'subscribe');

  await apiV1(server, 'publish', { channel: '$pbroom', data: { n: 0 } });
  await until(() => pubs.length === 1, { what: 'first publication' });
  assert.deepEqual(pubs[0], { n: 0 });

  const presence = await sub.presence();
  const me = Object.values(presence.presence).find((i) => i.client === ctx.client);
  assert.ok(me, 'this client is in presence');
  assert.deepEqual(dec(me.chan_info ?? me.chanInfo), { role: 'pb' });

  // Cut the socket, publish while the client is away, let it reconnect and recover.
  const resubscribed = waitEvent(sub, 'subscribe', { pred: (x) => x.isResubscribe === true });
  sockets[sockets.length - 1].terminate();
  for (let n = 1; n <= 5; n++) await apiV1(server, 'publish', { channel: '$pbroom', data: { n } });
  const again = await resubscribed;
  assert.equal(again.recovered, true);
  await until(() => pubs.length === 6, { what: 'recovered publications' });
  assert.deepEqual(pubs.map((p) => p.n), [0, 1, 2, 3, 4, 5]);
});

test('5.8.0 protobuf: subscribe with getToken, publication, presence with chan_info, recovery', OPTS, async () => {
  const sockets = [];
  const c = new Centrifuge5(server.wsUrl, {
    token: server.token({ sub: 'pb5', exp: nowSec() + 600 }),
    websocket: trackingWebSocket(sockets),
    minReconnectDelay: 100,
    maxReconnectDelay: 500,
  });
  c.on('error', () => {});
  clients.push(c);
  const connected = waitEvent(c, 'connected');
  c.connect();
  const ctx = await connected;
  assert.equal(ctx.transport, 'websocket');

  const sub = c.newSubscription('$pb5room', {
    getToken: async () => server.token({ sub: 'pb5', channel: '$pb5room', info: { role: 'five' } }),
  });
  const pubs = [];
  sub.on('publication', (p) => pubs.push(dec(p.data)));
  const subscribed = waitEvent(sub, 'subscribed');
  sub.subscribe();
  const sctx = await subscribed;
  assert.equal(sctx.recoverable, true);

  const r = await apiV2(server, 'publish', { channel: '$pb5room', data: { n: 0 } });
  assert.ok(r.result && r.result.offset >= 1, JSON.stringify(r));
  await until(() => pubs.length === 1, { what: 'first publication' });
  assert.deepEqual(pubs[0], { n: 0 });

  const presence = await sub.presence();
  const me = Object.values(presence.clients).find((i) => i.client === ctx.client);
  assert.ok(me, 'this client is in presence');
  assert.deepEqual(dec(me.chanInfo), { role: 'five' });

  const resubscribed = waitEvent(sub, 'subscribed');
  sockets[sockets.length - 1].terminate();
  for (let n = 1; n <= 5; n++) await apiV2(server, 'publish', { channel: '$pb5room', data: { n } });
  const again = await resubscribed;
  assert.equal(again.wasRecovering, true);
  assert.equal(again.recovered, true);
  await until(() => pubs.length === 6, { what: 'recovered publications' });
  assert.deepEqual(pubs.map((p) => p.n), [0, 1, 2, 3, 4, 5]);
});
