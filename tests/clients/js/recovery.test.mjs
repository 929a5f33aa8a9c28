// Recovery, join/leave and presence as the real clients see them (PROTOCOL.md §2.5, §7.2,
// §10.8 #9–10): centrifuge-js 2.8.5 (protocol v1, in both position forms: seq/gen by default,
// offset with `v3_use_offset`) and 5.8.0 (protocol v2).
//
// Recovery: the client is subscribed to a recoverable channel (history_size 100, lifetime 300,
// history_recover) and has one publication; its socket is killed (no close frame, so it reconnects
// by itself); 20 publications go out through the server API while it is away; then it is let
// back. All 20 must arrive in order, once, with `recovered` true in the app's subscribe event. With
// history_size 5 the same outage must reach the app as `recovered` false.
//
// Join/leave and presence: two clients of the same version in a `$` channel whose subscription
// tokens carry `info`; joins and leaves carry that chan_info (and the connection token's info),
// and presence lists both.
//
// Under ROTOR_TEST_SERVER=ref the 5.x tests and the offset-form test are skipped (the reference
// speaks protocol v1 only and is started without `v3_use_offset`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import Centrifuge from 'centrifuge2';
import { Centrifuge as Centrifuge5 } from 'centrifuge5';
import { SERVER_KIND, apiV1, apiV2, recordEvents, sleep, startServer, until, waitEvent } from './lib/harness.mjs';
import { makeLink, subscribeCommands } from './lib/recovery_helpers.mjs';

const REF = SERVER_KIND === 'ref';
const V2_SKIP = REF ? 'the reference server speaks client protocol v1 only' : false;
const OFFSET_SKIP = REF ? 'the reference server is started without v3_use_offset' : false;

const RECOVER = { history_size: 100, history_lifetime: 300, history_recover: true };
const SHORT = { history_size: 5, history_lifetime: 300, history_recover: true };
const ROOM = { presence: true, join_leave: true };

let seqServer; // 2.x default: seq/gen positions
let offsetServer; // v3_use_offset: true
let shortServer; // history_size 5
const clients = [];
const servers = () => [seqServer, offsetServer, shortServer].filter(Boolean);

function tt(name, opts, fn) {
  test(name, { timeout: 30000, ...opts }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      for (const s of servers()) e.message += `\n--- server on ${s.port} (tail) ---\n${s.output().slice(-3000)}`;
      throw e;
    }
  });
}

before(async () => {
  seqServer = await startServer({ ...RECOVER, ...ROOM });
  if (!REF) offsetServer = await startServer({ ...RECOVER, v3_use_offset: true });
  shortServer = await startServer({ ...SHORT });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  for (const s of servers()) await s.stop();
});

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Publishes {n} for each n in `ns` through the API of the client's generation, one at a time. */
async function publishAll(server, channel, ns, generation) {
  for (const n of ns) {
    if (generation === 1) {
      await apiV1(server, 'publish', { channel, data: { n } });
    } else {
      const r = await apiV2(server, 'publish', { channel, data: { n } });
      assert.equal(r.error, undefined, `publish ${n}: ${JSON.stringify(r)}`);
    }
  }
}

// ---- centrifuge-js 2.8.5 ----

/**
 * A 2.x client subscribed to `channel` with one live publication (n = 0), cut off while 20 more
 * are published, then let back. Resolves once it has resubscribed.
 */
async function outage2(server, channel, user) {
  const link = makeLink();
  const c = new Centrifuge(server.wsUrl, { websocket: link.WebSocket, minRetry: 100, maxRetry: 300 });
  clients.push(c);
  c.setToken(server.token({ sub: user }));
  const sub = c.subscribe(channel);
  const got = [];
  sub.on('publish', (ctx) => got.push(ctx.data.n));
  const subscribes = recordEvents(sub, ['subscribe', 'error']);
  c.connect();
  await until(() => subscribes.length >= 1, { what: `first subscribe to ${channel}` });
  assert.equal(subscribes[0].event, 'subscribe', JSON.stringify(subscribes[0].ctx));
  await publishAll(server, channel, [0], 1);
  await until(() => got.length === 1, { what: 'the live publication before the outage' });

  const disconnected = waitEvent(c, 'disconnect', { what: 'disconnect after the socket was killed' });
  link.cut();
  const disc = await disconnected;
  assert.equal(disc.reconnect, true, 'an abnormal closure makes the client reconnect');
  await publishAll(server, channel, range(1, 20), 1);
  await until(() => link.attemptsWhileOffline > 0, { what: 'a reconnect attempt while cut off' });
  link.restore();
  await until(() => subscribes.length >= 2, { timeoutMs: 10000, what: 'resubscribe after reconnect' });
  const resub = subscribes[1];
  assert.equal(resub.event, 'subscribe', JSON.stringify(resub.ctx));
  assert.equal(resub.ctx.isResubscribe, true);
  return { c, sub, got, ctx: resub.ctx, link };
}

