// centrifuge-js 5.8.0 (client protocol v2) on Centrifugo 6 channel features (CHANNELS-MODERN.md
// §3): a subscription with `tagsFilter` receives only the API publications whose tags match,
// with their tags; a name that the namespace's `channel_regex` refuses ends the subscription
// with code 107; a publication the namespace's `publication_data_format` refuses is error 107.
//
// The reference server speaks protocol v1 only: under ROTOR_TEST_SERVER=ref this file is skipped.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge5';
import { SERVER_KIND, apiV2, sleep, startServer, waitEvent } from './lib/harness.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'the reference server speaks client protocol v1 only' : false;
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
    namespaces: [
      { name: 'quotes', allow_tags_filter: true },
      { name: 'tick', channel_regex: '^[A-Z]{1,5}$', allow_publish_for_client: true },
      { name: 'obj', publication_data_format: 'json_object', allow_publish_for_client: true },
    ],
  });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  if (server) await server.stop();
});

test('5.8.0: tagsFilter delivers only the matching publications, with their tags', TIMEOUT, async () => {
  const c = await connected('tf-user');
  const sub = c.newSubscription('quotes:all', {
    tagsFilter: {
      op: 'and',
      nodes: [
        { key: 'ticker', cmp: 'in', vals: ['AAPL', 'GOOG'] },
        { key: 'price', cmp: 'gt', val: '10' },
      ],
    },
  });
  const got = [];
  sub.on('publication', (ctx) => got.push(ctx));
  const subscribed = waitEvent(sub, 'subscribed');
  sub.subscribe();
  await subscribed;
  const sent = [
    [{ ticker: 'AAPL', price: '11' }, 1],
    [{ ticker: 'MSFT', price: '500' }, 2],
    [{ ticker: 'GOOG', price: '9.99' }, 3],
    [{ ticker: 'GOOG', price: '10.5' }, 4],
  ];
  for (const [tags, n] of sent) {
    const r = await apiV2(server, 'publish', { channel: 'quotes:all', data: { n }, tags });
    assert.equal(r.error, undefined, JSON.stringify(r));
  }
  const last = await apiV2(server, 'publish', { channel: 'quotes:all', data: { n: 5 }, tags: { ticker: 'AAPL', price: '99' } });
  assert.equal(last.error, undefined);
  const deadline = Date.now() + 5000;
  while (got.length < 3 && Date.now() < deadline) await sleep(20);
  assert.deepEqual(got.map((p) => p.data.n), [1, 4, 5]);
  assert.deepEqual(got[1].tags, { ticker: 'GOOG', price: '10.5' });
  assert.equal(sub.state, 'subscribed');
});

test('5.8.0: a channel name channel_regex refuses is code 107', TIMEOUT, async () => {
  const c = await connected('re-user');
  const ok = c.newSubscription('tick:AAPL');
  const okSubscribed = waitEvent(ok, 'subscribed');
  ok.subscribe();
  await okSubscribed;
  const bad = c.newSubscription('tick:aapl');
  bad.on('error', () => {});
  const unsubscribed = waitEvent(bad, 'unsubscribed');
  bad.subscribe();
  const ctx = await unsubscribed;
  assert.equal(ctx.code, 107, JSON.stringify(ctx));
  assert.equal(c.state, 'connected', 'the connection stays');
});

test('5.8.0: publication_data_format json_object refuses an array with 107', TIMEOUT, async () => {
  const c = await connected('fmt-user');
  const sub = c.newSubscription('obj:1');
  const subscribed = waitEvent(sub, 'subscribed');
  sub.subscribe();
  await subscribed;
  await assert.rejects(sub.publish([1, 2]), (e) => e.code === 107);
  const got = waitEvent(sub, 'publication');
  await sub.publish({ ok: true });
  assert.deepEqual((await got).data, { ok: true });
});
