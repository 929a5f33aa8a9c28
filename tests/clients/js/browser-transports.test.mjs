// The transports beyond WebSocket in a real browser: headless Chromium (Debian's `chromium`,
// driven by playwright-core as in admin.test.mjs) loads a test page from another origin than the
// server's (a tiny page server on its own port serves the page and the npm clients' browser
// builds), and the page's client has no usable WebSocket:
//
// * centrifuge-js 5.8.0 with transports [websocket, http_stream, sse] and no `window.WebSocket`
//   connects over http_stream; with [websocket, sse] and a WebSocket endpoint that refuses the
//   connection it falls back to sse. Each receives a publication made through `POST /api/publish`
//   and one it publishes itself, all through cross-origin requests with CORS (`allowed_origins`
//   lists the page's origin).
// * A page from an origin not in `allowed_origins` cannot connect over http_stream or sse: the
//   browser withholds the server's answers, and the http_stream connect POST never leaves it.
//   Nor over SockJS: the browser blocks the cross-origin `/info` request, no session is made.
// * centrifuge-js 2.8.5 + sockjs-client 1.6.1 (window.SockJS) over SockJS xhr-streaming,
//   eventsource and xhr-polling: connect, subscribe, receive an API publication whose data holds
//   `%` sequences (TRANSPORTS.md §6 trap 1) and a client publication.
//
// The server's /metrics (centrifugo_transport_connect_count) confirms which transport each
// connection used. Skipped when /usr/bin/chromium (or CHROMIUM_BIN) is missing, and under
// ROTOR_TEST_SERVER=ref (the reference server has no HTTP-streaming or SSE).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SERVER_KIND, apiV2, freePort, sleep, startServer } from './lib/harness.mjs';
import { chromiumMissing, contextWithoutWebSocket, launchChromium, metricValue, startPageServer } from './lib/browser.mjs';

const SKIP = chromiumMissing() || (SERVER_KIND === 'ref' ? 'the reference server has no HTTP-streaming or SSE' : false);
if (SKIP) console.log(`# browser-transports skipped: ${SKIP}`);
const CASE = { timeout: 20000, skip: SKIP };
const WAIT = 10000;

let server;
let pages;
let browser;
let allowedOrigin;
let foreignOrigin;
let base;
const contexts = [];

before(async () => {
  if (SKIP) return;
  pages = await startPageServer(2);
  [allowedOrigin, foreignOrigin] = pages.origins;
  server = await startServer({
    allowed_origins: [allowedOrigin],
    http_stream: { enabled: true },
    sse: { enabled: true },
    publish: true,
    prometheus: true,
  });
  base = `http://127.0.0.1:${server.port}`;
  browser = await launchChromium();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  if (browser) await browser.close();
  if (pages) await pages.stop();
  if (server) await server.stop();
});

async function connects(transport) {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200, 'GET /metrics');
  return metricValue(await res.text(), 'centrifugo_transport_connect_count', { transport });
}

/** All transports' connect counts, to compare before and after a case. */
async function allConnects() {
  const out = {};
  for (const t of ['websocket', 'sockjs', 'http_stream', 'sse']) out[t] = await connects(t);
  return out;
}

/** A page at `origin` + `pagePath` in a fresh context; WebSocket removed unless `keepWebSocket`. */
async function openPage(origin, pagePath, { keepWebSocket = false } = {}) {
  let context;
  let messages;
  if (keepWebSocket) {
    context = await browser.newContext();
    messages = [];
    context.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
    context.on('weberror', (e) => messages.push(`pageerror: ${e.error().message}`));
  } else {
    ({ context, messages } = await contextWithoutWebSocket(browser));
  }
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(`${origin}${pagePath}`);
  assert.equal(await page.evaluate(() => typeof window.WebSocket), keepWebSocket ? 'function' : 'undefined');
  return { page, messages, context };
}

/** Everything the page's client logged, the browser's console and the server's output tail. */
async function diagnostics(page, messages) {
  const log = await page.evaluate(() => window.__log).catch((e) => `(no log: ${e.message})`);
  return `\n--- page log ---\n${JSON.stringify(log, null, 1)}\n--- browser console (last 30) ---\n${messages.slice(-30).join('\n')}\n--- server output (tail) ---\n${server.output().slice(-3000)}`;
}

/** Waits for the first page-log entry of kind `ev` (whose `data`, if `data` is given, equals it). */
async function waitEntry(page, messages, ev, data) {
  const want = data === undefined ? null : JSON.stringify(data);
  try {
    const handle = await page.waitForFunction(
      ([e, w]) => window.__log.find((x) => x.ev === e && (w === null || JSON.stringify(x.data) === w)),
      [ev, want],
      { timeout: WAIT },
    );
    return await handle.jsonValue();
  } catch (e) {
    e.message = `waiting for ${ev}${want ? ` ${want}` : ''}: ${e.message}${await diagnostics(page, messages)}`;
    throw e;
  }
}