async function recovery2(server, channel, position) {
  const { c, got, ctx, link } = await outage2(server, channel, `u-${channel}`);
  assert.equal(ctx.recovered, true, `subscribe ctx: ${JSON.stringify(ctx)}`);
  await until(() => got.length >= 21, { what: '21 publications' });
  assert.deepEqual(got, range(0, 20), 'every missed publication once, in order');
  // The resubscribe asked for recovery from publication 0, position 1 of the stream.
  const cmds = subscribeCommands(link, channel);
  assert.equal(cmds.length, 2);
  assert.equal(cmds[1].recover, true);
  assert.equal(typeof cmds[1].epoch, 'string');
  assert.ok(cmds[1].epoch.length > 0);
  // (The reference server runs its library's default, offset positions, whatever the config.)
  const key = REF && cmds[1].seq === undefined ? 'offset' : position;
  assert.equal(cmds[1][key], 1, `resubscribe carries ${key}: ${JSON.stringify(cmds[1])}`);
  // Live delivery goes on after the recovery, without a duplicate.
  await publishAll(server, channel, [21], 1);
  await until(() => got.length >= 22, { what: 'the live publication after the recovery' });
  await sleep(100);
  assert.deepEqual(got, range(0, 21));
  c.disconnect();
}

tt('2.8.5 (seq/gen): 20 publications missed while cut off arrive in order with recovered true', {}, async () => {
  await recovery2(seqServer, 'feed-2-seq', 'seq');
});

tt('2.8.5 (v3_use_offset): 20 missed publications arrive in order with recovered true', { skip: OFFSET_SKIP }, async () => {
  await recovery2(offsetServer, 'feed-2-offset', 'offset');
});

tt('2.8.5: with history too short, recovered false reaches the subscribe handler', {}, async () => {
  const { c, got, ctx } = await outage2(shortServer, 'feed-2-short', 'u-short-2');
  assert.equal(ctx.recovered, false, `subscribe ctx: ${JSON.stringify(ctx)}`);
  assert.equal(ctx.isResubscribe, true);
  // Whatever it got is in order and without duplicates; live delivery goes on.
  await publishAll(shortServer, 'feed-2-short', [21], 1);
  await until(() => got[got.length - 1] === 21, { what: 'the live publication after the failed recovery' });
  for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], `in order: ${got}`);
  c.disconnect();
});

/** An onPrivateSubscribe hook that gives every requested channel a token with `info`. */
function privateTokens(server, info) {
  return (ctx, cb) => {
    const { client, channels } = ctx.data;
    cb({ status: 200, data: { channels: channels.map((channel) => ({ channel, token: server.token({ client, channel, info }) })) } });
  };
}

