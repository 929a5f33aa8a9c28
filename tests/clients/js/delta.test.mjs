// centrifuge-js 5.8.0 with Fossil delta compression (CHANNELS-MODERN.md §1): a subscription with
// `delta: 'fossil'` on a Centrifugo 6 namespace with `allowed_delta_types: ["fossil"]` receives
// a ~2 KB JSON document with Cyrillic, CJK and emoji text, changed a little 24 times and
// published through the HTTP API with `delta: true` and tags. Beside it, a subscriber without
// delta, one with a `tagsFilter` (centrifuge-js refuses a filter together with a delta) and a
// Protobuf one (the `build/protobuf` client) with delta.
// Every subscriber must get exactly the published documents (deep-equal), the delta subscriber
// must really have received patches (raw frames captured from its WebSocket: `"delta":true`
// publications, far fewer bytes than the plain subscriber), and after its connection drops and
// publications are missed, it recovers them (chained: first full, then patches) and goes on.
//
// Runs on the memory engine and on the Redis engine (a redis-server started on a free port and
// killed at the end; skipped when redis-server is missing, failed when CI is set). The reference
// server speaks protocol v1 only: under ROTOR_TEST_SERVER=ref this file is skipped.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge5';
import { Centrifuge as CentrifugeProtobuf } from 'centrifuge5/build/protobuf';
import { SERVER_KIND, apiV2, freePort, sleep, startServer, until, waitEvent } from './lib/harness.mjs';

const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;
if (!HAVE_REDIS && process.env.CI) throw new Error('redis-server is not installed (scripts/test.sh installs it)');
const REF = SERVER_KIND === 'ref' ? 'the reference server speaks client protocol v1 only' : false;
const CHANNEL = 'docs:board';
const ROUNDS = 24;

const WORDS = ['Привет, мир', '你好，世界', '🎉🚀✨🔥', 'Grüße aus Köln', '東京タワー', 'Ёжик в тумане'];

/** A ~2 KB JSON document; each `n` changes a few fields, some of them multi-byte text. */
function doc(n) {
  const items = [];
  for (let i = 0; i < 14; i++) {
    items.push({
      id: i,
      title: `${WORDS[i % WORDS.length]} ${i}`,
      note: `заметка ${i} — 備考 💬${i === n % 14 ? ` правка ${n} 修正 ✅` : ''}`,
      count: i * 7 + (i === n % 14 ? n : 0),
    });
  }
  return { version: n, status: WORDS[n % WORDS.length], items };
}

/** A `ws` WebSocket class that records every frame its instances receive into `rec.frames`, and
 * connects nowhere while `rec.offline` is set (so a dropped client cannot reconnect yet). */
function recordingWebSocket(rec) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(rec.offline ? 'ws://127.0.0.1:1/connection/websocket' : url, protocols);
      rec.current = this;
      this.on('message', (data) => rec.frames.push(data.toString()));
    }
  };
}

/** The JSON values of every frame (one per line). */
function lines(frames) {
  return frames.flatMap((f) => f.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l)));
}

async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-delta-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  await until(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  }), { timeoutMs: 10000, what: 'redis-server to listen' });
  return { port, child, dir };
}

