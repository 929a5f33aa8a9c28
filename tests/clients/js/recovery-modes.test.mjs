// Centrifugo 6 recovery and positioning options as centrifuge-js 5.8.0 sees them
// (CHANNELS-MODERN.md §3, §1.3): cache recovery (`force_recovery_mode: cache`) gives a client
// back from an outage only the latest publication, with `recovered` true; `auto_cache_recover`
// hands a fresh subscriber the latest publication without asking; `force_positioning` and
// `allow_positioning` make `subscribed` say positioned with a stream position; and a
// `getState` subscription (which sends flag 2) whose position cannot be recovered gets error
// 112, calls getState again and subscribes from the new position.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge5';
import { SERVER_KIND, apiV2, recordEvents, sleep, startServer, until, waitEvent } from './lib/harness.mjs';
import { makeLink, subscribeCommands } from './lib/recovery_helpers.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'the reference server speaks client protocol v1 only' : false;
const HISTORY = { history_size: 20, history_ttl: '300s', allow_subscribe_for_client: true };

let server;
const clients = [];

function tt(name, fn) {
  test(name, { timeout: 30000, skip: SKIP }, async () => {
    try {
      await fn();
    } catch (e) {
      if (server) e.message += `\n--- server (tail) ---\n${server.output().slice(-3000)}`;
      throw e;
    }
  });
}

before(async () => {
  if (SKIP) return;
  server = await startServer({
    channel: {
      namespaces: [
        { name: 'cache', ...HISTORY, force_recovery: true, force_recovery_mode: 'cache' },
        { name: 'auto', ...HISTORY, force_recovery: true, force_recovery_mode: 'cache', auto_cache_recover: true },
        { name: 'pos', ...HISTORY, force_positioning: true },
        { name: 'ask', ...HISTORY, allow_positioning: true },
        { name: 'closed', ...HISTORY },
        { name: 'stream', ...HISTORY, force_recovery: true, allow_history_for_client: true },
      ],
    },
  });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  if (server) await server.stop();
});

async function publish(channel, data) {
  const r = await apiV2(server, 'publish', { channel, data });
  assert.equal(r.error, undefined, JSON.stringify(r));
  return r.result;
}

