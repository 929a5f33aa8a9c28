// RS256, ES256 and EdDSA tokens, static PEM keys and JWKS, seen through real clients
// (TOKENS.md §1, §5, §6, §7): centrifuge-js 2.8.5 (protocol v1) against Centrifugo 2.x flat
// configs (`token_rsa_public_key`, `token_ecdsa_public_key`, `token_jwks_public_endpoint`) and
// centrifuge-js 5.8.0 (protocol v2) against v6 nested configs (`client.token.*`,
// `client.subscription_token.*`).
//
// Every token is minted here with node's built-in crypto (lib/jwt.mjs), never by Rotor. The JWKS
// endpoint is a node:http server started by the test (lib/jwks.mjs) that counts its requests, can
// change its key set (rotation) and can go down.
//
// Outcomes asserted, per TOKENS.md §5: an invalid connection token closes v1 with 3002
// `invalid token` (no reconnect) and v2 with 3500 `invalid token` (terminal); an invalid
// subscription token is error 103 on both.
//
// Timing: Rotor refetches a JWKS URL at most once per 5 s (crates/jwks default
// `min_refetch_interval`), so the rotation and endpoint-down cases wait past that interval
// before presenting a kid the cache does not hold.
//
// The reference server is HMAC-only in this harness: the file is skipped under
// ROTOR_TEST_SERVER=ref.

import { after, describe, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import XMLHttpRequest from 'xhr2';
import Centrifuge from 'centrifuge2';
import { Centrifuge as Centrifuge5 } from 'centrifuge5';
import {
  SERVER_KIND, UUID_V4, apiV1, apiV2, hs256, nowSec, recordEvents, sleep, startBackend, startServer, until, waitEvent,
} from './lib/harness.mjs';
import { keyPair, publicJwk, signJwt } from './lib/jwt.mjs';
import { startJwks } from './lib/jwks.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'asymmetric tokens are tested against rotor only' : false;
const TIMEOUT = { timeout: 40000, skip: SKIP };
const REFETCH_INTERVAL_MS = 5000; // Rotor's default min_refetch_interval per JWKS URL

const servers = [];
const stops = [];
const clients = [];

function tt(name, fn) {
  test(name, TIMEOUT, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      for (const s of servers) e.message += `\n--- rotor :${s.port} output (tail) ---\n${s.output().slice(-3000)}`;
      throw e;
    }
  });
}

after(async () => {
  for (const c of clients) c.disconnect();
  await sleep(50);
  for (const s of servers) await s.stop();
  for (const stop of stops) await stop();
});

async function server(config) {
  const s = await startServer(config);
  servers.push(s);
  return s;
}

/** The decoded JOSE header of a compact JWT. */
const headerOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString());

/** The server must not have reported any of the token keys as unsupported or ignored. */
function assertKeysAccepted(srv, keys) {
  for (const k of keys) {
    const line = srv.output().split('\n').find((l) => l.includes(k) && /not supported|ignored|unknown/i.test(l));
    assert.equal(line, undefined, `the server ignored ${k}: ${line}`);
  }
}

// =============================================================================================
// centrifuge-js 2.8.5 (protocol v1)
// =============================================================================================

/** Wraps ws to record sent commands and the close frames the client sees. */
function recordingWebSocket2(sent, closes) {
  return class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('close', (e) => closes.push({ code: e.code, reason: e.reason }));
    }

    send(data, ...rest) {
      for (const line of String(data).split('\n')) {
        if (line.trim() !== '') sent.push(JSON.parse(line));
      }
      return super.send(data, ...rest);
    }
  };
}

/**
 * A 2.8.5 client on `srv`; private-channel tokens come from `backend`'s subscribeEndpoint,
 * answered by `signer(claims)` for each requested channel ({client, channel} claims).
 */
function js2(srv, backend, caseName, token, signer) {
  backend.on('/centrifuge/subscribe', caseName, (req) => ({
    status: 200,
    body: { channels: req.body.channels.map((ch) => ({ channel: ch, token: signer({ client: req.body.client, channel: ch }) })) },
  }));
  const sent = [];
  const closes = [];
  const c = new Centrifuge(srv.wsUrl, {
    websocket: recordingWebSocket2(sent, closes),
    xmlhttprequest: XMLHttpRequest,
    subscribeEndpoint: backend.subscribeEndpoint,
    subscribeParams: { case: caseName },
    refreshEndpoint: backend.refreshEndpoint,
    refreshParams: { case: caseName },
    minRetry: 300,
    maxRetry: 2000,
  });
  c.setToken(token);
  c.sent = sent;
  c.closes = closes;
  clients.push(c);
  return c;
}

