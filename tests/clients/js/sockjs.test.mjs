// centrifuge-js 2.8.5 with sockjs-client 1.6.1 against the server under test, in Node, over
// each SockJS sub-transport sockjs-client has in Node (TRANSPORTS.md §1.4 "Transports per
// environment"): websocket, xhr-streaming, xhr-polling and eventsource (npm `eventsource`), one
// at a time through `sockjsTransports`. Each client connects, subscribes, receives a publication
// made through the 2.x `/api`, publishes itself, and is disconnected by the API: the close frame's
// v1 advice reaches the client as reconnect false.
//
// centrifuge-js 5.8.0's `sockjs` transport (protocol v2, TRANSPORTS.md §1.5) runs over xhr-streaming
// and websocket, with and without `cf_protocol_version=v2` on the endpoint.
//
// ROTOR_TEST_SERVER=ref runs the same against the reference server (its API disconnect needs
// `-api_disconnect`, which the harness does not pass: that step is skipped there).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import SockJS from 'sockjs-client';
import Centrifuge from 'centrifuge2';
import { Centrifuge as Centrifuge5 } from 'centrifuge5';
import { UUID_V4, apiV1, apiV2, sleep, startServer, waitEvent } from './lib/harness.mjs';

const TIMEOUT = { timeout: 30000 };
const TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];

let server;
const clients = [];

before(async () => {
  server = await startServer({ publish: true, sockjs_heartbeat_delay: 2 });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(100);
  if (server) await server.stop();
});

function sockjsUrl() {
  return `http://127.0.0.1:${server.port}/connection/sockjs`;
}

function newClient(transport, user) {
  const c = new Centrifuge(sockjsUrl(), {
    sockjs: SockJS,
    sockjsTransports: [transport],
    minRetry: 300,
    maxRetry: 1000,
  });
  c.setToken(server.token({ sub: user }));
  clients.push(c);
  return c;
}

function tt(name, fn) {
  test(name, TIMEOUT, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      e.message += `\n--- ${server ? server.kind : 'server'} output (tail) ---\n${server ? server.output().slice(-3000) : ''}`;
      throw e;
    }
  });
}

for (const transport of TRANSPORTS) {
  tt(`2.8.5 over SockJS ${transport}: connect, subscribe, API and client publications, API disconnect`, async () => {
    const user = `u-${transport}`;
    const channel = `sjs-${transport}`;
    const c = newClient(transport, user);
    const connected = waitEvent(c, 'connect', { what: `connect over ${transport}` });
    c.connect();
    const ctx = await connected;
    assert.equal(ctx.transport, `sockjs-${transport}`, 'the requested SockJS transport is used');
    assert.match(ctx.client, UUID_V4);

    const sub = c.subscribe(channel);
    await waitEvent(sub, 'subscribe', { what: `subscribe to ${channel}` });

    // A publication through the server API, with a `%` and JS line separators in the data
    // (the eventsource escaping and the frame quoting).
    const data = { text: '100% done \u2028 <b>&', n: 1, list: [1, 'two', null] };
    const got = waitEvent(sub, 'publish', { what: 'API publication' });
    await apiV1(server, 'publish', { channel, data });
    assert.deepEqual((await got).data, data);

    // A publication from the client itself comes back to its subscription.
    const own = waitEvent(sub, 'publish', { pred: (p) => p.data.from === transport, what: 'own publication' });
    await sub.publish({ from: transport });
    assert.deepEqual((await own).data, { from: transport });

    if (server.kind === 'ref') return;
    const disconnected = waitEvent(c, 'disconnect', { what: 'disconnect after API disconnect' });
    await apiV1(server, 'disconnect', { user });
    const d = await disconnected;
    assert.equal(d.reason, 'force disconnect');
    assert.equal(d.reconnect, false, 'the v1 advice in the close frame says no reconnect');
    await sleep(500);
    assert.equal(c.isConnected(), false, 'stays disconnected');
  });
}

for (const [transport, query] of [['xhr-streaming', ''], ['websocket', '?cf_protocol_version=v2']]) {
  tt(`5.8.0 sockjs transport over ${transport}${query}: connect, subscribe, publication, API disconnect`, async (t) => {
    if (server.kind === 'ref') {
      t.skip('the reference server speaks client protocol v1 only');
      return;
    }
    const user = `v2-${transport}`;
    const channel = `sjs5-${transport}`;
    const c = new Centrifuge5([{ transport: 'sockjs', endpoint: `${sockjsUrl()}${query}` }], {
      token: server.token({ sub: user }),
      sockjs: SockJS,
      sockjsOptions: { transports: [transport] },
      minReconnectDelay: 100,
      maxReconnectDelay: 1000,
    });
    c.on('error', () => {});
    clients.push(c);
    const connected = waitEvent(c, 'connected', { what: `5.8.0 connected over ${transport}` });
    c.connect();
    const ctx = await connected;
    assert.equal(ctx.transport, `sockjs-${transport}`);
    assert.match(ctx.client, UUID_V4);
    const sub = c.newSubscription(channel);
    const subscribed = waitEvent(sub, 'subscribed', { what: 'subscribed' });
    sub.subscribe();
    await subscribed;
    const data = { text: '50% \u2029 </script>' };
    const got = waitEvent(sub, 'publication', { what: 'publication' });
    await apiV2(server, 'publish', { channel, data });
    assert.deepEqual((await got).data, data);
    const disconnected = waitEvent(c, 'disconnected', { what: 'disconnected by the API' });
    await apiV2(server, 'disconnect', { user });
    const d = await disconnected;
    assert.equal(d.reason, 'force disconnect', 'v2 close reasons are plain text');
    assert.ok(d.code >= 3500 && d.code < 4000, `a terminal code (no reconnect): ${JSON.stringify(d)}`);
    await sleep(500);
    assert.equal(c.state, 'disconnected', 'stays disconnected');
  });
}