tt('2.8.5: join and leave carry chan_info; presence shows conn_info and chan_info', {}, async () => {
  const room = '$room-2';
  const newClient = (user, connInfo, chanInfo) => {
    const c = new Centrifuge(seqServer.wsUrl, {
      websocket: WebSocket,
      onPrivateSubscribe: privateTokens(seqServer, chanInfo),
      minRetry: 100,
      maxRetry: 300,
    });
    clients.push(c);
    c.setToken(seqServer.token({ sub: user, info: connInfo }));
    return c;
  };
  const a = newClient('u-ann', { name: 'Ann' }, { role: 'host' });
  const b = newClient('u-ben', { name: 'Ben' }, { role: 'guest' });
  const aConnected = waitEvent(a, 'connect');
  a.connect();
  const aId = (await aConnected).client;
  const subA = a.subscribe(room);
  const events = recordEvents(subA, ['join', 'leave']);
  await waitEvent(subA, 'subscribe', { what: 'A subscribed' });
  const aInfo = { user: 'u-ann', client: aId, conn_info: { name: 'Ann' }, chan_info: { role: 'host' } };
  await until(() => events.length >= 1, { what: "A's own join" });
  assert.equal(events[0].event, 'join');
  assert.deepEqual(events[0].ctx.info, aInfo, 'v1: the subscriber gets its own join');

  const bConnected = waitEvent(b, 'connect');
  b.connect();
  const bId = (await bConnected).client;
  const subB = b.subscribe(room);
  await waitEvent(subB, 'subscribe', { what: 'B subscribed' });
  const bInfo = { user: 'u-ben', client: bId, conn_info: { name: 'Ben' }, chan_info: { role: 'guest' } };
  await until(() => events.length >= 2, { what: "B's join seen by A" });
  assert.equal(events[1].event, 'join');
  assert.deepEqual(events[1].ctx.info, bInfo);

  const presence = await subA.presence();
  assert.deepEqual(presence, { presence: { [aId]: aInfo, [bId]: bInfo } });
  assert.deepEqual(await subB.presenceStats(), { num_clients: 2, num_users: 2 });
  assert.deepEqual((await apiV1(seqServer, 'presence', { channel: room })).presence, { [aId]: aInfo, [bId]: bInfo });

  subB.unsubscribe();
  await until(() => events.length >= 3, { what: "B's leave seen by A" });
  assert.equal(events[2].event, 'leave');
  assert.deepEqual(events[2].ctx.info, bInfo);
  assert.deepEqual(await subA.presenceStats(), { num_clients: 1, num_users: 1 });
  a.disconnect();
  b.disconnect();
});

// ---- centrifuge-js 5.8.0 ----

/** Like outage2 for a 5.x client; `opts` go to newSubscription. */
async function outage5(server, channel, user, opts = {}) {
  const link = makeLink();
  const c = new Centrifuge5(server.wsUrl, {
    token: server.token({ sub: user }),
    websocket: link.WebSocket,
    minReconnectDelay: 100,
    maxReconnectDelay: 300,
  });
  c.on('error', () => {}); // transport errors while cut off are expected
  clients.push(c);
  const sub = c.newSubscription(channel, { recoverable: true, ...opts });
  sub.on('error', () => {});
  const got = [];
  sub.on('publication', (ctx) => got.push(ctx.data.n));
  const subscribed = recordEvents(sub, ['subscribed']);
  sub.subscribe();
  c.connect();
  await until(() => subscribed.length >= 1, { what: `first subscribed to ${channel}` });
  assert.equal(subscribed[0].ctx.recoverable, true, `first subscribed ctx: ${JSON.stringify(subscribed[0].ctx)}`);
  assert.equal(subscribed[0].ctx.wasRecovering, false);
  await publishAll(server, channel, [0], 2);
  await until(() => got.length === 1, { what: 'the live publication before the outage' });

  const connecting = waitEvent(c, 'connecting', { what: 'connecting after the socket was killed' });
  link.cut();
  await connecting;
  await publishAll(server, channel, range(1, 20), 2);
  await until(() => link.attemptsWhileOffline > 0, { what: 'a reconnect attempt while cut off' });
  link.restore();
  await until(() => subscribed.length >= 2, { timeoutMs: 10000, what: 'subscribed again after reconnect' });
  return { c, sub, got, ctx: subscribed[1].ctx, link };
}

tt('5.8.0: 20 publications missed while cut off arrive in order; subscribed says recovered', { skip: V2_SKIP }, async () => {
  const channel = 'feed-5';
  const { c, got, ctx, link } = await outage5(seqServer, channel, 'u-rec-5');
  assert.equal(ctx.wasRecovering, true, `subscribed ctx: ${JSON.stringify(ctx)}`);
  assert.equal(ctx.recovered, true, `subscribed ctx: ${JSON.stringify(ctx)}`);
  assert.equal(ctx.recoverable, true);
  assert.equal(ctx.streamPosition.offset, 21, `the stream top: ${JSON.stringify(ctx)}`);
  await until(() => got.length >= 21, { what: '21 publications' });
  assert.deepEqual(got, range(0, 20), 'every missed publication once, in order');
  const cmds = subscribeCommands(link, channel);
  assert.equal(cmds.length, 2);
  assert.equal(cmds[1].recover, true);
  assert.equal(cmds[1].offset, 1);
  await publishAll(seqServer, channel, [21], 2);
  await until(() => got.length >= 22, { what: 'the live publication after the recovery' });
  await sleep(100);
  assert.deepEqual(got, range(0, 21));
  c.disconnect();
});