/**
 * Connects `c`; a terminal disconnect (reconnect false) instead fails at once with what the
 * client saw. (2.8.5 also emits a reconnecting disconnect "connect error" before it refreshes
 * an expired token.)
 */
async function js2Connect(c) {
  const connected = waitEvent(c, 'connect', { what: 'connect' });
  const refused = waitEvent(c, 'disconnect', { what: 'terminal disconnect', pred: (d) => d.reconnect === false }).then((d) => {
    throw new Error(`expected connect, got disconnect ${JSON.stringify(d)}, closes ${JSON.stringify(c.closes)}`);
  });
  refused.catch(() => {});
  c.connect();
  const ctx = await Promise.race([connected, refused]);
  assert.match(ctx.client, UUID_V4);
  return ctx;
}

/** Connects `c`, subscribes to `channel`, and checks that an API publication arrives. */
async function js2ConnectSubscribePublish(srv, c, channel, data) {
  const ctx = await js2Connect(c);
  const sub = c.subscribe(channel);
  const errors = recordEvents(sub, ['error']);
  await waitEvent(sub, 'subscribe', { what: `subscribe event of ${channel}` });
  assert.deepEqual(errors, []);
  const subCmd = c.sent.find((cmd) => cmd.method === 1 && cmd.params.channel === channel);
  assert.ok(subCmd && subCmd.params.token, 'the subscribe command carried a token');
  const got = waitEvent(sub, 'publish', { what: `publication on ${channel}` });
  await apiV1(srv, 'publish', { channel, data });
  assert.deepEqual((await got).data, data);
  return { ctx, sub, subCmd };
}

/** Connects `c` and expects the v1 invalid-token close: 3002, no reconnect. */
async function js2ExpectInvalidToken(c) {
  const disc = waitEvent(c, 'disconnect', { what: 'disconnect for an invalid token' });
  c.connect();
  assert.deepEqual(await disc, { reason: 'invalid token', reconnect: false });
  await until(() => c.closes.length > 0, { what: 'the close frame' });
  assert.deepEqual(c.closes, [{ code: 3002, reason: '{"reason":"invalid token","reconnect":false}' }]);
  await sleep(700); // past minRetry: a reconnect would have sent a second connect
  assert.equal(c.sent.filter((cmd) => cmd.method === undefined && cmd.params).length, 1, 'no reconnect');
  assert.equal(c.isConnected(), false);
}

