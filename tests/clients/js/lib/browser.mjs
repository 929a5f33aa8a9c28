// Browser helpers for the real-browser tests: headless Chromium (Debian's `chromium`, driven by
// playwright-core, launched as admin.test.mjs does) and a tiny static page server that gives a
// test page its own origins, distinct from the server under test (another port is another
// origin). The page server serves the client libraries' browser builds straight from
// node_modules, so the browser runs exactly the npm versions the Node tests use.

import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

const MODULES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../node_modules');

/** Browser builds the pages may load, by URL path. */
const SCRIPTS = {
  '/js/centrifuge5.js': 'centrifuge5/dist/centrifuge.js',
  '/js/centrifuge2.js': 'centrifuge2/dist/centrifuge.js',
  '/js/sockjs.min.js': 'sockjs-client/dist/sockjs.min.js',
};

/** Pages by URL path: each loads the scripts named, and nothing else. */
const PAGES = {
  '/v5.html': ['/js/centrifuge5.js'],
  '/v2-sockjs.html': ['/js/sockjs.min.js', '/js/centrifuge2.js'],
};

function pageHtml(title, scripts) {
  const tags = scripts.map((s) => `<script src="${s}"></script>`).join('\n');
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title>\n${tags}\n</head>\n<body><p>${title}</p></body></html>\n`;
}

/** Launches headless Chromium with the flags admin.test.mjs uses (root in CI, no GPU). */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

/** Why a browser test cannot run here, or false. */
export function chromiumMissing() {
  return existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: install Debian's chromium package (scripts/test.sh does)`;
}

function listen(srv) {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${srv.address().port}`));
  });
}

/**
 * Starts the page server on `count` ports of 127.0.0.1 (one origin each). Every request is
 * recorded as {origin, method, path}. Returns {origins, requests, stop()}.
 */
export async function startPageServer(count = 2) {
  const requests = [];
  const servers = [];
  const sockets = new Set();
  const origins = [];
  for (let i = 0; i < count; i += 1) {
    const srv = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://page');
      requests.push({ origin: origins[i], method: req.method, path: url.pathname });
      if (req.method !== 'GET') {
        res.writeHead(405).end();
      } else if (SCRIPTS[url.pathname]) {
        const body = readFileSync(path.join(MODULES, SCRIPTS[url.pathname]));
        res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' }).end(body);
      } else if (PAGES[url.pathname]) {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(pageHtml(url.pathname.slice(1), PAGES[url.pathname]));
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      }
    });
    srv.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    origins.push(await listen(srv));
    servers.push(srv);
  }
  return {
    origins,
    requests,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(() => resolve()))));
    },
  };
}

/**
 * A fresh browser context whose pages have no WebSocket at all (as behind a proxy that only
 * passes plain HTTP): `window.WebSocket` is gone before any page script runs. Every console
 * message and page error is collected in the returned `messages`.
 */
export async function contextWithoutWebSocket(browser) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    delete window.WebSocket;
    window.WebSocket = undefined;
  });
  const messages = [];
  context.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  context.on('weberror', (e) => messages.push(`pageerror: ${e.error().message}`));
  return { context, messages };
}

/** Reads the value of a Prometheus sample (`name{labels}`) from a /metrics text, 0 when absent. */
export function metricValue(text, name, labels) {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.indexOf('}');
    const got = line.slice(name.length + 1, close).split(',');
    if (want.every((w) => got.includes(w))) return Number(line.slice(close + 1).trim());
  }
  return 0;
}
