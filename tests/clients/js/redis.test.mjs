// The real clients on two Rotor nodes sharing one Redis (issue 5): centrifuge-js 2.8.5
// (protocol v1) connected to node A and centrifuge-js 5.8.0 (protocol v2) connected to node B
// see each other's publications (with publisher info), each other in presence, and each other's
// joins and leaves; a publication through node A's API reaches both.
//
// Starts its own redis-server on a free port (no persistence) and kills it at the end. Skipped
// when redis-server is missing (fails instead when CI is set), and under ROTOR_TEST_SERVER=ref.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import XMLHttpRequest from 'xhr2';
import Centrifuge2 from 'centrifuge2';
import { Centrifuge as Centrifuge5 } from 'centrifuge5';
import { SERVER_KIND, apiV1, freePort, sleep, startServer, until, waitEvent } from './lib/harness.mjs';

const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;
if (!HAVE_REDIS && process.env.CI) throw new Error('redis-server is not installed (scripts/test.sh installs it)');
const SKIP = SERVER_KIND === 'ref' ? 'the reference server runs here on its memory engine only'
  : !HAVE_REDIS ? 'redis-server is not installed' : false;
const TIMEOUT = { timeout: 30000, skip: SKIP };

const SECRET = 'redis-test-secret';
const API_KEY = 'redis-test-api';
const CHANNEL = 'lobby';

let redis;
let redisDir;
let nodeA;
let nodeB;
let c2;
let c5;
let sub2;
let sub5;
let c2Id;
let c5Id;

async function startRedis() {
  const port = await freePort();
  redisDir = mkdtempSync(path.join(os.tmpdir(), 'rotor-redis-js-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], { stdio: 'ignore' });
  await until(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  }), { timeoutMs: 10000, what: 'redis-server to listen' });
  return { port, child };
}

function nodeConfig(name) {
  return {
    engine: 'redis',
    redis_address: `127.0.0.1:${redis.port}`,
    name,
    token_hmac_secret_key: SECRET,
    api_key: API_KEY,
    presence: true,
    join_leave: true,
    publish: true,
    history_size: 10,
    history_lifetime: 60,
    history_recover: true,
  };
}

before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  nodeA = await startServer(nodeConfig('node-a'));
  nodeB = await startServer(nodeConfig('node-b'));
});

after(async () => {
  if (c2) c2.disconnect();
  if (c5) c5.disconnect();
  await sleep(50);
  if (nodeA) await nodeA.stop();
  if (nodeB) await nodeB.stop();
  if (redis) redis.child.kill('SIGKILL');
  if (redisDir) rmSync(redisDir, { recursive: true, force: true });
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

tt('2.8.5 on node A and 5.8.0 on node B connect and subscribe; each sees the other join', async () => {
  c2 = new Centrifuge2(nodeA.wsUrl, { websocket: WebSocket, xmlhttprequest: XMLHttpRequest, minRetry: 300, maxRetry: 2000 });
  c2.setToken(nodeA.token({ sub: 'ann', info: { name: 'Ann' } }));
  const connected2 = waitEvent(c2, 'connect', { what: '2.8.5 connect' });
  c2.connect();
  c2Id = (await connected2).client;
  sub2 = c2.subscribe(CHANNEL);
  sub2.joins = [];
  sub2.leaves = [];
  sub2.pubs = [];
  sub2.on('join', (ctx) => sub2.joins.push(ctx));
  sub2.on('leave', (ctx) => sub2.leaves.push(ctx));
  sub2.on('publish', (ctx) => sub2.pubs.push(ctx));
  await waitEvent(sub2, 'subscribe', { what: '2.8.5 subscribed' });

  c5 = new Centrifuge5(nodeB.wsUrl, { token: nodeB.token({ sub: 'bo', info: { name: 'Bo' } }), websocket: WebSocket, minReconnectDelay: 100, maxReconnectDelay: 1000 });
  c5.on('error', () => {});
  const connected5 = waitEvent(c5, 'connected', { what: '5.8.0 connected' });
  c5.connect();
  c5Id = (await connected5).client;
  sub5 = c5.newSubscription(CHANNEL, { joinLeave: true });
  sub5.joins = [];
  sub5.leaves = [];
  sub5.pubs = [];
  sub5.on('join', (ctx) => sub5.joins.push(ctx));
  sub5.on('leave', (ctx) => sub5.leaves.push(ctx));
  sub5.on('publication', (ctx) => sub5.pubs.push(ctx));
  sub5.on('error', () => {});
  const subscribed5 = waitEvent(sub5, 'subscribed', { what: '5.8.0 subscribed' });
  sub5.subscribe();
  await subscribed5;

  // Bo joined on node B; Ann (node A) hears it.
  await until(() => sub2.joins.some((j) => j.info.user === 'bo' && j.info.client === c5Id), { what: "Ann sees Bo's join" });
});

tt('a publication from each client reaches the other node, with publisher info', async () => {
  await sub2.publish({ text: 'from ann' });
  await until(() => sub5.pubs.some((p) => p.data.text === 'from ann'), { what: 'Bo gets Ann\'s publication' });
  const got5 = sub5.pubs.find((p) => p.data.text === 'from ann');
  assert.equal(got5.info.user, 'ann');
  assert.equal(got5.info.client, c2Id);
  assert.deepEqual(got5.info.connInfo, { name: 'Ann' });

  await sub5.publish({ text: 'from bo' });
  await until(() => sub2.pubs.some((p) => p.data.text === 'from bo'), { what: 'Ann gets Bo\'s publication' });
  const got2 = sub2.pubs.find((p) => p.data.text === 'from bo');
  assert.equal(got2.info.user, 'bo');
  assert.deepEqual(got2.info.conn_info, { name: 'Bo' });
  // Offsets are shared by both nodes: Bo's follows Ann's (Bo's own copy may still be in flight).
  await until(() => sub5.pubs.some((p) => p.data.text === 'from bo'), { what: 'Bo gets his own publication' });
  assert.equal(got5.offset + 1, sub5.pubs.find((p) => p.data.text === 'from bo').offset);
});

tt('a publication through node A\'s API reaches both', async () => {
  await apiV1(nodeA, 'publish', { channel: CHANNEL, data: { text: 'from api' } });
  await until(() => sub2.pubs.some((p) => p.data.text === 'from api') && sub5.pubs.some((p) => p.data.text === 'from api'), { what: 'both get the API publication' });
});

tt('presence seen from either client lists both', async () => {
  const p2 = await sub2.presence();
  assert.deepEqual(Object.keys(p2.presence).sort(), [c2Id, c5Id].sort());
  assert.equal(p2.presence[c5Id].user, 'bo');
  const p5 = await sub5.presence();
  assert.deepEqual(Object.keys(p5.clients).sort(), [c2Id, c5Id].sort());
  assert.equal(p5.clients[c2Id].user, 'ann');
  const stats = await sub5.presenceStats();
  assert.deepEqual({ numClients: stats.numClients, numUsers: stats.numUsers }, { numClients: 2, numUsers: 2 });
});

tt('a leave on node A reaches the client on node B', async () => {
  sub2.unsubscribe();
  await until(() => sub5.leaves.some((l) => l.info.user === 'ann' && l.info.client === c2Id), { what: "Bo sees Ann's leave" });
  const p5 = await sub5.presence();
  assert.deepEqual(Object.keys(p5.clients), [c5Id]);
});