function client(user, link) {
  const c = new Centrifuge(server.wsUrl, {
    token: server.token({ sub: user }),
    minReconnectDelay: 100,
    maxReconnectDelay: 300,
    websocket: link ? link.WebSocket : WebSocket,
  });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

tt('5.8.0: cache recovery after an outage delivers only the latest publication, recovered', async () => {
  const link = makeLink();
  const c = client('cache-user', link);
  const sub = c.newSubscription('cache:prices');
  sub.on('error', () => {});
  const got = [];
  sub.on('publication', (ctx) => got.push(ctx.data.n));
  const subscribed = recordEvents(sub, ['subscribed']);
  sub.subscribe();
  c.connect();
  await until(() => subscribed.length >= 1, { what: 'first subscribed' });
  assert.equal(subscribed[0].ctx.recoverable, true, JSON.stringify(subscribed[0].ctx));
  await publish('cache:prices', { n: 0 });
  await until(() => got.length === 1, { what: 'the live publication' });
  const connecting = waitEvent(c, 'connecting', { what: 'connecting after the cut' });
  link.cut();
  await connecting;
  for (let n = 1; n <= 5; n++) await publish('cache:prices', { n });
  await until(() => link.attemptsWhileOffline > 0, { what: 'a reconnect attempt while cut off' });
  link.restore();
  await until(() => subscribed.length >= 2, { what: 'subscribed again' });
  const ctx = subscribed[1].ctx;
  assert.equal(ctx.wasRecovering, true, JSON.stringify(ctx));
  assert.equal(ctx.recovered, true, JSON.stringify(ctx));
  assert.equal(ctx.streamPosition.offset, 6, JSON.stringify(ctx));
  await until(() => got.length >= 2, { what: 'the recovered publication' });
  await sleep(150);
  assert.deepEqual(got, [0, 5], 'only the latest of the missed publications');
  // The resubscribe asked to recover from offset 1.
  const cmds = subscribeCommands(link, 'cache:prices');
  assert.equal(cmds[1].recover, true);
  assert.equal(cmds[1].offset, 1);
  // Live publications continue.
  await publish('cache:prices', { n: 6 });
  await until(() => got.length >= 3, { what: 'the next live publication' });
  assert.deepEqual(got, [0, 5, 6]);
  c.disconnect();
});

tt('5.8.0: auto_cache_recover gives a fresh subscriber the latest publication', async () => {
  for (let n = 1; n <= 3; n++) await publish('auto:state', { n });
  const c = client('auto-user');
  const sub = c.newSubscription('auto:state');
  const got = [];
  sub.on('publication', (ctx) => got.push(ctx.data.n));
  const subscribed = waitEvent(sub, 'subscribed', { what: 'subscribed' });
  sub.subscribe();
  c.connect();
  const ctx = await subscribed;
  assert.equal(ctx.wasRecovering, true, JSON.stringify(ctx));
  assert.equal(ctx.recovered, true, JSON.stringify(ctx));
  assert.equal(ctx.hasRecoveredPublications, true, JSON.stringify(ctx));
  await until(() => got.length >= 1, { what: 'the latest publication' });
  await sleep(100);
  assert.deepEqual(got, [3]);
  c.disconnect();
});

tt('5.8.0: force_positioning and allow_positioning give positioned subscriptions', async () => {
  await publish('pos:a', { n: 1 });
  await publish('ask:a', { n: 1 });
  const c = client('pos-user');
  const cases = [
    ['pos:a', {}, true],
    ['ask:a', { positioned: true }, true],
    ['ask:b', {}, false],
    ['closed:a', { positioned: true }, false],
  ];
  const contexts = [];
  for (const [ch, opts] of cases) {
    const sub = c.newSubscription(ch, opts);
    contexts.push(waitEvent(sub, 'subscribed', { what: `subscribed to ${ch}` }));
    sub.subscribe();
  }
  c.connect();
  for (const [i, [ch, , positioned]] of cases.entries()) {
    const ctx = await contexts[i];
    assert.equal(ctx.positioned, positioned, `${ch}: ${JSON.stringify(ctx)}`);
    assert.equal(ctx.recoverable, false, `${ch}: ${JSON.stringify(ctx)}`);
    if (positioned) {
      assert.equal(ctx.streamPosition.offset, ch === 'ask:b' ? 0 : 1, `${ch}: ${JSON.stringify(ctx)}`);
      assert.ok(ctx.streamPosition.epoch.length > 0, `${ch}: ${JSON.stringify(ctx)}`);
    } else {
      assert.equal(ctx.streamPosition, undefined, `${ch}: ${JSON.stringify(ctx)}`);
    }
  }
  c.disconnect();
});

tt('5.8.0: getState with an unrecoverable position gets error 112, reloads state and subscribes', async () => {
  await publish('stream:doc', { n: 1 });
  await publish('stream:doc', { n: 2 });
  const history = await apiV2(server, 'history', { channel: 'stream:doc', limit: 0 });
  const top = history.result;
  const states = [];
  const getState = async () => {
    states.push(Date.now());
    // First a position from another epoch (state saved before a history loss), then the truth.
    return states.length === 1 ? { offset: 1, epoch: 'lost-epoch' } : { offset: top.offset, epoch: top.epoch };
  };
  const link = makeLink();
  const c = client('state-user', link);
  const errors = [];
  const sub = c.newSubscription('stream:doc', { getState });
  sub.on('error', (e) => errors.push(e));
  const got = [];
  sub.on('publication', (ctx) => got.push(ctx.data.n));
  const subscribed = waitEvent(sub, 'subscribed', { what: 'subscribed after reloading state' });
  sub.subscribe();
  c.connect();
  const ctx = await subscribed;
  assert.equal(states.length, 2, 'getState called again after the refusal');
  assert.deepEqual(errors, [], 'the 112 is handled by the SDK, not an error for the app');
  assert.equal(ctx.wasRecovering, true, JSON.stringify(ctx));
  assert.equal(ctx.recovered, true, JSON.stringify(ctx));
  const cmds = subscribeCommands(link, 'stream:doc');
  assert.equal(cmds.length, 2, JSON.stringify(cmds));
  assert.equal(cmds[0].flag & 2, 2, 'getState subscriptions reject unrecovered positions');
  assert.equal(cmds[0].epoch, 'lost-epoch');
  assert.equal(cmds[1].epoch, top.epoch);
  await publish('stream:doc', { n: 3 });
  await until(() => got.length >= 1, { what: 'a live publication' });
  assert.deepEqual(got, [3]);
  c.disconnect();
});
