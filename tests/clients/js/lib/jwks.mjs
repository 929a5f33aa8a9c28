// A JWKS endpoint for the token tests: a node:http server on 127.0.0.1 answering
// `GET <path>` with `{"keys": [...]}` (the set the test last gave that path; several paths may
// each have a set, as tenants of a templated endpoint do), recording every request (path, time),
// and able to go down (listening socket closed, open connections destroyed) and come back on the
// same port.

import http from 'node:http';

/**
 * Starts the endpoint serving `keys` (JWK objects) at `path`. Returns
 * {base, url, requests, fetches(p), setKeys(keys, p), down(), up(), stop()}; `requests` holds
 * {method, path, at} per request; `p` defaults to `path`. Unknown paths answer 404.
 */
export async function startJwks(keys, { path = '/.well-known/jwks.json' } = {}) {
  const sets = new Map([[path, keys]]);
  const requests = [];
  const sockets = new Set();
  let srv = null;
  let port = 0;

  const listen = () =>
    new Promise((resolve, reject) => {
      const s = http.createServer((req, res) => {
        const p = new URL(req.url, 'http://jwks').pathname;
        requests.push({ method: req.method, path: p, at: Date.now() });
        if (req.method !== 'GET' || !sets.has(p)) {
          res.writeHead(404, { 'Content-Type': 'text/plain' });
          res.end('not found');
          return;
        }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ keys: sets.get(p) }));
      });
      s.on('connection', (sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = s.address().port;
        srv = s;
        resolve();
      });
    });

  const close = () =>
    new Promise((resolve) => {
      if (!srv) {
        resolve();
        return;
      }
      const s = srv;
      srv = null;
      for (const sock of sockets) sock.destroy();
      s.close(() => resolve());
    });

  await listen();
  return {
    base: `http://127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}${path}`,
    requests,
    /** Requests for the key set at `p`. */
    fetches: (p = path) => requests.filter((r) => r.path === p),
    setKeys: (k, p = path) => {
      sets.set(p, k);
    },
    down: close,
    up: listen,
    stop: close,
  };
}