describe('2.8.5 against a 2.x flat config with token_rsa_public_key and token_ecdsa_public_key', () => {
  const rsa = keyPair('rsa');
  const ec = keyPair('ec');
  const otherRsa = keyPair('rsa');
  const otherEc = keyPair('ec');
  let srv;
  let backend;

  before(async () => {
    if (SKIP) return;
    backend = await startBackend();
    stops.push(() => backend.stop());
    srv = await server({ token_rsa_public_key: rsa.publicPem, token_ecdsa_public_key: ec.publicPem });
  });

  tt('2.8.5: the server takes both PEM keys (no "not supported" warning)', async () => {
    assertKeysAccepted(srv, ['token_rsa_public_key', 'token_ecdsa_public_key']);
  });

  tt('2.8.5: RS256 connection token, RS256 subscription token from subscribeEndpoint, publication arrives', async () => {
    const token = signJwt(rsa, { sub: 'u-rs', info: { via: 'rs256' } });
    const c = js2(srv, backend, 'rs', token, (claims) => signJwt(rsa, claims));
    const { subCmd } = await js2ConnectSubscribePublish(srv, c, '$rs-room', { text: 'signed with RSA', n: 1 });
    assert.equal(headerOf(c.sent[0].params.token).alg, 'RS256', 'the connect carried the RS256 token');
    assert.equal(headerOf(subCmd.params.token).alg, 'RS256');
    assert.equal(backend.requestsFor('rs').length, 1, 'one subscribe request to the backend');
    c.disconnect();
  });

  tt('2.8.5: ES256 connection token, ES256 subscription token from subscribeEndpoint, publication arrives', async () => {
    const token = signJwt(ec, { sub: 'u-es' });
    const c = js2(srv, backend, 'es', token, (claims) => signJwt(ec, claims));
    const { subCmd } = await js2ConnectSubscribePublish(srv, c, '$es-room', { text: 'signed with P-256' });
    assert.equal(headerOf(c.sent[0].params.token).alg, 'ES256');
    assert.equal(headerOf(subCmd.params.token).alg, 'ES256');
    c.disconnect();
  });

  tt('2.8.5: an RS256 connection token signed by another RSA key → 3002 invalid token, no reconnect', async () => {
    const c = js2(srv, backend, 'rs-other', signJwt(otherRsa, { sub: 'u-mallory' }), () => '');
    await js2ExpectInvalidToken(c);
  });

  tt('2.8.5: an ES256 connection token signed by another P-256 key → 3002 invalid token, no reconnect', async () => {
    const c = js2(srv, backend, 'es-other', signJwt(otherEc, { sub: 'u-mallory' }), () => '');
    await js2ExpectInvalidToken(c);
  });

  tt('2.8.5: an HS256 token MACed with the RSA public key text → 3002 invalid token', async () => {
    const c = js2(srv, backend, 'confusion', hs256({ sub: 'u-mallory' }, rsa.publicPem), () => '');
    await js2ExpectInvalidToken(c);
  });

  tt('2.8.5: an expired ES256 connection token → the client asks refreshEndpoint for a new one and connects', async () => {
    backend.on('/centrifuge/refresh', 'es-refresh', () => ({ status: 200, body: { token: signJwt(ec, { sub: 'u-es-r', exp: nowSec() + 3600 }) } }));
    const c = js2(srv, backend, 'es-refresh', signJwt(ec, { sub: 'u-es-r', exp: nowSec() - 30 }), () => '');
    await js2Connect(c);
    assert.equal(backend.requestsFor('es-refresh', '/centrifuge/refresh').length, 1);
    const connects = c.sent.filter((cmd) => cmd.method === undefined && cmd.params && cmd.params.token);
    assert.equal(connects.length, 2, 'connect, then connect again with the new token');
    assert.equal(headerOf(connects[1].params.token).alg, 'ES256');
    c.disconnect();
  });

  tt('2.8.5: a subscription token signed by another key is refused with 103, the connection stays', async () => {
    const c = js2(srv, backend, 'sub-other', signJwt(rsa, { sub: 'u-rs2' }), (claims) => signJwt(otherEc, claims));
    await js2Connect(c);
    const sub = c.subscribe('$not-for-you');
    const err = await waitEvent(sub, 'error', { what: 'subscription error on $not-for-you' });
    assert.equal(err.code, 103);
    assert.equal(err.message, 'permission denied');
    assert.ok(c.sent.some((cmd) => cmd.method === 1 && cmd.params.channel === '$not-for-you'), 'the subscribe was sent');
    assert.equal(c.isConnected(), true);
    c.disconnect();
  });
});

describe('2.8.5 against a 2.x flat config with token_jwks_public_endpoint (RSA and Ed25519 keys)', () => {
  const rsa = keyPair('rsa');
  const ed = keyPair('ed25519');
  let srv;
  let backend;
  let jwks;

  before(async () => {
    if (SKIP) return;
    backend = await startBackend();
    stops.push(() => backend.stop());
    jwks = await startJwks([publicJwk(rsa, 'v1-rsa'), publicJwk(ed, 'v1-ed')]);
    stops.push(() => jwks.stop());
    srv = await server({ token_jwks_public_endpoint: jwks.url });
  });

  tt('2.8.5: EdDSA tokens (JWKS OKP key): connect, subscribe, publication arrives', async () => {
    assertKeysAccepted(srv, ['token_jwks_public_endpoint']);
    const c = js2(srv, backend, 'v1-ed', signJwt(ed, { sub: 'u-ed' }, { kid: 'v1-ed' }), (claims) => signJwt(ed, claims, { kid: 'v1-ed' }));
    await js2ConnectSubscribePublish(srv, c, '$ed-room', { text: 'Ed25519' });
    assert.equal(headerOf(c.sent[0].params.token).alg, 'EdDSA');
    c.disconnect();
  });

  tt('2.8.5: RS256 tokens (JWKS RSA key): connect, subscribe, publication arrives', async () => {
    const c = js2(srv, backend, 'v1-rsa', signJwt(rsa, { sub: 'u-rsa' }, { kid: 'v1-rsa' }), (claims) => signJwt(rsa, claims, { kid: 'v1-rsa' }));
    await js2ConnectSubscribePublish(srv, c, '$rsa-room', { text: 'RSA via JWKS' });
    assert.equal(jwks.fetches().length, 1, 'one JWKS request served both kids');
    c.disconnect();
  });

  tt('2.8.5: an EdDSA token signed by a key the set does not hold (same kid) → 3002', async () => {
    const c = js2(srv, backend, 'v1-ed-forged', signJwt(keyPair('ed25519'), { sub: 'u-mallory' }, { kid: 'v1-ed' }), () => '');
    await js2ExpectInvalidToken(c);
  });
});