/** centrifuge-js 5.8.0 in the page: connect over `transports`, subscribe to `channel`. */
function startV5(page, transports, channel, token) {
  return page.evaluate(
    ({ transports, channel, token, emulationEndpoint }) => {
      const log = [];
      window.__log = log;
      const c = new window.Centrifuge(transports, { token, emulationEndpoint, minReconnectDelay: 200, maxReconnectDelay: 1000 });
      c.on('connecting', (ctx) => log.push({ ev: 'connecting', code: ctx.code, reason: ctx.reason }));
      c.on('connected', (ctx) => log.push({ ev: 'connected', transport: ctx.transport, client: ctx.client }));
      c.on('disconnected', (ctx) => log.push({ ev: 'disconnected', code: ctx.code, reason: ctx.reason }));
      c.on('error', (ctx) => log.push({ ev: 'error', type: ctx.type, transport: ctx.transport, message: ctx.error && ctx.error.message }));
      const sub = c.newSubscription(channel);
      sub.on('subscribed', () => log.push({ ev: 'subscribed' }));
      sub.on('publication', (ctx) => log.push({ ev: 'publication', data: ctx.data }));
      sub.on('error', (ctx) => log.push({ ev: 'sub-error', message: ctx.error && ctx.error.message }));
      sub.subscribe();
      c.connect();
      window.__client = c;
      window.__sub = sub;
    },
    { transports, channel, token, emulationEndpoint: `${base}/emulation` },
  );
}

/** centrifuge-js 2.8.5 over window.SockJS in the page, restricted to `sockjsTransport`. */
function startV2Sockjs(page, sockjsTransport, channel, token) {
  return page.evaluate(
    ({ url, sockjsTransport, channel, token }) => {
      const log = [];
      window.__log = log;
      const c = new window.Centrifuge(url, { sockjsTransports: [sockjsTransport], minRetry: 200, maxRetry: 1000 });
      c.setToken(token);
      c.on('connect', (ctx) => log.push({ ev: 'connected', transport: ctx.transport, client: ctx.client }));
      c.on('disconnect', (ctx) => log.push({ ev: 'disconnected', reason: ctx.reason, reconnect: ctx.reconnect }));
      c.on('error', (ctx) => log.push({ ev: 'error', message: JSON.stringify(ctx) }));
      const sub = c.subscribe(channel, {
        subscribe: () => log.push({ ev: 'subscribed' }),
        publish: (ctx) => log.push({ ev: 'publication', data: ctx.data }),
        error: (ctx) => log.push({ ev: 'sub-error', message: JSON.stringify(ctx) }),
      });
      c.connect();
      window.__client = c;
      window.__sub = sub;
    },
    { url: `${base}/connection/sockjs`, sockjsTransport, channel, token },
  );
}

/**
 * The common part of every positive case: the page's client is connected over `transport` and
 * subscribed to `channel`; an API publication arrives (data with `%` sequences), then one the
 * page publishes itself; the server counted exactly one new connection, over `metric`.
 */
async function connectedAndDelivering(page, messages, { transport, metric, channel, before }) {
  const connected = await waitEntry(page, messages, 'connected');
  assert.equal(connected.transport, transport, `connected over ${connected.transport}${await diagnostics(page, messages)}`);
  assert.ok(connected.client, 'the connected context carries the client id');
  await waitEntry(page, messages, 'subscribed');

  const fromApi = { text: '100% sure: %41 %25 %% %u0041 \u2028', n: 1 };
  const reply = await apiV2(server, 'publish', { channel, data: fromApi });
  assert.equal(reply.error, undefined, JSON.stringify(reply));
  const got = await waitEntry(page, messages, 'publication', fromApi);
  assert.deepEqual(got.data, fromApi);

  const fromPage = { from: 'browser', transport, text: 'client % publish' };
  await page.evaluate((data) => window.__sub.publish(data), fromPage);
  await waitEntry(page, messages, 'publication', fromPage);

  const after = await allConnects();
  for (const [t, n] of Object.entries(after)) {
    assert.equal(n - before[t], t === metric ? 1 : 0, `connections counted over ${t}: ${JSON.stringify({ before, after })}`);
  }
  const log = await page.evaluate(() => window.__log);
  assert.equal(log.filter((e) => e.ev === 'connected').length, 1, 'connected once, no reconnect');
  assert.equal(log.filter((e) => e.ev === 'publication').length, 2, 'exactly the two publications');
}

test('centrifuge-js 5.8.0 without WebSocket falls back to http_stream (cross-origin, CORS)', CASE, async () => {
  const before = await allConnects();
  const { page, messages } = await openPage(allowedOrigin, '/v5.html');
  const channel = 'browser-http-stream';
  await startV5(
    page,
    [
      { transport: 'websocket', endpoint: `ws://127.0.0.1:${server.port}/connection/websocket` },
      { transport: 'http_stream', endpoint: `${base}/connection/http_stream` },
      { transport: 'sse', endpoint: `${base}/connection/sse` },
    ],
    channel,
    server.token({ sub: 'browser-stream-user' }),
  );
  await connectedAndDelivering(page, messages, { transport: 'http_stream', metric: 'http_stream', channel, before });
  await page.evaluate(() => window.__client.disconnect());
});

