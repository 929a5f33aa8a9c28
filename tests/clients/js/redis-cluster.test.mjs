// The real clients on two Rotor nodes over a Redis Cluster of three masters with one replica
// each (issue 17): centrifuge-js 2.8.5 (v1) on node A and 5.8.0 (v2) on node B subscribe to a
// channel whose slot lives on the master that is then SIGKILLed; its replica is promoted, and
// both clients receive the publications made after the failover (the clients resubscribe or
// reconnect by themselves when the node tells them to).
//
// Starts its own redis-server processes on free ports (no persistence) and kills them at the
// end. Skipped when redis-server is missing (fails instead when CI is set), and under
// ROTOR_TEST_SERVER=ref.

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

const CHANNEL = 'failover';
const redis = [];
let dir;
let nodeA;
let nodeB;
let c2;
let c5;

const cli = (port, ...args) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();

function listening(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

/** A free port whose cluster bus port (+10000) is free too. */
async function clusterPort() {
  for (;;) {
    const p = await freePort();
    if (p < 55000 && !(await listening(p + 10000))) return p;
  }
}

async function startCluster() {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-redis-cluster-js-'));
  for (let i = 0; i < 6; i++) {
    const port = await clusterPort();
    const d = path.join(dir, String(i));
    spawnSync('mkdir', ['-p', d]);
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', d, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000',
      '--cluster-replica-validity-factor', '0', '--repl-diskless-sync-delay', '0'], { stdio: 'ignore' });
    redis.push({ port, child });
    await until(() => listening(port), { timeoutMs: 10000, what: 'redis-server to listen' });
  }
  const out = spawnSync('redis-cli', ['--cluster', 'create', ...redis.map((r) => `127.0.0.1:${r.port}`),
    '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stdout);
  await until(() => redis.every((r) => cli(r.port, 'CLUSTER', 'INFO').includes('cluster_state:ok')), { timeoutMs: 15000, what: 'cluster ok' });
  await until(() => cli(redis[0].port, 'CLUSTER', 'NODES').split('\n').filter((l) => l.includes('slave')).length === 3,
    { timeoutMs: 15000, what: 'replicas attached' });
}

/** [master port, replica port] of the slot of `key`. */
function ownerAndReplica(key) {
  const slot = Number(cli(redis[0].port, 'CLUSTER', 'KEYSLOT', key));
  const lines = cli(redis[0].port, 'CLUSTER', 'NODES').split('\n').map((l) => l.split(' '));
  const master = lines.find((f) => f[2].includes('master') && f.slice(8).some((r) => {
    const [lo, hi] = r.split('-').map(Number);
    return slot >= lo && slot <= (hi ?? lo);
  }));
  const replica = lines.find((f) => f[3] === master[0]);
  const port = (f) => Number(f[1].split('@')[0].split(':')[1]);
  return [port(master), port(replica)];
}

function nodeConfig(name) {
  return {
    engine: 'redis',
    redis_cluster_address: [redis.slice(0, 3).map((r) => `127.0.0.1:${r.port}`).join(',')],
    name,
    presence: true,
    history_size: 100,
    history_lifetime: 300,
    history_recover: true,
    client_channel_position_check_delay: 1,
  };
}

before(async () => {
  if (SKIP) return;
  await startCluster();
  nodeA = await startServer(nodeConfig('node-a'));
  nodeB = await startServer(nodeConfig('node-b'));
});

after(async () => {
  if (c2) c2.disconnect();
  if (c5) c5.disconnect();
  await sleep(50);
  if (nodeA) await nodeA.stop();
  if (nodeB) await nodeB.stop();
  for (const r of redis) r.child.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('2.8.5 and 5.8.0 subscribers survive a master failover and get later publications', { timeout: 60000, skip: SKIP }, async () => {
  try {
    c2 = new Centrifuge2(nodeA.wsUrl, { websocket: WebSocket, xmlhttprequest: XMLHttpRequest, minRetry: 200, maxRetry: 1000 });
    c2.setToken(nodeA.token({ sub: 'ann' }));
    const pubs2 = [];
    c2.connect();
    const sub2 = c2.subscribe(CHANNEL, { publish: (ctx) => pubs2.push(ctx.data.n) });
    await waitEvent(sub2, 'subscribe', { what: '2.8.5 subscribed' });

    c5 = new Centrifuge5(nodeB.wsUrl, { token: nodeB.token({ sub: 'bo' }), websocket: WebSocket, minReconnectDelay: 100, maxReconnectDelay: 1000 });
    c5.on('error', () => {});
    const pubs5 = [];
    c5.connect();
    const sub5 = c5.newSubscription(CHANNEL, { minResubscribeDelay: 100, maxResubscribeDelay: 1000 });
    sub5.on('publication', (ctx) => pubs5.push(ctx.data.n));
    sub5.on('error', () => {});
    const subscribed5 = waitEvent(sub5, 'subscribed', { what: '5.8.0 subscribed' });
    sub5.subscribe();
    await subscribed5;

    await apiV1(nodeA, 'publish', { channel: CHANNEL, data: { n: 1 } });
    await until(() => pubs2.includes(1) && pubs5.includes(1), { what: 'publication 1 on both' });

    const [master, replica] = ownerAndReplica(`centrifugo.stream.{${CHANNEL}}`);
    redis.find((r) => r.port === master).child.kill('SIGKILL');
    await until(() => cli(replica, 'ROLE').startsWith('master'), { timeoutMs: 20000, what: 'replica promoted' });

    // Publish through node A, retrying while the cluster is still settling.
    let n = 2;
    await until(async () => {
      try {
        await apiV1(nodeA, 'publish', { channel: CHANNEL, data: { n } });
        n += 1;
        return n > 5;
      } catch {
        return false;
      }
    }, { timeoutMs: 20000, intervalMs: 100, what: 'publishes accepted after the failover' });
    await until(() => [2, 3, 4, 5].every((k) => pubs2.includes(k) && pubs5.includes(k)),
      { timeoutMs: 20000, what: 'publications after the failover on both clients' });
    assert.equal(c5.state, 'connected');
    assert.equal(sub5.state, 'subscribed');
  } catch (e) {
    e.message += `\n--- node A output (tail) ---\n${nodeA ? nodeA.output().slice(-3000) : ''}`
      + `\n--- node B output (tail) ---\n${nodeB ? nodeB.output().slice(-3000) : ''}`;
    throw e;
  }
});
