// centrifuge-js 5.8.0 (client protocol v2) against client command rate limits
// (`client.rate_limit`, Centrifugo PRO's key shape; CHANNELS-MODERN.md §4.2): a publish over
// its bucket is rejected with code 111, and a subscribe refused with the temporary 111 is
// retried by the SDK with backoff until the bucket has a token again.
//
// The reference server has no rate limits: under ROTOR_TEST_SERVER=ref this file is skipped.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge5';
import { SERVER_KIND, sleep, startServer, waitEvent } from './lib/harness.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'the reference server has no rate limits' : false;
const TIMEOUT = { timeout: 30000, skip: SKIP };

let server;
const clients = [];

function connected(user) {
  const c = new Centrifuge(server.wsUrl, {
    token: server.token({ sub: user }),
    websocket: WebSocket,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
  });
  c.on('error', () => {});
  clients.push(c);
  const done = waitEvent(c, 'connected');
  c.connect();
  return done.then(() => c);
}

before(async () => {
  if (SKIP) return;
  server = await startServer({
    publish: true,
    client: {
      rate_limit: {
        client_command: {
          enabled: true,
          publish: { enabled: true, buckets: [{ interval: '1m', rate: 2 }] },
          subscribe: { enabled: true, buckets: [{ interval: '1s', rate: 1 }] },
        },
      },
    },
  });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  if (server) await server.stop();
});

test('5.8.0: a publish over its bucket is rejected with code 111', TIMEOUT, async () => {
  const c = await connected('rl-pub');
  await c.publish('news', { n: 1 });
  await c.publish('news', { n: 2 });
  await assert.rejects(c.publish('news', { n: 3 }), (e) => e.code === 111 && e.message === 'too many requests');
  assert.equal(c.state, 'connected', 'the connection stays');
});

test('5.8.0: a subscribe refused with the temporary 111 is retried until it passes', TIMEOUT, async () => {
  const c = await connected('rl-sub');
  const first = c.newSubscription('room-a');
  const firstSubscribed = waitEvent(first, 'subscribed');
  first.subscribe();
  await firstSubscribed;
  const second = c.newSubscription('room-b', { minResubscribeDelay: 100, maxResubscribeDelay: 400 });
  const errors = [];
  second.on('error', (ctx) => errors.push(ctx.error));
  const subscribed = waitEvent(second, 'subscribed');
  const started = Date.now();
  second.subscribe();
  await subscribed;
  assert.ok(errors.length >= 1, 'refused at least once first');
  assert.ok(errors.every((e) => e.code === 111 && e.temporary === true), JSON.stringify(errors));
  // The one-per-second bucket let it through only once a token was back.
  assert.ok(Date.now() - started >= 500, `subscribed after ${Date.now() - started} ms`);
  assert.equal(second.state, 'subscribed');
});