test('centrifuge-js 5.8.0 falls back to sse when the WebSocket endpoint refuses and http_stream is not offered', CASE, async () => {
  const before = await allConnects();
  // A real WebSocket this time, pointed at a port nobody listens on: the attempt fails, and the
  // client moves on to the next transport.
  const { page, messages } = await openPage(allowedOrigin, '/v5.html', { keepWebSocket: true });
  const channel = 'browser-sse';
  const deadPort = await freePort();
  await startV5(
    page,
    [
      { transport: 'websocket', endpoint: `ws://127.0.0.1:${deadPort}/connection/websocket` },
      { transport: 'sse', endpoint: `${base}/connection/sse` },
    ],
    channel,
    server.token({ sub: 'browser-sse-user' }),
  );
  await connectedAndDelivering(page, messages, { transport: 'sse', metric: 'sse', channel, before });
  const log = await page.evaluate(() => window.__log);
  const wsFailure = log.findIndex((e) => e.ev === 'error' && e.transport === 'websocket');
  assert.ok(wsFailure >= 0, `the WebSocket attempt failed first${await diagnostics(page, messages)}`);
  assert.ok(wsFailure < log.findIndex((e) => e.ev === 'connected'), 'the WebSocket failure came before the sse connect');
  await page.evaluate(() => window.__client.disconnect());
});

test('a page from an origin not in allowed_origins cannot connect over http_stream or sse', CASE, async () => {
  const before = await allConnects();
  const { page, messages } = await openPage(foreignOrigin, '/v5.html');
  await startV5(
    page,
    [
      { transport: 'http_stream', endpoint: `${base}/connection/http_stream` },
      { transport: 'sse', endpoint: `${base}/connection/sse` },
    ],
    'browser-foreign',
    server.token({ sub: 'browser-foreign-user' }),
  );
  // Long enough for several rounds over both transports (reconnect delays 200 ms – 1 s).
  await sleep(4000);
  const log = await page.evaluate(() => window.__log);
  await page.evaluate(() => window.__client.disconnect());
  const diag = await diagnostics(page, messages);
  assert.equal(log.filter((e) => e.ev === 'connected').length, 0, `never connected${diag}`);
  const failed = new Set(log.filter((e) => e.ev === 'error' && e.type === 'transport').map((e) => e.transport));
  assert.ok(failed.has('http_stream') && failed.has('sse'), `both transports failed: ${[...failed]}${diag}`);
  assert.ok(
    messages.some((m) => m.includes('blocked by CORS policy') && m.includes('/connection/http_stream')),
    `the browser blocked the http_stream request on CORS${diag}`,
  );
  // The preflight was refused, so the connect POST never reached the server.
  assert.equal((await allConnects()).http_stream - before.http_stream, 0, 'no http_stream session was made');

  // The same client and server work from the allowed origin (the refusal is the origin's).
  const ok = await openPage(allowedOrigin, '/v5.html');
  await startV5(ok.page, [{ transport: 'http_stream', endpoint: `${base}/connection/http_stream` }], 'browser-foreign', server.token({ sub: 'u' }));
  const connected = await waitEntry(ok.page, ok.messages, 'connected');
  assert.equal(connected.transport, 'http_stream');
  await ok.page.evaluate(() => window.__client.disconnect());
});

test('a SockJS page from an origin not in allowed_origins cannot connect', CASE, async () => {
  const before = await allConnects();
  const { page, messages } = await openPage(foreignOrigin, '/v2-sockjs.html');
  await startV2Sockjs(page, 'xhr-streaming', 'browser-sockjs-foreign', server.token({ sub: 'browser-sockjs-foreign' }));
  await sleep(3000);
  const log = await page.evaluate(() => window.__log);
  await page.evaluate(() => window.__client.disconnect());
  const diag = await diagnostics(page, messages);
  assert.equal(log.filter((e) => e.ev === 'connected').length, 0, `never connected${diag}`);
  assert.ok(log.some((e) => e.ev === 'disconnected'), `the client saw its attempts fail${diag}`);
  assert.ok(
    messages.some((m) => m.includes('blocked by CORS policy') && m.includes('/connection/sockjs/info')),
    `the browser blocked the SockJS info request on CORS${diag}`,
  );
  assert.equal((await allConnects()).sockjs - before.sockjs, 0, 'no SockJS session was made');
});

for (const sockjsTransport of ['xhr-streaming', 'eventsource', 'xhr-polling']) {
  test(`centrifuge-js 2.8.5 + sockjs-client over SockJS ${sockjsTransport} without WebSocket (cross-origin)`, CASE, async () => {
    const before = await allConnects();
    const { page, messages } = await openPage(allowedOrigin, '/v2-sockjs.html');
    assert.equal(await page.evaluate(() => typeof window.SockJS), 'function');
    const channel = `browser-sockjs-${sockjsTransport}`;
    await startV2Sockjs(page, sockjsTransport, channel, server.token({ sub: `browser-${sockjsTransport}` }));
    await connectedAndDelivering(page, messages, { transport: `sockjs-${sockjsTransport}`, metric: 'sockjs', channel, before });
    await page.evaluate(() => window.__client.disconnect());
  });
}
