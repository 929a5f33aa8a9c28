// The proxies to the application backend (PROXY.md), seen through real clients: centrifuge-js
// 2.8.5 (protocol v1) against a Centrifugo 2.x flat config (`proxy_*_endpoint`, namespace
// `proxy_subscribe` / `proxy_publish`) and centrifuge-js 5.8.0 (protocol v2) against a v6 nested
// config (`client.proxy.connect` / `refresh`, `channel.proxy.*`, `rpc.proxy`). The backend is a
// node:http server started here (lib/backend.mjs); it records every request, and its answer
// depends on the `case` cookie the client sent on the WebSocket upgrade, or on the user, channel,
// method. Each test checks what the client sees and what the backend received (§3.2 bodies).
//
// Clients connect WITHOUT a token, so the connect proxy decides who they are. Cases per
// generation: connect with a cookie (user, data in the connect event), rpc round trip, a
// subscribe refused by the backend, a publication replaced by the publish proxy, a refresh that
// extends and one that expires (3005, reconnect), a backend that hangs past the proxy timeout
// (error 100, still connected), and a backend that is down (connect errors, retries, others
// still served).
//
// The reference server has no proxy support in this harness: the file is skipped under
// ROTOR_TEST_SERVER=ref.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import XMLHttpRequest from 'xhr2';
import Centrifuge from 'centrifuge2';
import { Centrifuge as Centrifuge5 } from 'centrifuge5';
import {
  SERVER_KIND, UUID_V4, apiV1, apiV2, freePort, nowSec, recordEvents, sleep, startServer, until, waitEvent,
} from './lib/harness.mjs';
import { cookies, headerWebSocket, startProxyBackend } from './lib/backend.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'proxies are tested against rotor only' : false;
const TIMEOUT = { timeout: 20000, skip: SKIP };

const SLOW_MS = 2500; // how long the backend takes for rpc method "slow" (proxy timeout is 1 s)

/**
 * The application backend's answers (both generations). Connect: by the `case` cookie.
 * Refresh: by user. RPC: by method. Subscribe: by channel. Publish: replaces the data.
 */
function policy(backendRef) {
  return (req) => {
    const b = req.body || {};
    switch (req.path) {
      case '/connect': {
        const c = cookies(req.headers).case;
        switch (c) {
          case 'main':
            return { body: { result: { user: '42', info: { name: 'Ann' }, data: { welcome: 'hello 42' } } } };
          case 'peer':
            return { body: { result: { user: '43' } } };
          case 'extend':
            return { body: { result: { user: 'r-extend', expire_at: nowSec() + 2 } } };
          case 'expire': {
            const n = backendRef().to('/connect', (r) => cookies(r.headers).case === 'expire').length;
            // The first connection expires in 2 s; the one after the reconnect does not expire.
            return { body: { result: n === 1 ? { user: 'r-expire', expire_at: nowSec() + 2 } : { user: 'r-expire' } } };
          }
          case 'late':
            return { body: { result: { user: 'late' } } };
          default:
            return { body: { error: { code: 1000, message: 'no session' } } };
        }
      }
      case '/refresh':
        if (b.user === 'r-extend') return { body: { result: { expire_at: nowSec() + 60 } } };
        if (b.user === 'r-expire') return { body: { result: { expired: true } } };
        return { status: 500, body: 'unexpected refresh' };
      case '/rpc':
        if (b.method === 'getPrice') return { body: { result: { data: { price: 2019, id: b.data && b.data.id } } } };
        if (b.method === 'slow') return { delayMs: SLOW_MS, body: { result: { data: { late: true } } } };
        if (b.method === undefined || b.method === '') return { body: { result: { data: { echo: b.data } } } };
        return { body: { error: { code: 1002, message: 'unknown method' } } };
      case '/subscribe':
        if (b.channel === 'sp:denied') return { body: { error: { code: 1001, message: 'denied' } } };
        return { body: { result: { info: { role: 'reader', channel: b.channel }, data: { hello: b.channel } } } };
      case '/publish':
        return { body: { result: { data: { text: String((b.data && b.data.text) || '').toUpperCase(), moderated: true } } } };
      default:
        return { status: 404, body: 'no such path' };
    }
  };
}