// =============================================================================================
// centrifuge-js 5.8.0 (protocol v2)
// =============================================================================================

/** Wraps ws to record every command the client sends (decoded JSON). */
function recordingWebSocket5(sent) {
  return class RecordingWebSocket extends WebSocket {
    send(data, ...rest) {
      for (const line of String(data).split('\n')) {
        if (line.trim() !== '') sent.push(JSON.parse(line));
      }
      return super.send(data, ...rest);
    }
  };
}

/** A 5.8.0 client on `srv`; `opts` are passed on (token or getToken). */
function js5(srv, opts) {
  const sent = [];
  const c = new Centrifuge5(srv.wsUrl, {
    websocket: recordingWebSocket5(sent),
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    ...opts,
  });
  c.sent = sent;
  c.errors = [];
  c.on('error', (ctx) => c.errors.push(ctx));
  clients.push(c);
  return c;
}

/** Connects `c`; a disconnect instead fails at once with its code and reason. */
async function js5Connect(c) {
  const connected = waitEvent(c, 'connected', { what: 'connected' });
  const refused = waitEvent(c, 'disconnected', { what: 'disconnected' }).then((d) => {
    throw new Error(`expected connected, got disconnected ${JSON.stringify(d)}`);
  });
  refused.catch(() => {});
  c.connect();
  const ctx = await Promise.race([connected, refused]);
  assert.match(ctx.client, UUID_V4);
  assert.equal(c.state, 'connected');
  return ctx;
}

/** Subscribes `c` to `channel` with `subOpts` (token / getToken); an API publication must arrive. */
async function js5SubscribePublish(srv, c, channel, subOpts, data) {
  const sub = c.newSubscription(channel, subOpts);
  sub.errors = [];
  sub.on('error', (ctx) => sub.errors.push(ctx));
  const subscribed = waitEvent(sub, 'subscribed', { what: `subscribed to ${channel}` });
  sub.subscribe();
  await subscribed;
  assert.deepEqual(sub.errors, []);
  const cmd = c.sent.find((f) => f.subscribe && f.subscribe.channel === channel);
  assert.ok(cmd && cmd.subscribe.token, 'the subscribe command carried a token');
  const got = waitEvent(sub, 'publication', { what: `publication on ${channel}` });
  const reply = await apiV2(srv, 'publish', { channel, data });
  assert.equal(reply.error, undefined, JSON.stringify(reply));
  const pub = await got;
  assert.deepEqual(pub.data, data);
  assert.equal(pub.channel, channel);
  return { sub, cmd };
}

/** Connects `c` and expects the v2 invalid-token close: 3500, terminal. */
async function js5ExpectInvalidToken(c) {
  const states = recordEvents(c, ['connecting', 'connected', 'disconnected']);
  const disc = waitEvent(c, 'disconnected', { what: 'disconnected 3500' });
  c.connect();
  const ctx = await disc;
  assert.equal(ctx.code, 3500);
  assert.equal(ctx.reason, 'invalid token');
  await sleep(500); // a reconnect would have started by now (minReconnectDelay 100 ms)
  assert.equal(c.state, 'disconnected');
  assert.equal(c.sent.filter((cmd) => cmd.connect).length, 1, 'no reconnect');
  assert.deepEqual(states.map((e) => e.event), ['connecting', 'disconnected']);
}

