// Test harness shared by the real-client tests: starts the server under test on a free port with a
// temporary Centrifugo 2.x JSON config, mints HS256 tokens, calls the server HTTP API, runs a tiny
// app backend (the endpoint centrifuge-js 2.x asks for private-channel tokens) and waits for
// events with a deadline.
//
// Server selection (env):
//   ROTOR_BIN          path of the rotor binary (default <repo>/target/debug/rotor), started as
//                      `rotor -c <tmp>/config.json`.
//   ROTOR_TEST_SERVER  `ref` starts the reference server (`REF_BIN`, default
//                      <repo>/target/peers/bin/centrifuge-ref) with equivalent flags instead. It
//                      speaks client protocol v1 and the `/api` endpoint only.
//   ROTOR_TEST_LOG     `1` copies the server's output to stderr as it comes.

import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const SERVER_KIND = process.env.ROTOR_TEST_SERVER === 'ref' ? 'ref' : 'rotor';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const nowSec = () => Math.floor(Date.now() / 1000);

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** An HS256 JWT over `claims`, signed with `secret` (node's crypto, no JWT library). */
export function hs256(claims, secret) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = b64url(createHmac('sha256', secret).update(`${head}.${body}`).digest());
  return `${head}.${body}.${sig}`;
}

function waitForPort(port, child, output, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        reject(new Error(`server exited early (code ${child.exitCode}, signal ${child.signalCode}):\n${output()}`));
        return;
      }
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline) {
          reject(new Error(`server did not listen on ${port} within ${timeoutMs} ms:\n${output()}`));
        } else {
          setTimeout(attempt, 50);
        }
      });
    };
    attempt();
  });
}

/** Flags for the reference server equivalent to a Centrifugo 2.x config (the keys the tests use). */
function refArgs(cfg) {
  const args = [
    '-addr', `${cfg.address}:${cfg.port}`,
    '-secret', cfg.token_hmac_secret_key,
    '-api_key', cfg.api_key,
    `-presence=${!!cfg.presence}`,
    `-join_leave=${!!cfg.join_leave}`,
    `-recover=${!!cfg.history_recover}`,
    '-history_size', String(cfg.history_size || 0),
    '-history_lifetime', String(cfg.history_lifetime || 0),
    '-log_level', 'error',
  ];
  const durations = {
    client_presence_ping_interval: 'client_presence_update_interval',
    client_expired_close_delay: 'client_expired_close_delay',
    client_expired_sub_close_delay: 'client_expired_sub_close_delay',
  };
  for (const [key, flag] of Object.entries(durations)) {
    if (cfg[key] !== undefined) args.push(`-${flag}`, `${cfg[key]}s`);
  }
  return args;
}

/**
 * Starts the server under test with `config` (Centrifugo 2.x flat keys; `address`, `port`,
 * `token_hmac_secret_key` and `api_key` are filled in when absent). Resolves when it accepts TCP
 * connections. Returns {port, config, wsUrl, apiUrl, kind, output(), stop()}.
 */
export async function startServer(config = {}) {
  const port = config.port || (await freePort());
  const cfg = {
    address: '127.0.0.1',
    token_hmac_secret_key: `secret-${randomUUID()}`,
    api_key: `api-${randomUUID()}`,
    ...config,
    port,
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rotor-client-test-'));
  let cmd;
  let args;
  if (SERVER_KIND === 'ref') {
    cmd = process.env.REF_BIN || path.join(REPO_ROOT, 'target/peers/bin/centrifuge-ref');
    args = refArgs(cfg);
  } else {
    cmd = process.env.ROTOR_BIN || path.join(REPO_ROOT, 'target/debug/rotor');
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(cfg, null, 2));
    args = ['-c', file];
  }
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const collect = (chunk) => {
    out += chunk.toString();
    if (out.length > 200000) out = out.slice(-100000);
    if (process.env.ROTOR_TEST_LOG === '1') process.stderr.write(chunk);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const spawnError = new Promise((_, reject) => child.once('error', (e) => reject(new Error(`cannot start ${cmd}: ${e.message}`))));
  spawnError.catch(() => {}); // an error after the start must not become an unhandled rejection
  const output = () => out;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([waitForPort(port, child, output, 15000), spawnError]);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    kind: SERVER_KIND,
    port,
    config: cfg,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    apiUrl: `http://127.0.0.1:${port}/api`,
    output,
    stop,
    /** HS256 token signed with this server's secret. */
    token: (claims) => hs256(claims, cfg.token_hmac_secret_key),
  };
}

