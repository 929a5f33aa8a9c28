// The real clients on two Rotor nodes over NATS (issue 17): centrifuge-js 2.8.5 (protocol v1)
// on node A and centrifuge-js 5.8.0 (protocol v2) on node B, PUB/SUB on one nats-server
// (`broker: nats`, no Redis). A publication through either node's API reaches the client on
// the other. Then nats-server is killed and restarted on the same port: publishes are refused
// meanwhile, and afterwards the 2.8.5 client is disconnected (3010) and reconnects, the 5.8.0
// subscription is told to resubscribe (2500), and both receive later publications.
//
// Starts its own nats-server on a free port and kills it at the end. Skipped when nats-server
// is missing (fails instead when CI or ROTOR_REQUIRE_NATS is set), and under
// ROTOR_TEST_SERVER=ref.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import WebSocket from 'ws';
import XMLHttpRequest from 'xhr2';
import Centrifuge2 from 'centrifuge2';
import { Centrifuge as Centrifuge5 } from 'centrifuge5';
import { SERVER_KIND, apiV1, freePort, sleep, startServer, until, waitEvent } from './lib/harness.mjs';

const HAVE_NATS = spawnSync('nats-server', ['--version']).status === 0;
if (!HAVE_NATS && (process.env.CI || process.env.ROTOR_REQUIRE_NATS)) throw new Error('nats-server is not installed (scripts/test.sh installs it)');
const SKIP = SERVER_KIND === 'ref' ? 'the reference server runs here on its memory engine only'
  : !HAVE_NATS ? 'nats-server is not installed' : false;
const TIMEOUT = { timeout: 40000, skip: SKIP };

const SECRET = 'nats-test-secret';
const API_KEY = 'nats-test-api';
const CHANNEL = 'lobby';

let nats;
let nodeA;
let nodeB;
let c2;
let c5;
let sub2;
let sub5;

function listening(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

async function startNats(port) {
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  await until(() => listening(port), { timeoutMs: 10000, what: 'nats-server to listen' });
  return child;
}

async function stopNats() {
  if (!nats || nats.exitCode !== null || nats.signalCode !== null) return;
  const exited = new Promise((resolve) => nats.once('exit', resolve));
  nats.kill('SIGKILL');
  await exited;
}

function nodeConfig(name, natsPort) {
  return {
    broker: 'nats',
    nats_url: `nats://127.0.0.1:${natsPort}`,
    name,
    token_hmac_secret_key: SECRET,
    api_key: API_KEY,
    publish: true,
    health: true,
  };
}

let natsPort;
before(async () => {
  if (SKIP) return;
  natsPort = await freePort();
  nats = await startNats(natsPort);
  nodeA = await startServer(nodeConfig('node-a', natsPort));
  nodeB = await startServer(nodeConfig('node-b', natsPort));
});

after(async () => {
  if (c2) c2.disconnect();
  if (c5) c5.disconnect();
  await sleep(50);
  if (nodeA) await nodeA.stop();
  if (nodeB) await nodeB.stop();
  await stopNats();
});

function tt(name, fn) {
  test(name, TIMEOUT, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      e.message += `\n--- node A output (tail) ---\n${nodeA ? nodeA.output().slice(-3000) : ''}`
        + `\n--- node B output (tail) ---\n${nodeB ? nodeB.output().slice(-3000) : ''}`;
      throw e;
    }
  });
}

/** Publishes through `node`'s API, retrying while the API refuses (NATS down). */
async function publishRetrying(node, data) {
  let refused = 0;
  await until(async () => {
    try {
      await apiV1(node, 'publish', { channel: CHANNEL, data });
      return true;
    } catch {
      refused += 1;
      return false;
    }
  }, { timeoutMs: 15000, intervalMs: 100, what: 'the API to accept a publish' });
  return refused;
}

tt('2.8.5 on node A and 5.8.0 on node B get publications made through the other node', async () => {
  c2 = new Centrifuge2(nodeA.wsUrl, { websocket: WebSocket, xmlhttprequest: XMLHttpRequest, minRetry: 200, maxRetry: 1000 });
  c2.setToken(nodeA.token({ sub: 'ann' }));
  c2.disconnects = [];
  c2.on('disconnect', (ctx) => c2.disconnects.push(ctx));
  const connected2 = waitEvent(c2, 'connect', { what: '2.8.5 connect' });
  c2.connect();
  await connected2;
  sub2 = c2.subscribe(CHANNEL);
  sub2.pubs = [];
  sub2.subscribes = 0;
  sub2.on('publish', (ctx) => sub2.pubs.push(ctx.data));
  sub2.on('subscribe', () => { sub2.subscribes += 1; });
  await until(() => sub2.subscribes === 1, { what: '2.8.5 subscribed' });

  c5 = new Centrifuge5(nodeB.wsUrl, { token: nodeB.token({ sub: 'bo' }), websocket: WebSocket, minReconnectDelay: 100, maxReconnectDelay: 1000 });
  c5.on('error', () => {});
  const connected5 = waitEvent(c5, 'connected', { what: '5.8.0 connected' });
  c5.connect();
  await connected5;
  sub5 = c5.newSubscription(CHANNEL);
  sub5.pubs = [];
  sub5.subscribeds = 0;
  sub5.unsubscribes = [];
  sub5.on('publication', (ctx) => sub5.pubs.push(ctx.data));
  sub5.on('subscribed', () => { sub5.subscribeds += 1; });
  sub5.on('subscribing', (ctx) => sub5.unsubscribes.push(ctx.code));
  sub5.on('error', () => {});
  sub5.subscribe();
  await until(() => sub5.subscribeds === 1, { what: '5.8.0 subscribed' });

  await apiV1(nodeA, 'publish', { channel: CHANNEL, data: { n: 1 } });
  await until(() => sub5.pubs.some((d) => d.n === 1), { what: '5.8.0 on B gets the publication made through A' });
  await apiV1(nodeB, 'publish', { channel: CHANNEL, data: { n: 2 } });
  await until(() => sub2.pubs.some((d) => d.n === 2), { what: '2.8.5 on A gets the publication made through B' });
  assert.ok(sub2.pubs.some((d) => d.n === 1), '2.8.5 got its own node\'s publication too');
});

tt('after nats-server restarts, both clients are told, come back, and get later publications', async () => {
  await stopNats();
  // While NATS is down the API refuses publishes instead of acknowledging them into a buffer.
  await assert.rejects(apiV1(nodeA, 'publish', { channel: CHANNEL, data: { n: 3 } }));
  await sleep(500);
  nats = await startNats(natsPort);
  // 2.8.5: disconnected with reconnect advice (3010), reconnects and resubscribes.
  await until(() => c2.disconnects.length > 0 && sub2.subscribes >= 2, { timeoutMs: 15000, what: '2.8.5 reconnected and resubscribed' });
  assert.ok(c2.disconnects.some((d) => d.reason === 'insufficient state'), JSON.stringify(c2.disconnects));
  // 5.8.0: the subscription went back to subscribing (2500) and is subscribed again.
  await until(() => sub5.subscribeds >= 2, { timeoutMs: 15000, what: '5.8.0 resubscribed' });
  assert.ok(sub5.unsubscribes.includes(2500), JSON.stringify(sub5.unsubscribes));
  await publishRetrying(nodeA, { n: 4 });
  await until(() => sub5.pubs.some((d) => d.n === 4), { what: '5.8.0 gets a publication after the restart' });
  await publishRetrying(nodeB, { n: 5 });
  await until(() => sub2.pubs.some((d) => d.n === 5), { what: '2.8.5 gets a publication after the restart' });
});