for (const engine of ['memory', 'redis']) {
  const skip = REF || (engine === 'redis' && !HAVE_REDIS ? 'redis-server is not installed' : false);
  describe(`Fossil deltas on the ${engine} engine`, { skip }, () => {
    let server;
    let redis;
    const clients = [];

    before(async () => {
      // Centrifugo 6 nested sections (the harness adds its flat address, port, secret, API key).
      const config = {
        channel: {
          namespaces: [{
            name: 'docs',
            history_size: 100,
            history_ttl: '300s',
            force_recovery: true,
            allowed_delta_types: ['fossil'],
            allow_tags_filter: true,
            allow_subscribe_for_client: true,
          }],
        },
      };
      if (engine === 'redis') {
        redis = await startRedis();
        config.engine = { type: 'redis', redis: { address: `127.0.0.1:${redis.port}` } };
      }
      server = await startServer(config);
    });

    after(async () => {
      for (const c of clients) c.disconnect();
      await sleep(50);
      if (server) await server.stop();
      if (redis) {
        redis.child.kill('SIGKILL');
        rmSync(redis.dir, { recursive: true, force: true });
      }
    });

    /** A connected client whose WebSocket frames are recorded in the returned `rec`. */
    async function connected(user, Client = Centrifuge) {
      const rec = { frames: [], offline: false, current: null };
      const c = new Client(server.wsUrl, {
        token: server.token({ sub: user }),
        websocket: recordingWebSocket(rec),
        minReconnectDelay: 100,
        maxReconnectDelay: 300,
      });
      c.on('error', () => {});
      clients.push(c);
      const done = waitEvent(c, 'connected');
      c.connect();
      await done;
      return { c, rec };
    }

    async function subscribed(c, options) {
      const sub = c.newSubscription(CHANNEL, options);
      sub.got = [];
      sub.on('publication', (ctx) => sub.got.push(ctx.data));
      sub.on('error', () => {});
      const done = waitEvent(sub, 'subscribed');
      sub.subscribe();
      sub.first = await done;
      return sub;
    }

    async function publish(n) {
      const r = await apiV2(server, 'publish', {
        channel: CHANNEL,
        data: doc(n),
        delta: true,
        tags: { parity: n % 2 === 0 ? 'even' : 'odd' },
      });
      assert.equal(r.error, undefined, JSON.stringify(r));
    }

    test(`5.8.0 delta: 'fossil' gets patches and exactly the published documents (${engine})`, { timeout: 60000 }, async (t) => {
      try {
        const d = await connected('delta-user');
        const p = await connected('plain-user');
        const f = await connected('filter-user');
        const b = await connected('protobuf-user', CentrifugeProtobuf);
        const dsub = await subscribed(d.c, { delta: 'fossil' });
        const bsub = await subscribed(b.c, { delta: 'fossil' });
        const psub = await subscribed(p.c, {});
        const fsub = await subscribed(f.c, { tagsFilter: { key: 'parity', cmp: 'eq', val: 'even' } });
        const subscribeReply = lines(d.rec.frames).find((v) => v.subscribe);
        assert.equal(subscribeReply.subscribe.delta, true, JSON.stringify(subscribeReply));
        assert.equal(lines(p.rec.frames).find((v) => v.subscribe).subscribe.delta, undefined);

        for (let n = 1; n <= ROUNDS; n++) await publish(n);
        const all = Array.from({ length: ROUNDS }, (_, i) => doc(i + 1));
        await until(() => dsub.got.length >= ROUNDS && psub.got.length >= ROUNDS && fsub.got.length >= ROUNDS / 2, { what: 'every publication' });
        assert.deepEqual(dsub.got, all);
        assert.deepEqual(psub.got, all);
        assert.deepEqual(fsub.got, all.filter((x) => x.version % 2 === 0));
        // Protobuf: raw bytes, patches decoded by the client itself.
        await until(() => bsub.got.length >= ROUNDS, { what: 'the Protobuf subscriber' });
        assert.deepEqual(bsub.got.map((x) => JSON.parse(new TextDecoder().decode(x))), all);
        const bstats = bsub.deltaStats();
        assert.equal(bstats.numDeltaPayloads, ROUNDS - 1, JSON.stringify(bstats));
        assert.ok(bstats.bytesReceived * 3 < bstats.bytesDecoded, JSON.stringify(bstats));
        t.diagnostic(`${engine}: Protobuf delta subscriber ${JSON.stringify(bstats)}`);

        // On the wire: the delta subscriber's data are strings, the first full, then patches.
        const dpubs = lines(d.rec.frames).filter((v) => v.push && v.push.pub).map((v) => v.push.pub);
        const ppubs = lines(p.rec.frames).filter((v) => v.push && v.push.pub).map((v) => v.push.pub);
        assert.equal(dpubs.length, ROUNDS);
        assert.ok(dpubs.every((x) => typeof x.data === 'string'));
        assert.ok(ppubs.every((x) => typeof x.data === 'object' && x.delta === undefined));
        assert.equal(dpubs[0].delta, undefined, 'the first publication after subscribe is full');
        const patches = dpubs.filter((x) => x.delta === true).length;
        assert.equal(patches, ROUNDS - 1, 'every next one is a patch');
        const dBytes = d.rec.frames.filter((x) => x.includes('"push"')).reduce((s, x) => s + Buffer.byteLength(x), 0);
        const pBytes = p.rec.frames.filter((x) => x.includes('"push"')).reduce((s, x) => s + Buffer.byteLength(x), 0);
        assert.ok(dBytes * 3 < pBytes, `delta ${dBytes} bytes vs plain ${pBytes} bytes`);
        const stats = dsub.deltaStats();
        assert.equal(stats.numDeltaPayloads, ROUNDS - 1, JSON.stringify(stats));
        const patchFrame = d.rec.frames.find((x) => x.includes('"delta":true') && x.includes('"push"'));
        t.diagnostic(`${engine}: ${ROUNDS} publications, delta subscriber ${dBytes} bytes of pushes, plain ${pBytes}; a patch frame: ${patchFrame.slice(0, 160)}`);
        t.diagnostic(`${engine}: full frame to the delta subscriber: ${d.rec.frames.find((x) => x.includes('"push"')).slice(0, 120)}`);

        // The delta subscriber's connection drops; 5 publications are missed; it recovers them.
        d.rec.offline = true;
        const resubscribed = waitEvent(dsub, 'subscribed', { timeoutMs: 15000 });
        const framesBefore = d.rec.frames.length;
        d.rec.current.terminate();
        await until(() => dsub.state === 'subscribing', { what: 'the subscription to notice the drop' });
        for (let n = ROUNDS + 1; n <= ROUNDS + 5; n++) await publish(n);
        d.rec.offline = false;
        const ctx = await resubscribed;
        assert.equal(ctx.wasRecovering, true, JSON.stringify(ctx));
        assert.equal(ctx.recovered, true, JSON.stringify(ctx));
        const reply = lines(d.rec.frames.slice(framesBefore)).find((v) => v.subscribe);
        assert.equal(reply.subscribe.delta, true);
        const recovered = reply.subscribe.publications;
        assert.equal(recovered.length, 5, JSON.stringify(reply).slice(0, 300));
        assert.ok(recovered.every((x) => typeof x.data === 'string'));
        assert.deepEqual(recovered.map((x) => x.delta === true), [false, true, true, true, true], 'chained: first full');
        // And live publications after the recovery are patches again.
        for (let n = ROUNDS + 6; n <= ROUNDS + 8; n++) await publish(n);
        const total = ROUNDS + 8;
        await until(() => dsub.got.length >= total && psub.got.length >= total, { what: 'the publications after the recovery' });
        const everything = Array.from({ length: total }, (_, i) => doc(i + 1));
        assert.deepEqual(dsub.got, everything);
        assert.deepEqual(psub.got, everything);
        const live = lines(d.rec.frames.slice(framesBefore)).filter((v) => v.push && v.push.pub).map((v) => v.push.pub);
        assert.equal(live.length, 3);
        assert.ok(live.every((x) => x.delta === true), JSON.stringify(live.map((x) => x.delta)));
        assert.equal(d.c.state, 'connected');
        assert.equal(dsub.state, 'subscribed');
      } catch (e) {
        e.message += `\n--- server output (tail) ---\n${server.output().slice(-3000)}`;
        throw e;
      }
    });
  });
}