/** The §3.2 head every request has, for a JSON WebSocket client. */
function assertHead(body, clientId) {
  if (clientId !== undefined) assert.equal(body.client, clientId, `client: ${JSON.stringify(body)}`);
  else assert.match(body.client, UUID_V4, `client: ${JSON.stringify(body)}`);
  assert.equal(body.transport, 'websocket', JSON.stringify(body));
  assert.equal(body.protocol, 'json', JSON.stringify(body));
  assert.equal(body.encoding, 'json', JSON.stringify(body));
}

const servers = [];
const backends = [];
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
  for (const b of backends) await b.stop();
});

async function backendWith(opts) {
  let b;
  b = await startProxyBackend(policy(() => b), opts);
  backends.push(b);
  return b;
}

async function server(config) {
  const s = await startServer(config);
  servers.push(s);
  return s;
}

/** Cookie header of a case (the backend reads `case`; `session` shows the whole header arrives). */
const cookieOf = (caseName) => `case=${caseName}; session=s-${caseName}`;

// =============================================================================================
// centrifuge-js 2.8.5, Centrifugo 2.x flat config
// =============================================================================================

describe('2.8.5 against a 2.x flat proxy config', () => {
  let backend;
  let srv;
  let downSrv;
  let downPort;

  before(async () => {
    if (SKIP) return;
    backend = await backendWith();
    srv = await server({
      proxy_connect_endpoint: backend.url('/connect'),
      proxy_connect_timeout: 1,
      proxy_refresh_endpoint: backend.url('/refresh'),
      proxy_refresh_timeout: 1,
      proxy_rpc_endpoint: backend.url('/rpc'),
      proxy_rpc_timeout: 1,
      proxy_subscribe_endpoint: backend.url('/subscribe'),
      proxy_subscribe_timeout: 1,
      proxy_publish_endpoint: backend.url('/publish'),
      proxy_publish_timeout: 1,
      namespaces: [
        { name: 'sp', proxy_subscribe: true, presence: true },
        { name: 'pp', proxy_publish: true, publish: true },
      ],
    });
    downPort = await freePort();
    downSrv = await server({
      proxy_connect_endpoint: `http://127.0.0.1:${downPort}/connect`,
      proxy_connect_timeout: 1,
    });
  });

  function js2(caseName, { url = srv.wsUrl, token } = {}) {
    const log = {};
    const c = new Centrifuge(url, {
      websocket: headerWebSocket({ Cookie: cookieOf(caseName) }, log),
      xmlhttprequest: XMLHttpRequest,
      minRetry: 200,
      maxRetry: 1000,
    });
    if (token) c.setToken(token);
    c.log = log;
    clients.push(c);
    return c;
  }

  let main;
  let mainId;

  tt('2.8.5: connects without a token through the connect proxy; the cookie reached the backend', async () => {
    main = js2('main');
    main.setConnectData({ device: 'node' });
    const connected = waitEvent(main, 'connect', { what: 'connect of the proxy user' });
    main.connect();
    const ctx = await connected;
    assert.match(ctx.client, UUID_V4);
    assert.deepEqual(ctx.data, { welcome: 'hello 42' }, 'the backend data is in the connect event');
    mainId = ctx.client;
    const connects = backend.to('/connect', (r) => cookies(r.headers).case === 'main');
    assert.equal(connects.length, 1);
    const req = connects[0];
    assert.equal(req.method, 'POST');
    assert.equal(req.headers.cookie, cookieOf('main'), 'the Cookie header is forwarded (2.x default headers)');
    assert.match(req.headers['content-type'], /^application\/json/);
    assertHead(req.body, mainId);
    assert.equal(req.body.name, 'js');
    assert.deepEqual(req.body.data, { device: 'node' }, 'connect data is forwarded');
    assert.equal(main.log.sent[0]?.params?.token, undefined, 'no token was sent');
  });

  tt('2.8.5: namedRPC and rpc round trip through the rpc proxy', async () => {
    assert.ok(mainId, 'connected');
    const res = await main.namedRPC('getPrice', { id: 12 });
    assert.deepEqual(res, { data: { price: 2019, id: 12 } });
    const req = backend.to('/rpc', (r) => r.body.method === 'getPrice').at(-1);
    assertHead(req.body, mainId);
    assert.equal(req.body.user, '42', 'the user the connect proxy gave');
    assert.deepEqual(req.body.data, { id: 12 });
    assert.equal(req.headers.cookie, cookieOf('main'), 'the upgrade headers go to every proxy of the connection');

    const echo = await main.rpc({ x: [1, 2] });
    assert.deepEqual(echo, { data: { echo: { x: [1, 2] } } });
    const req2 = backend.requests.filter((r) => r.path === '/rpc').at(-1);
    assert.ok(req2.body.method === undefined || req2.body.method === '', `no method: ${JSON.stringify(req2.body)}`);
  });

  tt('2.8.5: a subscribe the backend refuses ends with its error code; an allowed one gets its info', async () => {
    assert.ok(mainId, 'connected');
    const denied = main.subscribe('sp:denied', {});
    const err = await waitEvent(denied, 'error', { what: 'subscription error on sp:denied' });
    // 2.8.5's error context is the reply error plus channel and isResubscribe.
    assert.deepEqual({ ...err }, { code: 1001, message: 'denied', channel: 'sp:denied', isResubscribe: false });
    const req = backend.to('/subscribe', (r) => r.body.channel === 'sp:denied').at(-1);
    assertHead(req.body, mainId);
    assert.equal(req.body.user, '42');
    assert.equal(main.isConnected(), true, 'the connection stays up');

    const open = main.subscribe('sp:open', {});
    await waitEvent(open, 'subscribe', { what: 'subscribed to sp:open' });
    const p = await apiV1(srv, 'presence', { channel: 'sp:open' });
    assert.deepEqual(p.presence[mainId].chan_info, { role: 'reader', channel: 'sp:open' }, 'backend info is the chan info');
    assert.equal(p.presence[mainId].user, '42');
  });

  tt('2.8.5: the publish proxy replaces the data another subscriber receives', async () => {
    assert.ok(mainId, 'connected');
    const peer = js2('peer');
    peer.connect();
    await waitEvent(peer, 'connect');
    const sub = peer.subscribe('pp:room', {});
    await waitEvent(sub, 'subscribe', { what: 'peer subscribed to pp:room' });
    const got = waitEvent(sub, 'publish', { what: 'publication on pp:room' });
    await main.publish('pp:room', { text: 'hi there' });
    const pub = await got;
    assert.deepEqual(pub.data, { text: 'HI THERE', moderated: true }, 'the replaced data');
    const req = backend.to('/publish').at(-1);
    assertHead(req.body, mainId);
    assert.equal(req.body.user, '42');
    assert.equal(req.body.channel, 'pp:room');
    assert.deepEqual(req.body.data, { text: 'hi there' });
  });

  tt('2.8.5: a backend slower than the proxy timeout → rpc error 100, still connected', async () => {
    assert.ok(mainId, 'connected');
    const t0 = Date.now();
    await assert.rejects(main.namedRPC('slow', {}), (e) => {
      assert.deepEqual(e, { code: 100, message: 'internal server error' });
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= 800 && took < SLOW_MS, `error at the proxy timeout (1 s), took ${took} ms`);
    assert.equal(main.isConnected(), true);
    const res = await main.namedRPC('getPrice', { id: 1 });
    assert.deepEqual(res, { data: { price: 2019, id: 1 } }, 'the connection still works');
    assert.equal(main.log.closes.length, 0, 'no close');
  });

  tt('2.8.5: refresh proxy extends a connection past its first expiry', async () => {
    const c = js2('extend');
    const events = recordEvents(c, ['connect', 'disconnect']);
    const t0 = Date.now();
    c.connect();
    await waitEvent(c, 'connect');
    const reply = c.log.received.find((f) => f.id === 1);
    assert.ok(reply && reply.result, `connect reply: ${JSON.stringify(c.log.received)}`);
    assert.ok(!reply.result.expires, `server-side refresh: the reply does not ask the client to refresh: ${JSON.stringify(reply)}`);
    const refresh = await until(() => backend.to('/refresh', (r) => r.body.user === 'r-extend')[0], { timeoutMs: 6000, what: 'refresh request' });
    assertHead(refresh.body, events[0].ctx.client);
    assert.equal(refresh.body.user, 'r-extend');
    // The first expiry was ~2 s after the connect; stay connected well past it.
    await sleep(Math.max(0, t0 + 4000 - Date.now()));
    assert.deepEqual(events.map((e) => e.event), ['connect'], 'no disconnect');
    assert.equal(c.isConnected(), true);
    assert.deepEqual(c.log.closes, []);
    assert.equal(c.log.sent.filter((f) => f.method === 10).length, 0, 'the client sent no refresh command');
    c.disconnect();
  });

  tt('2.8.5: refresh proxy answering expired → closed 3005 "expired", reconnects', async () => {
    const c = js2('expire');
    const events = recordEvents(c, ['connect', 'disconnect']);
    c.connect();
    await waitEvent(c, 'connect');
    const disc = await waitEvent(c, 'disconnect', { timeoutMs: 6000, what: 'disconnect at expiry' });
    assert.equal(disc.reason, 'expired');
    assert.equal(disc.reconnect, true);
    assert.equal(c.log.closes[0].code, 3005);
    assert.deepEqual(JSON.parse(c.log.closes[0].reason), { reason: 'expired', reconnect: true });
    await until(() => events.filter((e) => e.event === 'connect').length === 2, { timeoutMs: 5000, what: 'reconnected' });
    assert.equal(backend.to('/refresh', (r) => r.body.user === 'r-expire').length, 1);
    assert.equal(backend.to('/connect', (r) => cookies(r.headers).case === 'expire').length, 2, 'the reconnect asked the connect proxy again');
    c.disconnect();
  });

  tt('2.8.5: backend down → connect errors 100, the client keeps retrying, others are served', async () => {
    const c = js2('late', { url: downSrv.wsUrl });
    const events = recordEvents(c, ['connect', 'disconnect']);
    c.connect();
    await until(() => c.log.received.filter((f) => f.error).length >= 2, { timeoutMs: 6000, what: 'two connect errors' });
    for (const f of c.log.received.filter((x) => x.error)) {
      assert.deepEqual(f.error, { code: 100, message: 'internal server error' }, JSON.stringify(f));
    }
    assert.deepEqual(events.map((e) => e.event), ['disconnect']);
    assert.deepEqual(events[0].ctx, { reason: 'connect error', reconnect: true });

    // A client with a token does not need the backend.
    const other = js2('token', { url: downSrv.wsUrl, token: downSrv.token({ sub: 'u-token' }) });
    other.connect();
    await waitEvent(other, 'connect', { what: 'token client connected' });

    // The backend comes up: the retrying client gets in.
    await backendWith({ port: downPort });
    await waitEvent(c, 'connect', { timeoutMs: 6000, what: 'connect once the backend is up' });
    assert.ok(c.log.sent.filter((f) => !f.method && f.id).length >= 3, 'several connect attempts');
  });
});

// =============================================================================================
// centrifuge-js 5.8.0, Centrifugo v6 nested config
// =============================================================================================

describe('5.8.0 against a v6 nested proxy config', () => {
  let backend;
  let srv;
  let downSrv;
  let downPort;

  const proxyObj = (b, p) => ({ endpoint: b.url(p), timeout: '1s' });

  before(async () => {
    if (SKIP) return;
    backend = await backendWith();
    srv = await server({
      client: {
        proxy: {
          connect: { ...proxyObj(backend, '/connect'), enabled: true, http_headers: ['Cookie'], emulated_headers: ['X-Tenant'] },
          refresh: { ...proxyObj(backend, '/refresh'), enabled: true },
        },
      },
      channel: {
        proxy: { subscribe: proxyObj(backend, '/subscribe'), publish: proxyObj(backend, '/publish') },
        namespaces: [
          { name: 'sp', subscribe_proxy_enabled: true, presence: true },
          { name: 'pp', publish_proxy_enabled: true, allow_subscribe_for_client: true },
        ],
      },
      rpc: { proxy: proxyObj(backend, '/rpc'), without_namespace: { proxy_enabled: true } },
    });
    downPort = await freePort();
    downSrv = await server({
      client: {
        proxy: { connect: { endpoint: `http://127.0.0.1:${downPort}/connect`, timeout: '1s', enabled: true, http_headers: ['Cookie'] } },
      },
    });
  });

  function js5(caseName, { url = srv.wsUrl, token } = {}) {
    const log = {};
    const c = new Centrifuge5(url, {
      websocket: headerWebSocket({ Cookie: cookieOf(caseName), 'X-Other': 'not-listed' }, log),
      headers: { 'X-Tenant': `t-${caseName}` },
      data: { device: 'node' },
      token,
      minReconnectDelay: 100,
      maxReconnectDelay: 1000,
    });
    c.log = log;
    c.errors = [];
    c.on('error', (ctx) => c.errors.push(ctx));
    clients.push(c);
    return c;
  }

  let main;
  let mainId;

  tt('5.8.0: connects without a token through the connect proxy; cookie and emulated header reached it', async () => {
    main = js5('main');
    const connected = waitEvent(main, 'connected', { what: 'connected as the proxy user' });
    main.connect();
    const ctx = await connected;
    assert.match(ctx.client, UUID_V4);
    assert.deepEqual(ctx.data, { welcome: 'hello 42' }, 'the backend data is in the connected event');
    mainId = ctx.client;
    const connect = main.log.sent.find((f) => f.connect);
    assert.equal(connect.connect.token, undefined, 'no token was sent');
    assert.deepEqual(connect.connect.headers, { 'X-Tenant': 't-main' }, 'the client sent emulated headers');
    const req = backend.to('/connect', (r) => cookies(r.headers).case === 'main').at(-1);
    assert.equal(req.headers.cookie, cookieOf('main'), 'Cookie is in http_headers');
    assert.equal(req.headers['x-tenant'], 't-main', 'X-Tenant is in emulated_headers');
    assert.equal(req.headers['x-other'], undefined, 'a header nobody listed is not forwarded');
    assertHead(req.body, mainId);
    assert.equal(req.body.name, 'js');
    assert.deepEqual(req.body.data, { device: 'node' });
  });

  tt('5.8.0: rpc round trip through rpc.proxy (which forwards no headers)', async () => {
    assert.ok(mainId, 'connected');
    const res = await main.rpc('getPrice', { id: 12 });
    assert.deepEqual(res, { data: { price: 2019, id: 12 } });
    const req = backend.to('/rpc', (r) => r.body.method === 'getPrice').at(-1);
    assertHead(req.body, mainId);
    assert.equal(req.body.user, '42');
    assert.equal(req.body.method, 'getPrice');
    assert.deepEqual(req.body.data, { id: 12 });
    assert.equal(req.headers.cookie, undefined, 'rpc.proxy lists no http_headers');
  });

  tt('5.8.0: a subscribe the backend refuses → unsubscribed with its code; an allowed one gets data and info', async () => {
    assert.ok(mainId, 'connected');
    const denied = main.newSubscription('sp:denied', { minResubscribeDelay: 100 });
    denied.on('error', () => {});
    const events = recordEvents(denied, ['subscribing', 'subscribed', 'unsubscribed', 'error']);
    const unsub = waitEvent(denied, 'unsubscribed', { what: 'sp:denied unsubscribed' });
    denied.subscribe();
    const ctx = await unsub;
    assert.equal(ctx.code, 1001);
    assert.equal(ctx.reason, 'denied');
    await sleep(300);
    assert.deepEqual(events.map((e) => e.event), ['subscribing', 'unsubscribed'], 'no retry');
    assert.equal(backend.to('/subscribe', (r) => r.body.channel === 'sp:denied').length, 1);
    assert.equal(main.state, 'connected');

    const open = main.newSubscription('sp:open', { data: { want: 'all' } });
    const subscribed = waitEvent(open, 'subscribed', { what: 'subscribed to sp:open' });
    open.subscribe();
    const sctx = await subscribed;
    assert.deepEqual(sctx.data, { hello: 'sp:open' }, 'the backend result data is in the subscribed event');
    const req = backend.to('/subscribe', (r) => r.body.channel === 'sp:open').at(-1);
    assertHead(req.body, mainId);
    assert.equal(req.body.user, '42');
    assert.deepEqual(req.body.data, { want: 'all' }, 'subscribe data is forwarded (6.x)');
    const p = await apiV2(srv, 'presence', { channel: 'sp:open' });
    assert.deepEqual(p.result.presence[mainId].chan_info, { role: 'reader', channel: 'sp:open' });
  });

  tt('5.8.0: the publish proxy replaces the data another subscriber receives', async () => {
    assert.ok(mainId, 'connected');
    const peer = js5('peer');
    peer.connect();
    await waitEvent(peer, 'connected');
    const sub = peer.newSubscription('pp:room');
    const subscribed = waitEvent(sub, 'subscribed', { what: 'peer subscribed to pp:room' });
    sub.subscribe();
    await subscribed;
    const got = waitEvent(sub, 'publication', { what: 'publication on pp:room' });
    await main.publish('pp:room', { text: 'hi there' });
    const pub = await got;
    assert.deepEqual(pub.data, { text: 'HI THERE', moderated: true });
    const req = backend.to('/publish').at(-1);
    assertHead(req.body, mainId);
    assert.equal(req.body.user, '42');
    assert.equal(req.body.channel, 'pp:room');
    assert.deepEqual(req.body.data, { text: 'hi there' });
  });

  tt('5.8.0: a backend slower than the proxy timeout → rpc error 100 temporary, still connected', async () => {
    assert.ok(mainId, 'connected');
    const t0 = Date.now();
    await assert.rejects(main.rpc('slow', {}), (e) => {
      assert.equal(e.code, 100);
      assert.equal(e.message, 'internal server error');
      assert.equal(e.temporary, true);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= 800 && took < SLOW_MS, `error at the proxy timeout (1 s), took ${took} ms`);
    assert.equal(main.state, 'connected');
    const res = await main.rpc('getPrice', { id: 2 });
    assert.deepEqual(res, { data: { price: 2019, id: 2 } });
    assert.deepEqual(main.log.closes, []);
  });

  tt('5.8.0: refresh proxy extends a connection past its first expiry', async () => {
    const c = js5('extend');
    const t0 = Date.now();
    c.connect();
    const { client } = await waitEvent(c, 'connected');
    const events = recordEvents(c, ['connected', 'connecting', 'disconnected']);
    const reply = c.log.received.find((f) => f.connect);
    assert.ok(!reply.connect.expires, `server-side refresh: ${JSON.stringify(reply)}`);
    const refresh = await until(() => backend.to('/refresh', (r) => r.body.user === 'r-extend')[0], { timeoutMs: 6000, what: 'refresh request' });
    assertHead(refresh.body, client);
    await sleep(Math.max(0, t0 + 4000 - Date.now()));
    assert.deepEqual(events.map((e) => e.event), [], 'no reconnect');
    assert.equal(c.state, 'connected');
    assert.deepEqual(c.log.closes, []);
    assert.equal(c.log.sent.filter((f) => f.refresh).length, 0, 'the client sent no refresh command');
    c.disconnect();
  });

  tt('5.8.0: refresh proxy answering expired → 3005 "connection expired", reconnects', async () => {
    const c = js5('expire');
    const events = recordEvents(c, ['connected', 'connecting', 'disconnected']);
    c.connect();
    await waitEvent(c, 'connected');
    const connecting = await waitEvent(c, 'connecting', { timeoutMs: 6000, what: 'reconnecting at expiry' });
    assert.equal(connecting.code, 3005);
    assert.equal(connecting.reason, 'connection expired');
    assert.equal(c.log.closes[0].code, 3005);
    await until(() => events.filter((e) => e.event === 'connected').length === 2, { timeoutMs: 5000, what: 'reconnected' });
    assert.ok(!events.some((e) => e.event === 'disconnected'), 'never terminally disconnected');
    assert.equal(backend.to('/refresh', (r) => r.body.user === 'r-expire').length, 1);
    assert.equal(backend.to('/connect', (r) => cookies(r.headers).case === 'expire').length, 2);
    c.disconnect();
  });

  tt('5.8.0: backend down → temporary connect error 100, retries, others are served', async () => {
    const c = js5('late', { url: downSrv.wsUrl });
    c.connect();
    await until(() => c.errors.length >= 2, { timeoutMs: 6000, what: 'two connect errors' });
    for (const e of c.errors) {
      assert.equal(e.type, 'connect');
      assert.equal(e.error.code, 100);
      assert.equal(e.error.message, 'internal server error');
      assert.equal(e.error.temporary, true);
    }
    assert.equal(c.state, 'connecting');

    const other = js5('token', { url: downSrv.wsUrl, token: downSrv.token({ sub: 'u-token' }) });
    other.connect();
    await waitEvent(other, 'connected', { what: 'token client connected' });

    await backendWith({ port: downPort });
    await waitEvent(c, 'connected', { timeoutMs: 6000, what: 'connected once the backend is up' });
    assert.ok(c.log.sent.filter((f) => f.connect).length >= 3, 'several connect attempts');
  });
});
