// The admin web UI in a real browser: headless Chromium (Debian's `chromium` package, driven by
// playwright-core; scripts/test.sh installs it when /usr/bin/chromium is missing). The browser
// logs in (a wrong password first), sees a connected centrifuge-js client in the connections
// table, publishes a message that the client receives, reads the channel's presence and
// history, and saves a screenshot under target/ (its path is printed).
//
// Admin is a Rotor feature here: under ROTOR_TEST_SERVER=ref this file is skipped.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge5';
import { chromium } from 'playwright-core';
import { REPO_ROOT, SERVER_KIND, hs256, startServer, waitEvent } from './lib/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SKIP = SERVER_KIND === 'ref' ? 'the reference server has no admin UI' : false;
const PASSWORD = 'admin-password';

let server;
let browser;
let client;

before(async () => {
  if (SKIP) return;
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (scripts/test.sh does)`);
  server = await startServer({
    admin: true,
    admin_password: PASSWORD,
    admin_secret: 'admin-secret',
    presence: true,
    history_size: 10,
    history_lifetime: 300,
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  if (client) client.disconnect();
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('admin UI: log in, see a client, publish to it, presence and history', { timeout: 60000, skip: SKIP }, async () => {
  // A real client connected and subscribed to `news`.
  client = new Centrifuge(server.wsUrl, {
    token: hs256({ sub: 'browser-test-user' }, server.config.token_hmac_secret_key),
    websocket: WebSocket,
  });
  client.on('error', () => {});
  const sub = client.newSubscription('news');
  const subscribed = waitEvent(sub, 'subscribed');
  sub.subscribe();
  client.connect();
  await subscribed;

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('401')) problems.push(`console: ${m.text()}`);
  });
  try {
    await page.goto(`http://127.0.0.1:${server.port}/`);

    // The login page; nothing else is visible before logging in.
    await page.waitForSelector('#login-password', { state: 'visible' });
    assert.equal(await page.isVisible('#app'), false);
    await page.fill('#login-password', 'wrong');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.includes('Wrong password'));
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-submit');
    await page.waitForSelector('#app', { state: 'visible' });

    // The connected client shows up in the live connections table, the channel in channels.
    await page.waitForFunction(
      () => document.querySelector('#connections tbody').textContent.includes('browser-test-user'),
      null,
      { timeout: 10000 },
    );
    const row = await page.textContent('#connections tbody');
    assert.match(row, /news/);
    await page.waitForFunction(() => document.querySelector('#channels tbody').textContent.includes('news'));
    assert.match(await page.textContent('#nodes tbody'), /\d+/);

    // Publish from the browser; the client receives it.
    const received = waitEvent(sub, 'publication', { pred: (ctx) => ctx.data && ctx.data.from === 'browser' });
    await page.fill('#publish-channel', 'news');
    await page.fill('#publish-data', '{"from": "browser", "text": "hello from the admin UI"}');
    await page.click('#publish-submit');
    const ctx = await received;
    assert.deepEqual(ctx.data, { from: 'browser', text: 'hello from the admin UI' });
    await page.waitForFunction(() => document.getElementById('publish-result').textContent.includes('Published to news'));

    // Presence and history of the channel.
    await page.fill('#inspect-channel', 'news');
    await page.click('#presence-submit');
    await page.waitForFunction(() => document.getElementById('inspect-result').textContent.includes('browser-test-user'));
    await page.click('#history-submit');
    await page.waitForFunction(() => document.getElementById('inspect-result').textContent.includes('hello from the admin UI'));

    // The live chart of this node: its connection and a non-zero messages/s after the publish.
    await page.waitForFunction(() => {
      const c = document.querySelector('#charts .chart');
      return c && Number(c.dataset.points) >= 2 && Number(c.dataset.peakRate) > 0;
    }, null, { timeout: 15000 });
    assert.match(await page.textContent('#charts .chart .legend .conns'), /^[1-9]\d* connections$/);
    assert.equal(await page.locator('#charts .chart').count(), 1, 'one chart per node');
    const linePoints = await page.getAttribute('#charts .chart polyline.rate', 'points');
    assert.ok(linePoints.split(' ').length >= 2, linePoints);

    // Let the counters poll once more, then keep a picture of it.
    await page.waitForTimeout(2200);
    const dir = path.join(REPO_ROOT, 'target');
    mkdirSync(dir, { recursive: true });
    const shot = path.join(dir, 'admin-ui.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`admin UI screenshot: ${shot}`);
    assert.deepEqual(problems, []);

    // Logging out brings the login page back, and the data endpoints refuse again.
    await page.click('#logout');
    await page.waitForSelector('#login-password', { state: 'visible' });
    const status = await page.evaluate(() => fetch('/admin/api/info').then((r) => r.status));
    assert.equal(status, 401);
  } finally {
    await page.close();
  }
});
