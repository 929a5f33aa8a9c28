// uni_sse with a plain EventSource (npm `eventsource` 2.0.2) against the server under test
// (TRANSPORTS.md §3): the connect request rides in `?cf_connect=`, every event's data is one
// bare Push: the connect push first, then publications sent through the HTTP API, `{}` pings,
// and the disconnect push of an API disconnect.
//
// The reference server has no unidirectional transports: under ROTOR_TEST_SERVER=ref this file
// is skipped.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import EventSource from 'eventsource';
import { SERVER_KIND, apiV2, sleep, startServer, until } from './lib/harness.mjs';

const SKIP = SERVER_KIND === 'ref' ? 'the reference server has no unidirectional transports' : false;

let server;

before(async () => {
  if (SKIP) return;
  server = await startServer({ uni_sse: { enabled: true }, ping_interval: '1s' });
});

after(async () => {
  if (server) await server.stop();
});

test('uni_sse with EventSource: connect push, publications, ping, disconnect push', { timeout: 30000, skip: SKIP }, async () => {
  const connect = { token: server.token({ sub: 'js-uni', channels: ['news'] }), subs: { public: {} } };
  const url = `http://127.0.0.1:${server.port}/connection/uni_sse?cf_connect=${encodeURIComponent(JSON.stringify(connect))}`;
  const es = new EventSource(url);
  const got = [];
  const errors = [];
  es.onmessage = (e) => got.push(JSON.parse(e.data));
  es.onerror = (e) => errors.push(e);
  try {
    await until(() => got.length >= 1, { what: 'the connect push' });
    const c = got[0].connect;
    assert.ok(c && typeof c.client === 'string', JSON.stringify(got[0]));
    assert.deepEqual(Object.keys(c.subs).sort(), ['news', 'public']);
    assert.equal(c.ping, 1);

    await apiV2(server, 'publish', { channel: 'news', data: { n: 1 } });
    await apiV2(server, 'publish', { channel: 'public', data: { n: 2 } });
    await until(() => got.filter((p) => p.pub).length >= 2, { what: 'two publications' });
    const pubs = got.filter((p) => p.pub).map((p) => [p.channel, p.pub.data]);
    assert.deepEqual(pubs, [['news', { n: 1 }], ['public', { n: 2 }]]);

    await until(() => got.some((p) => Object.keys(p).length === 0), { what: 'a {} ping' });

    await apiV2(server, 'disconnect', { user: 'js-uni' });
    await until(() => got.some((p) => p.disconnect), { what: 'the disconnect push' });
    const d = got.find((p) => p.disconnect).disconnect;
    assert.equal(d.code, 3503);
    assert.equal(d.reason, 'force disconnect');
    // The server ends the stream after the push (EventSource then reports an error).
    await until(() => errors.length >= 1, { what: 'the end of the stream' });
  } finally {
    es.close();
    await sleep(20);
  }
});