tt('5.8.0: with history too short, subscribed says wasRecovering but not recovered', { skip: V2_SKIP }, async () => {
  const { c, got, ctx } = await outage5(shortServer, 'feed-5-short', 'u-short-5');
  assert.equal(ctx.wasRecovering, true, `subscribed ctx: ${JSON.stringify(ctx)}`);
  assert.equal(ctx.recovered, false, `subscribed ctx: ${JSON.stringify(ctx)}`);
  await publishAll(shortServer, 'feed-5-short', [21], 2);
  await until(() => got[got.length - 1] === 21, { what: 'the live publication after the failed recovery' });
  for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], `in order: ${got}`);
  c.disconnect();
});

tt('5.8.0: joinLeave subscriptions see joins and leaves with chanInfo; presence has connInfo and chanInfo', { skip: V2_SKIP }, async () => {
  const room = '$room-5';
  const newClient = (user, connInfo, chanInfo, joinLeave) => {
    const c = new Centrifuge5(seqServer.wsUrl, {
      token: seqServer.token({ sub: user, info: connInfo }),
      websocket: WebSocket,
      minReconnectDelay: 100,
      maxReconnectDelay: 300,
    });
    c.on('error', () => {});
    clients.push(c);
    const sub = c.newSubscription(room, {
      joinLeave,
      getToken: async () => seqServer.token({ sub: user, channel: room, info: chanInfo }),
    });
    sub.on('error', () => {});
    return { c, sub };
  };
  const a = newClient('u-ada', { name: 'Ada' }, { role: 'host' }, true);
  const b = newClient('u-bo', { name: 'Bo' }, { role: 'guest' }, false);
  const events = recordEvents(a.sub, ['join', 'leave']);
  const bEvents = recordEvents(b.sub, ['join', 'leave']);
  const aConnected = waitEvent(a.c, 'connected');
  a.c.connect();
  const aId = (await aConnected).client;
  const aSubscribed = waitEvent(a.sub, 'subscribed');
  a.sub.subscribe();
  await aSubscribed;
  const bConnected = waitEvent(b.c, 'connected');
  b.c.connect();
  const bId = (await bConnected).client;
  const bSubscribed = waitEvent(b.sub, 'subscribed');
  b.sub.subscribe();
  await bSubscribed;

  const bInfo = { user: 'u-bo', client: bId, connInfo: { name: 'Bo' }, chanInfo: { role: 'guest' } };
  await until(() => events.some((e) => e.event === 'join' && e.ctx.info.client === bId), { what: "B's join seen by A" });
  const join = events.find((e) => e.event === 'join' && e.ctx.info.client === bId);
  assert.equal(join.ctx.channel, room);
  assert.deepEqual(join.ctx.info, bInfo);

  const presence = await a.sub.presence();
  assert.deepEqual(Object.keys(presence.clients).sort(), [aId, bId].sort());
  assert.deepEqual(presence.clients[aId].connInfo, { name: 'Ada' });
  assert.deepEqual(presence.clients[aId].chanInfo, { role: 'host' });
  assert.deepEqual(presence.clients[bId].connInfo, { name: 'Bo' });
  assert.deepEqual(presence.clients[bId].chanInfo, { role: 'guest' });
  assert.deepEqual(await b.sub.presenceStats(), { numClients: 2, numUsers: 2 });
  const api = await apiV2(seqServer, 'presence', { channel: room });
  assert.deepEqual(api.result.presence[bId], { user: 'u-bo', client: bId, conn_info: { name: 'Bo' }, chan_info: { role: 'guest' } });

  b.sub.unsubscribe();
  await until(() => events.some((e) => e.event === 'leave'), { what: "B's leave seen by A" });
  const leave = events.find((e) => e.event === 'leave');
  assert.deepEqual(leave.ctx.info, bInfo);
  // B did not ask for join/leave: it saw none.
  assert.deepEqual(bEvents, []);
  a.c.disconnect();
  b.c.disconnect();
});