/** Subscribes `c` to `channel` and expects error 103 (terminal unsubscribed); `c` stays up. */
async function js5ExpectSubscribeRefused(c, channel, subOpts) {
  const sub = c.newSubscription(channel, subOpts);
  sub.on('error', () => {});
  const un = waitEvent(sub, 'unsubscribed', { what: `unsubscribed from ${channel}` });
  sub.subscribe();
  const ctx = await un;
  assert.equal(ctx.code, 103);
  assert.equal(ctx.reason, 'permission denied');
  assert.ok(c.sent.some((f) => f.subscribe && f.subscribe.channel === channel), 'the subscribe was sent');
  assert.equal(c.state, 'connected', 'the connection stayed up');
  c.removeSubscription(sub);
}

describe('5.8.0 against a v6 config with client.token.rsa_public_key and ecdsa_public_key', () => {
  const rsa = keyPair('rsa');
  const ec = keyPair('ec');
  let srv;

  before(async () => {
    if (SKIP) return;
    srv = await server({ client: { token: { rsa_public_key: rsa.publicPem, ecdsa_public_key: ec.publicPem } } });
  });

  tt('5.8.0: the server takes both PEM keys (no "not supported" warning)', async () => {
    assertKeysAccepted(srv, ['rsa_public_key', 'ecdsa_public_key']);
  });

  tt('5.8.0: RS256 connection token (token option), RS256 subscription token from getToken, publication', async () => {
    const c = js5(srv, { token: signJwt(rsa, { sub: 'u-rs5', info: { n: 5 } }) });
    await js5Connect(c);
    const calls = [];
    const { cmd } = await js5SubscribePublish(srv, c, '$rs5', {
      getToken: async (ctx) => {
        calls.push(ctx);
        return signJwt(rsa, { sub: 'u-rs5', channel: ctx.channel });
      },
    }, { text: 'RS256 on v2' });
    assert.deepEqual(calls, [{ channel: '$rs5' }]);
    assert.equal(headerOf(c.sent[0].connect.token).alg, 'RS256');
    assert.equal(headerOf(cmd.subscribe.token).alg, 'RS256');
    c.disconnect();
  });

  tt('5.8.0: ES256 connection token (getToken option), ES256 subscription token (token option), publication', async () => {
    let connTokenCalls = 0;
    const c = js5(srv, {
      getToken: async () => {
        connTokenCalls += 1;
        return signJwt(ec, { sub: 'u-es5' });
      },
    });
    await js5Connect(c);
    assert.equal(connTokenCalls, 1);
    const { cmd } = await js5SubscribePublish(srv, c, '$es5', { token: signJwt(ec, { sub: 'u-es5', channel: '$es5' }) }, { text: 'ES256 on v2' });
    assert.equal(headerOf(c.sent[0].connect.token).alg, 'ES256');
    assert.equal(headerOf(cmd.subscribe.token).alg, 'ES256');
    c.disconnect();
  });

  tt('5.8.0: an RS256 token signed by another RSA key → 3500 invalid token, terminal', async () => {
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(keyPair('rsa'), { sub: 'u-mallory' }) }));
  });

  tt('5.8.0: an ES256 token signed by another P-256 key → 3500 invalid token, terminal', async () => {
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(keyPair('ec'), { sub: 'u-mallory' }) }));
  });

  tt('5.8.0: an EdDSA token is refused when no JWKS is configured (no PEM option for Ed25519) → 3500', async () => {
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(keyPair('ed25519'), { sub: 'u-mallory' }) }));
  });

  tt('5.8.0: an ES256 signature in DER form (not raw r‖s) → 3500', async () => {
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(ec, { sub: 'u-der' }, { der: true }) }));
  });

  tt('5.8.0: an expired RS256 connection token → 109, getToken gives a fresh one, connected', async () => {
    const calls = [];
    const c = js5(srv, {
      token: signJwt(rsa, { sub: 'u-exp5', exp: nowSec() - 30 }),
      getToken: async () => {
        calls.push(Date.now());
        return signJwt(rsa, { sub: 'u-exp5', exp: nowSec() + 3600 });
      },
    });
    await js5Connect(c);
    assert.equal(calls.length, 1, 'getToken was called once after error 109');
    const connects = c.sent.filter((f) => f.connect);
    assert.equal(connects.length, 2, 'connect, then connect with the new token');
    assert.notEqual(connects[0].connect.token, connects[1].connect.token);
    assert.equal(headerOf(connects[1].connect.token).alg, 'RS256');
    c.disconnect();
  });

  tt('5.8.0: a subscription token signed by another key → 103, the connection stays', async () => {
    const c = js5(srv, { token: signJwt(rsa, { sub: 'u-rs5b' }) });
    await js5Connect(c);
    await js5ExpectSubscribeRefused(c, '$rs5-forged', { token: signJwt(keyPair('rsa'), { sub: 'u-rs5b', channel: '$rs5-forged' }) });
    c.disconnect();
  });
});

