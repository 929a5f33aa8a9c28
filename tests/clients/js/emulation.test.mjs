// centrifuge-js 5.8.0 over the bidirectional emulation (TRANSPORTS.md §2.7) against the server
// under test, in Node: `http_stream` with the JSON and the Protobuf build, and `sse` with the npm
// `eventsource` package; every command after the connect travels through an absolute
// `emulationEndpoint`. Each client connects, subscribes, receives publications sent through the
// HTTP API, publishes itself, reads presence, and is disconnected through the API (the
// disconnect push carries the code and reason).
//
// The reference server speaks protocol v1 only: under ROTOR_TEST_SERVER=ref this file is skipped.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import EventSource from 'eventsource';
import { Centrifuge } from 'centrifuge5';
import { Centrifuge as CentrifugePb } from 'centrifuge5/build/protobuf';
import { SERVER_KIND, UUID_V4, apiV2, sleep, startServer, until, waitEvent } from './lib/harness.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'the reference server speaks client protocol v1 only' : false;
const TIMEOUT = { timeout: 30000, skip: SKIP };

let server;
const clients = [];

before(async () => {
  if (SKIP) return;
  server = await startServer({
    presence: true,
    publish: true,
    http_stream: { enabled: true },
    sse: { enabled: true },
  });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  if (server) await server.stop();
});

const base = () => `http://127.0.0.1:${server.port}`;

function newClient(Impl, user, transport, extra = {}) {
  const c = new Impl([{ transport, endpoint: `${base()}/connection/${transport}` }], {
    token: server.token({ sub: user }),
    emulationEndpoint: `${base()}/emulation`,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    ...extra,
  });
  c.errors = [];
  c.on('error', (ctx) => c.errors.push(ctx)); // an 'error' without a listener would throw
  clients.push(c);
  return c;
}

/** The whole scenario for one client: `enc`/`dec` map JSON values to the client's payloads. */
async function scenario({ Impl, transport, user, channel, extra, enc, dec }) {
  const c = newClient(Impl, user, transport, extra);
  const connected = waitEvent(c, 'connected', { what: `${transport} connected` });
  c.connect();
  const ctx = await connected;
  assert.equal(ctx.transport, transport);
  assert.match(ctx.client, UUID_V4);

  const sub = c.newSubscription(channel);
  const subscribed = waitEvent(sub, 'subscribed', { what: 'subscribed' });
  sub.subscribe();
  await subscribed;

  // A publication through the HTTP API.
  let pub = waitEvent(sub, 'publication', { what: 'API publication' });
  await apiV2(server, 'publish', { channel, data: { from: 'api', user } });
  assert.deepEqual(dec((await pub).data), { from: 'api', user });

  // The client's own publish (through /emulation) comes back on the stream.
  pub = waitEvent(sub, 'publication', { what: 'own publication' });
  await sub.publish(enc({ from: 'client' }));
  assert.deepEqual(dec((await pub).data), { from: 'client' });

  // Presence lists this client.
  const presence = await sub.presence();
  assert.deepEqual(Object.keys(presence.clients), [ctx.client]);
  assert.equal(presence.clients[ctx.client].user, user);

  // A disconnect through the API arrives as the push (terminal code: no reconnect).
  const disconnected = waitEvent(c, 'disconnected', { what: 'disconnected' });
  await apiV2(server, 'disconnect', { user });
  const d = await disconnected;
  assert.equal(d.code, 3503);
  assert.equal(d.reason, 'force disconnect');
  await sleep(300);
  assert.equal(c.state, 'disconnected', 'a terminal code does not reconnect');
  await until(async () => {
    const info = await apiV2(server, 'presence', { channel });
    return Object.keys(info.result.presence || {}).length === 0;
  }, { what: `${user} gone from presence` });
  assert.deepEqual(c.errors, []);
}

const json = { enc: (v) => v, dec: (v) => v };
const bytes = {
  enc: (v) => new TextEncoder().encode(JSON.stringify(v)),
  dec: (b) => JSON.parse(Buffer.from(b).toString()),
};

test('http_stream, JSON', TIMEOUT, () =>
  scenario({ Impl: Centrifuge, transport: 'http_stream', user: 'hs-json', channel: 'hs-json', ...json }));

test('http_stream, Protobuf', TIMEOUT, () =>
  scenario({ Impl: CentrifugePb, transport: 'http_stream', user: 'hs-pb', channel: 'hs-pb', ...bytes }));

test('sse with the eventsource package', TIMEOUT, () =>
  scenario({
    Impl: Centrifuge,
    transport: 'sse',
    user: 'sse-user',
    channel: 'sse-chan',
    extra: { eventsource: EventSource },
    ...json,
  }));