async function postJson(url, headers, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text };
}

/** Centrifugo 2.x API: `POST /api` with `Authorization: apikey KEY`, body {method, params}. */
export async function apiV1(server, method, params) {
  const { status, text } = await postJson(server.apiUrl, { Authorization: `apikey ${server.config.api_key}` }, { method, params });
  if (status !== 200) throw new Error(`POST /api ${method}: HTTP ${status}: ${text}`);
  const reply = JSON.parse(text.trim());
  if (reply.error) throw new Error(`POST /api ${method}: error ${JSON.stringify(reply.error)}`);
  return reply.result;
}

/** Current API: `POST /api/<method>` with `X-API-Key`, body = params. Returns the parsed reply. */
export async function apiV2(server, method, params) {
  const { status, text } = await postJson(`${server.apiUrl}/${method}`, { 'X-API-Key': server.config.api_key }, params);
  if (status !== 200) throw new Error(`POST /api/${method}: HTTP ${status}: ${text}`);
  return JSON.parse(text);
}

/**
 * The app backend centrifuge-js 2.x asks for private-channel tokens (`POST /centrifuge/subscribe`)
 * and for connection tokens (`POST /centrifuge/refresh`). Every request is recorded; the answer
 * comes from the handler registered for the request's `case` query parameter (the test gives
 * each client its own through `subscribeParams` / `refreshParams`). A handler returns
 * {status, body}; body objects are sent as JSON.
 */
export async function startBackend() {
  const handlers = new Map();
  const requests = [];
  const sockets = new Set();
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const url = new URL(req.url, 'http://backend');
      const raw = Buffer.concat(chunks).toString();
      let body = null;
      try {
        body = raw ? JSON.parse(raw) : null;
      } catch {
        body = { unparsable: raw };
      }
      const record = { method: req.method, path: url.pathname, case: url.searchParams.get('case'), headers: req.headers, body };
      requests.push(record);
      const handler = handlers.get(`${url.pathname} ${record.case}`);
      let answer = { status: 404, body: { error: 'no handler' } };
      if (handler) {
        try {
          answer = await handler(record, requests.filter((r) => r.path === record.path && r.case === record.case).length);
        } catch (e) {
          answer = { status: 500, body: { error: String(e) } };
        }
      }
      if (answer.hang) return; // never answers (the socket is destroyed on stop)
      const payload = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? {});
      res.writeHead(answer.status || 200, { 'Content-Type': 'application/json' });
      res.end(payload);
    });
  });
  srv.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${srv.address().port}`;
  return {
    base,
    subscribeEndpoint: `${base}/centrifuge/subscribe`,
    refreshEndpoint: `${base}/centrifuge/refresh`,
    requests,
    /** Requests of one case to one path. */
    requestsFor: (caseName, p = '/centrifuge/subscribe') => requests.filter((r) => r.case === caseName && r.path === p),
    on: (p, caseName, handler) => handlers.set(`${p} ${caseName}`, handler),
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

/**
 * Waits for the first `event` on `emitter` whose payload satisfies `pred`; rejects after
 * `timeoutMs` with a message naming the event. Works with any emitter that has on/removeListener.
 */
export function waitEvent(emitter, event, { timeoutMs = 10000, pred = () => true, what = event } = {}) {
  return new Promise((resolve, reject) => {
    const onEvent = (ctx) => {
      let ok = false;
      try {
        ok = pred(ctx);
      } catch (e) {
        cleanup();
        reject(e);
        return;
      }
      if (ok) {
        cleanup();
        resolve(ctx);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      emitter.removeListener(event, onEvent);
    };
    emitter.on(event, onEvent);
  });
}

/** Records every emission of the named events on `emitter` as {event, ctx, at}. */
export function recordEvents(emitter, events) {
  const log = [];
  for (const ev of events) emitter.on(ev, (ctx) => log.push({ event: ev, ctx, at: Date.now() }));
  return log;
}

/** Polls `fn` until it returns a truthy value; rejects after `timeoutMs`. */
export async function until(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