describe('5.8.0 against a v6 config with client.token.jwks_public_endpoint (RSA, EC, OKP keys)', () => {
  const keys = { 'rsa-1': keyPair('rsa'), 'ec-1': keyPair('ec'), 'ed-1': keyPair('ed25519') };
  let srv;
  let jwks;

  before(async () => {
    if (SKIP) return;
    jwks = await startJwks(Object.entries(keys).map(([kid, k]) => publicJwk(k, kid)));
    stops.push(() => jwks.stop());
    srv = await server({ client: { token: { jwks_public_endpoint: jwks.url } } });
  });

  for (const kid of Object.keys(keys)) {
    tt(`5.8.0: JWKS kid ${kid} (${keys[kid].alg}): connect, subscription token, publication`, async () => {
      assertKeysAccepted(srv, ['jwks_public_endpoint']);
      const key = keys[kid];
      const user = `u-${kid}`;
      const c = js5(srv, { token: signJwt(key, { sub: user }, { kid }) });
      await js5Connect(c);
      await js5SubscribePublish(srv, c, `$jwks-${kid}`, {
        getToken: async (ctx) => signJwt(key, { sub: user, channel: ctx.channel }, { kid }),
      }, { kid });
      assert.equal(headerOf(c.sent[0].connect.token).alg, key.alg);
      c.disconnect();
    });
  }

  tt('5.8.0: one JWKS request served all three kids (cached per kid)', async () => {
    assert.equal(jwks.fetches().length, 1, JSON.stringify(jwks.requests));
    assert.equal(jwks.requests[0].method, 'GET');
  });

  tt('5.8.0: a token with a published kid but signed by another key → 3500', async () => {
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(keyPair('ec'), { sub: 'u-mallory' }, { kid: 'ec-1' }) }));
  });

  tt('5.8.0: a token whose kid is not in the set → 3500', async () => {
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(keyPair('rsa'), { sub: 'u-mallory' }, { kid: 'nobody' }) }));
  });

  tt('5.8.0: a token without a kid → 3500', async () => {
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(keys['rsa-1'], { sub: 'u-nokid' }) }));
  });

  tt('5.8.0: a JWKS-published key with a header alg of another family → 3500', async () => {
    // Signed correctly by the RSA key of kid rsa-1, but the header claims ES256.
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(keys['rsa-1'], { sub: 'u-mallory' }, { kid: 'rsa-1', alg: 'ES256' }) }));
  });
});

describe('5.8.0: JWKS key rotation', () => {
  const k1 = keyPair('rsa');
  const k2 = keyPair('ec');
  let srv;
  let jwks;

  before(async () => {
    if (SKIP) return;
    jwks = await startJwks([publicJwk(k1, 'k1')]);
    stops.push(() => jwks.stop());
    srv = await server({ client: { token: { jwks_public_endpoint: jwks.url } } });
  });

  tt('5.8.0: new kid appears and the old one is removed → after the refetch, new k1 tokens are refused', async () => {
    const first = js5(srv, { token: signJwt(k1, { sub: 'u-rot' }, { kid: 'k1' }) });
    await js5Connect(first);
    assert.equal(jwks.fetches().length, 1);
    const fetchedAt = jwks.fetches()[0].at;

    // The identity provider rotates: k2 published, k1 withdrawn.
    jwks.setKeys([publicJwk(k2, 'k2')]);
    // Until the set is fetched again, k1 is still the cached key.
    const stillCached = js5(srv, { token: signJwt(k1, { sub: 'u-rot' }, { kid: 'k1' }) });
    await js5Connect(stillCached);
    assert.equal(jwks.fetches().length, 1, 'a cached kid causes no request');

    const wait = fetchedAt + REFETCH_INTERVAL_MS + 500 - Date.now();
    if (wait > 0) await sleep(wait);
    // An unknown kid makes the server fetch the set again.
    const rotated = js5(srv, { token: signJwt(k2, { sub: 'u-rot' }, { kid: 'k2' }) });
    await js5Connect(rotated);
    assert.equal(jwks.fetches().length, 2, 'the unknown kid k2 caused one refetch');
    await js5SubscribePublish(srv, rotated, '$rotated', { token: signJwt(k2, { sub: 'u-rot', channel: '$rotated' }, { kid: 'k2' }) }, { after: 'rotation' });

    // k1 is gone from the refetched set: a fresh k1 token no longer verifies.
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(k1, { sub: 'u-rot' }, { kid: 'k1' }) }));
    for (const c of [first, stillCached, rotated]) c.disconnect();
  });
});

