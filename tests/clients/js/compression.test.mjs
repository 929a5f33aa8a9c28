// WebSocket permessage-deflate (CHANNELS-MODERN.md §2) with real clients: the npm `ws` client
// (perMessageDeflate on by default; it offers `client_max_window_bits` and compresses its own
// messages of 1024 bytes and more) and centrifuge-js 5.8.0 over it, against a server with
// `websocket_compression` on.
//
// The reference server speaks protocol v1 only: under ROTOR_TEST_SERVER=ref this file is skipped.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge5';
import { Centrifuge as CentrifugePb } from 'centrifuge5/build/protobuf';
import { SERVER_KIND, apiV2, sleep, startServer, until, waitEvent } from './lib/harness.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'the reference server speaks client protocol v1 only' : false;
const TIMEOUT = { timeout: 30000, skip: SKIP };
const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

let server;
let plain;
const closers = [];

before(async () => {
  if (SKIP) return;
  server = await startServer({ websocket_compression: true, publish: true });
  plain = await startServer({ publish: true });
});

after(async () => {
  for (const c of closers) c();
  await sleep(50);
  if (server) await server.stop();
  if (plain) await plain.stop();
});

/** A raw ws client: resolves once open with the upgrade's extension header and a reader. */
async function open(srv) {
  const ws = new WebSocket(srv.wsUrl);
  closers.push(() => ws.terminate());
  const lines = [];
  const waiters = [];
  ws.on('message', (data) => {
    for (const line of String(data).split('\n')) {
      if (line.trim() === '') continue;
      lines.push(JSON.parse(line));
    }
    for (const w of waiters.splice(0)) w();
  });
  let header;
  ws.once('upgrade', (res) => {
    header = res.headers['sec-websocket-extensions'];
  });
  await waitEvent(ws, 'open');
  /** The first received message matching `pred` (removed from the buffer). */
  const next = async (pred, what) => {
    const deadline = Date.now() + 10000;
    for (;;) {
      const i = lines.findIndex(pred);
      if (i >= 0) return lines.splice(i, 1)[0];
      if (Date.now() > deadline) throw new Error(`no ${what}; got ${JSON.stringify(lines)}`);
      await new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  const send = (obj) => ws.send(JSON.stringify(obj));
  return { ws, header, next, send };
}

test('ws negotiates permessage-deflate; a client message over 1024 bytes round-trips', TIMEOUT, async () => {
  const c = await open(server);
  assert.equal(c.header, ANSWER);
  assert.equal(c.ws.extensions, 'permessage-deflate');
  c.send({ id: 1, connect: { token: server.token({ sub: 'u1' }) } });
  const connect = await c.next((m) => m.id === 1, 'connect reply');
  assert.ok(connect.connect && connect.connect.client, JSON.stringify(connect));
  c.send({ id: 2, subscribe: { channel: 'news' } });
  assert.deepEqual(await c.next((m) => m.id === 2, 'subscribe reply'), { id: 2, subscribe: {} });
  const big = 'compress me '.repeat(300); // 3600 bytes: ws sends it compressed
  const written = c.ws._socket.bytesWritten;
  const read = c.ws._socket.bytesRead;
  c.send({ id: 3, publish: { channel: 'news', data: { big } } });
  assert.deepEqual(await c.next((m) => m.id === 3, 'publish reply'), { id: 3, publish: {} });
  const push = await c.next((m) => m.push && m.push.pub, 'own publication');
  assert.equal(push.push.channel, 'news');
  assert.deepEqual(push.push.pub.data, { big });
  // Both directions went compressed: far fewer bytes than the 3600-byte text each way.
  assert.ok(c.ws._socket.bytesWritten - written < 1000, `client wrote ${c.ws._socket.bytesWritten - written} bytes`);
  assert.ok(c.ws._socket.bytesRead - read < 1000, `client read ${c.ws._socket.bytesRead - read} bytes`);
});

test('compression off: ws gets no extension and plain frames', TIMEOUT, async () => {
  const c = await open(plain);
  assert.equal(c.header, undefined);
  assert.equal(c.ws.extensions, '');
  c.send({ id: 1, connect: { token: plain.token({ sub: 'u2' }) } });
  await c.next((m) => m.id === 1, 'connect reply');
  c.send({ id: 2, subscribe: { channel: 'news' } });
  await c.next((m) => m.id === 2, 'subscribe reply');
  const big = 'compress me '.repeat(300);
  const read = c.ws._socket.bytesRead;
  await apiV2(plain, 'publish', { channel: 'news', data: { big } });
  const push = await c.next((m) => m.push && m.push.pub, 'publication');
  assert.deepEqual(push.push.pub.data, { big });
  assert.ok(c.ws._socket.bytesRead - read > 3600, 'uncompressed on the wire');
});

test('centrifuge-js 5.8.0 over ws receives publications with compression on', TIMEOUT, async () => {
  let extensions;
  class Recording extends WebSocket {
    constructor(...args) {
      super(...args);
      this.once('open', () => {
        extensions = this.extensions;
      });
    }
  }
  const client = new Centrifuge(server.wsUrl, {
    token: server.token({ sub: 'u3' }),
    websocket: Recording,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
  });
  client.on('error', () => {});
  closers.push(() => client.disconnect());
  const connected = waitEvent(client, 'connected');
  client.connect();
  await connected;
  assert.equal(extensions, 'permessage-deflate');
  const sub = client.newSubscription('feed');
  const pubs = [];
  sub.on('publication', (ctx) => pubs.push(ctx.data));
  const subscribed = waitEvent(sub, 'subscribed');
  sub.subscribe();
  await subscribed;
  const big = { text: 'lorem ipsum '.repeat(500), n: 1 };
  await apiV2(server, 'publish', { channel: 'feed', data: big });
  await apiV2(server, 'publish', { channel: 'feed', data: { n: 2 } });
  await until(() => pubs.length === 2, { what: 'two publications' });
  assert.deepEqual(pubs, [big, { n: 2 }]);
  // A client publish through the library: its command is compressed by ws when large.
  const own = { text: 'x'.repeat(2000) };
  await sub.publish(own);
  await until(() => pubs.length === 3, { what: 'own publication' });
  assert.deepEqual(pubs[2], own);
});

test('centrifuge-js 5.8.0 Protobuf build: binary frames compressed both ways', TIMEOUT, async () => {
  let socket;
  class Recording extends WebSocket {
    constructor(...args) {
      super(...args);
      socket = this;
    }
  }
  const client = new CentrifugePb(server.wsUrl, {
    token: server.token({ sub: 'u4' }),
    websocket: Recording,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
  });
  client.on('error', () => {});
  closers.push(() => client.disconnect());
  const connected = waitEvent(client, 'connected');
  client.connect();
  await connected;
  assert.equal(socket.extensions, 'permessage-deflate');
  assert.equal(socket.protocol, 'centrifuge-protobuf');
  const sub = client.newSubscription('pbfeed');
  const pubs = [];
  sub.on('publication', (ctx) => pubs.push(JSON.parse(Buffer.from(ctx.data).toString())));
  const subscribed = waitEvent(sub, 'subscribed');
  sub.subscribe();
  await subscribed;
  const big = { text: 'lorem ipsum '.repeat(500) };
  const read = socket._socket.bytesRead;
  await apiV2(server, 'publish', { channel: 'pbfeed', data: big });
  await until(() => pubs.length === 1, { what: 'publication' });
  assert.deepEqual(pubs[0], big);
  assert.ok(socket._socket.bytesRead - read < 1000, `read ${socket._socket.bytesRead - read} bytes`);
  const own = { text: 'y'.repeat(3000) };
  const written = socket._socket.bytesWritten;
  await sub.publish(new TextEncoder().encode(JSON.stringify(own)));
  await until(() => pubs.length === 2, { what: 'own publication' });
  assert.deepEqual(pubs[1], own);
  assert.ok(socket._socket.bytesWritten - written < 1000, `wrote ${socket._socket.bytesWritten - written} bytes`);
});
