// An application backend for the proxy tests: a node:http server on 127.0.0.1 that records every
// request the server under test makes to it (path, headers, parsed JSON body, arrival time) and
// answers with what the test's policy function returns. Also: a ws subclass that sends chosen
// HTTP headers on the upgrade request and records the frames a client sends and receives.

import http from 'node:http';
import WebSocket from 'ws';
import { sleep } from './harness.mjs';

/**
 * Starts the backend. `policy(req)` gets {path, headers, body, at} and returns
 *   {status?, body}        the answer (body objects are sent as JSON, status defaults to 200),
 *   {delayMs, status?, body} the same answer after a delay,
 *   {hang: true}           no answer at all until stop().
 * A policy that throws answers 500. `port` (optional) asks for that port instead of a free one.
 */
export async function startProxyBackend(policy, { port = 0 } = {}) {
  const requests = [];
  const sockets = new Set();
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString();
      let body;
      try {
        body = raw ? JSON.parse(raw) : null;
      } catch {
        body = { unparsable: raw };
      }
      const record = { method: req.method, path: new URL(req.url, 'http://b').pathname, headers: req.headers, body, at: Date.now() };
      requests.push(record);
      let answer;
      try {
        answer = await policy(record);
      } catch (e) {
        answer = { status: 500, body: { error: String(e && e.stack ? e.stack : e) } };
      }
      answer = answer || { status: 404, body: { error: 'no answer' } };
      if (answer.hang) return;
      if (answer.delayMs) await sleep(answer.delayMs);
      if (res.destroyed) return;
      const payload = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? {});
      res.writeHead(answer.status || 200, { 'Content-Type': 'application/json' });
      res.end(payload);
    });
  });
  srv.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${srv.address().port}`;
  return {
    base,
    port: srv.address().port,
    url: (p) => `${base}${p}`,
    requests,
    /** The recorded requests to `path`, optionally filtered. */
    to: (p, pred = () => true) => requests.filter((r) => r.path === p && pred(r)),
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

/** The `name=value` pairs of a Cookie header as an object. */
export function cookies(headers) {
  const out = {};
  for (const part of String(headers.cookie || '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/**
 * A ws subclass for the clients' `websocket` option: sends `headers` on the upgrade request and
 * records into `log` every command the client sends (`log.sent`, decoded JSON), every frame it
 * receives (`log.received`, decoded JSON, one entry per line) and every close ({code, reason}).
 */
export function headerWebSocket(headers, log) {
  log.sent = log.sent || [];
  log.received = log.received || [];
  log.closes = log.closes || [];
  return class HeaderWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { headers });
      this.on('message', (data) => {
        for (const line of String(data).split('\n')) {
          if (line.trim() !== '') log.received.push(JSON.parse(line));
        }
      });
      this.on('close', (code, reason) => log.closes.push({ code, reason: String(reason) }));
    }

    send(data, ...rest) {
      for (const line of String(data).split('\n')) {
        if (line.trim() !== '') log.sent.push(JSON.parse(line));
      }
      return super.send(data, ...rest);
    }
  };
}