describe('5.8.0: JWKS endpoint down', () => {
  const kA = keyPair('ed25519');
  const kB = keyPair('rsa');
  let srv;
  let jwks;

  before(async () => {
    if (SKIP) return;
    jwks = await startJwks([publicJwk(kA, 'a')]);
    stops.push(() => jwks.stop());
    srv = await server({ client: { token: { jwks_public_endpoint: jwks.url } } });
  });

  tt('5.8.0: endpoint down → an uncached kid is refused (3500), a cached kid still connects; back up → accepted', async () => {
    const cachedClient = js5(srv, { token: signJwt(kA, { sub: 'u-a' }, { kid: 'a' }) });
    await js5Connect(cachedClient);
    assert.equal(jwks.fetches().length, 1);
    const fetchedAt = jwks.fetches()[0].at;

    await jwks.down();
    jwks.setKeys([publicJwk(kA, 'a'), publicJwk(kB, 'b')]); // what it will serve when it is back
    const wait = fetchedAt + REFETCH_INTERVAL_MS + 500 - Date.now();
    if (wait > 0) await sleep(wait);

    // kid b was never fetched: with the endpoint down it cannot be verified.
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(kB, { sub: 'u-b' }, { kid: 'b' }) }));
    const failedAt = Date.now();
    // kid a is cached: a new client with a fresh token still gets in, and is served.
    const again = js5(srv, { token: signJwt(kA, { sub: 'u-a2' }, { kid: 'a' }) });
    await js5Connect(again);
    await js5SubscribePublish(srv, again, '$while-down', { token: signJwt(kA, { sub: 'u-a2', channel: '$while-down' }, { kid: 'a' }) }, { down: true });
    assert.equal(cachedClient.state, 'connected', 'the first client was not affected');
    assert.ok(
      srv.output().split('\n').some((l) => /jwks/i.test(l) && /fail/i.test(l)),
      'the failed JWKS fetch is logged',
    );

    // The endpoint comes back: after the refetch interval kid b verifies.
    await jwks.up();
    const wait2 = failedAt + REFETCH_INTERVAL_MS + 500 - Date.now();
    if (wait2 > 0) await sleep(wait2);
    const back = js5(srv, { token: signJwt(kB, { sub: 'u-b' }, { kid: 'b' }) });
    await js5Connect(back);
    assert.equal(jwks.fetches().length, 2, 'one request after the endpoint came back');
    for (const c of [cachedClient, again, back]) c.disconnect();
  });
});

describe('5.8.0: dynamic JWKS per tenant ({{tenant}} from issuer_regex)', () => {
  // Both tenants publish a key under the same kid: the cache must keep them apart
  // (CVE-2026-49998), and only URLs of the listed tenants may ever be requested (CVE-2026-32301).
  const acme = keyPair('rsa');
  const globex = keyPair('rsa'); // same key type: only the cache key can tell them apart
  const ISS = (t) => `https://idp.example/${t}`;
  const pathOf = (t) => `/tenants/${t}/jwks.json`;
  let srv;
  let jwks;

  before(async () => {
    if (SKIP) return;
    jwks = await startJwks([publicJwk(acme, 'shared')], { path: pathOf('acme') });
    jwks.setKeys([publicJwk(globex, 'shared')], pathOf('globex'));
    jwks.setKeys([publicJwk(acme, 'shared')], pathOf('evil')); // an unlisted tenant's set
    stops.push(() => jwks.stop());
    srv = await server({
      client: {
        token: {
          jwks_public_endpoint: `${jwks.base}/tenants/{{tenant}}/jwks.json`,
          issuer_regex: '^https://idp\\.example/(?P<tenant>acme|globex)$',
        },
      },
    });
  });

  tt('5.8.0: each tenant connects and subscribes with its own key, fetched from its own path', async () => {
    assertKeysAccepted(srv, ['jwks_public_endpoint', 'issuer_regex']);
    for (const [tenant, key] of [['acme', acme], ['globex', globex]]) {
      const user = `u-${tenant}`;
      const c = js5(srv, { token: signJwt(key, { sub: user, iss: ISS(tenant) }, { kid: 'shared' }) });
      await js5Connect(c);
      await js5SubscribePublish(srv, c, `$${tenant}-room`, {
        getToken: async (ctx) => signJwt(key, { sub: user, channel: ctx.channel, iss: ISS(tenant) }, { kid: 'shared' }),
      }, { tenant });
      assert.equal(jwks.fetches(pathOf(tenant)).length, 1, `one request to ${tenant}'s path`);
      c.disconnect();
    }
  });

  tt("5.8.0: tenant A's key with tenant B's issuer and the same kid → 3500 (cache per URL and kid)", async () => {
    // Both sets are cached under kid "shared"; acme's key must not verify a globex token.
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(acme, { sub: 'u-mallory', iss: ISS('globex') }, { kid: 'shared' }) }));
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(globex, { sub: 'u-mallory', iss: ISS('acme') }, { kid: 'shared' }) }));
  });

  tt('5.8.0: an issuer outside the listed tenants → 3500 and no request to any other path', async () => {
    const before = jwks.requests.length;
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(acme, { sub: 'u-mallory', iss: ISS('evil') }, { kid: 'shared' }) }));
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(acme, { sub: 'u-mallory', iss: `${ISS('acme')}/../evil` }, { kid: 'shared' }) }));
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(acme, { sub: 'u-mallory' }, { kid: 'shared' }) }));
    assert.deepEqual(jwks.requests.slice(before), [], 'no JWKS request for a refused issuer');
    assert.deepEqual(jwks.fetches(pathOf('evil')), []);
  });
});

describe('5.8.0 against a v6 config with a separate client.subscription_token block', () => {
  const connRsa = keyPair('rsa');
  const subEc = keyPair('ec');
  let srv;

  before(async () => {
    if (SKIP) return;
    srv = await server({
      client: {
        token: { rsa_public_key: connRsa.publicPem },
        subscription_token: { enabled: true, ecdsa_public_key: subEc.publicPem },
      },
    });
  });

  tt('5.8.0: RS256 connection token, ES256 subscription token from the separate key, publication', async () => {
    assertKeysAccepted(srv, ['client.subscription_token', 'rsa_public_key', 'ecdsa_public_key']);
    const c = js5(srv, { token: signJwt(connRsa, { sub: 'u-sep' }) });
    await js5Connect(c);
    await js5SubscribePublish(srv, c, '$sep', {
      getToken: async (ctx) => signJwt(subEc, { sub: 'u-sep', channel: ctx.channel }),
    }, { separate: true });
    c.disconnect();
  });

  tt('5.8.0: a subscription token signed with the connection key → 103', async () => {
    const c = js5(srv, { token: signJwt(connRsa, { sub: 'u-sep2' }) });
    await js5Connect(c);
    await js5ExpectSubscribeRefused(c, '$sep-conn-key', { token: signJwt(connRsa, { sub: 'u-sep2', channel: '$sep-conn-key' }) });
    c.disconnect();
  });

  tt('5.8.0: an HS256 subscription token with the connection HMAC secret → 103 (nothing inherited)', async () => {
    const c = js5(srv, { token: signJwt(connRsa, { sub: 'u-sep3' }) });
    await js5Connect(c);
    const hmac = srv.config.token_hmac_secret_key;
    await js5ExpectSubscribeRefused(c, '$sep-hmac', { token: hs256({ sub: 'u-sep3', channel: '$sep-hmac' }, hmac) });
    c.disconnect();
  });

  tt('5.8.0: a connection token signed with the subscription key → 3500', async () => {
    await js5ExpectInvalidToken(js5(srv, { token: signJwt(subEc, { sub: 'u-mallory' }) }));
  });
});
