// A centrifuge-js subscriber for the Python tests (test_grpc_api.py): connects with
// centrifuge-js 2.8.5 or 5.8.0 (the npm packages installed under tests/clients/js/node_modules),
// subscribes to the given channels and prints one JSON line per event on stdout, so the Python
// side can assert what a browser app would see after a gRPC API call.
//
// Usage: node subscriber.mjs '<json>' with {version: 2|5, url, token, channels: [...]}.
// Lines printed (`server: true` marks a server-side subscription):
//   {"ev":"connected","client":ID}
//   {"ev":"subscribed","channel":C,"server":B,"data":D?}
//   {"ev":"ready"}                          every requested channel is subscribed
//   {"ev":"publication","channel":C,"server":B,"data":D,"tags":T?,"info":I?,"offset":N?}
//   {"ev":"unsubscribed","channel":C,"server":B,"code":N?,"reason":S?}
//   {"ev":"connecting","code":N,"reason":S}  5.x only: (re)connecting, e.g. after a reconnect code
//   {"ev":"disconnected","code":N?,"reason":S,"reconnect":B?}
//   {"ev":"close","code":N,"reason":S}      the WebSocket's close frame
//   {"ev":"error","message":S}
// The process ends when stdin closes (the client disconnects first).

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.resolve(here, '../../js/package.json'));
const WebSocket = require('ws');

const opts = JSON.parse(process.argv[2]);
const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const pending = new Set(opts.channels || []);
let connected = false;
let readySent = false;
const maybeReady = () => {
  if (connected && pending.size === 0 && !readySent) {
    readySent = true;
    out({ ev: 'ready' });
  }
};
const subscribed = (channel) => {
  pending.delete(channel);
  maybeReady();
};
const onConnected = (client) => {
  out({ ev: 'connected', client });
  connected = true;
  maybeReady();
};

// The ws class, reporting every close frame the client gets.
class ReportingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('close', (e) => out({ ev: 'close', code: e.code, reason: String(e.reason) }));
  }
}

function pubLine(channel, server, ctx) {
  const line = { ev: 'publication', channel, server, data: ctx.data };
  if (ctx.tags !== undefined) line.tags = ctx.tags;
  if (ctx.info !== undefined) line.info = ctx.info;
  if (ctx.offset !== undefined) line.offset = Number(ctx.offset);
  return line;
}

let client;
if (opts.version === 2) {
  const Centrifuge = require('centrifuge2');
  client = new Centrifuge(opts.url, { websocket: ReportingWebSocket, minRetry: 200, maxRetry: 1000 });
  client.setToken(opts.token);
  client.on('connect', (ctx) => onConnected(ctx.client));
  client.on('disconnect', (ctx) => out({ ev: 'disconnected', reason: ctx.reason, reconnect: ctx.reconnect }));
  client.on('error', (ctx) => out({ ev: 'error', message: JSON.stringify(ctx) }));
  // Server-side subscriptions.
  client.on('subscribe', (ctx) => out({ ev: 'subscribed', channel: ctx.channel, server: true }));
  client.on('publish', (ctx) => out(pubLine(ctx.channel, true, ctx)));
  client.on('unsubscribe', (ctx) => out({ ev: 'unsubscribed', channel: ctx.channel, server: true }));
  for (const channel of opts.channels || []) {
    client.subscribe(channel, {
      subscribe: () => {
        out({ ev: 'subscribed', channel, server: false });
        subscribed(channel);
      },
      publish: (ctx) => out(pubLine(channel, false, ctx)),
      unsubscribe: () => out({ ev: 'unsubscribed', channel, server: false }),
      error: (ctx) => out({ ev: 'error', message: `subscribe ${channel}: ${JSON.stringify(ctx.error || ctx)}` }),
    });
  }
  client.connect();
} else {
  const { Centrifuge } = require('centrifuge5');
  client = new Centrifuge(opts.url, {
    token: opts.token,
    websocket: ReportingWebSocket,
    minReconnectDelay: 200,
    maxReconnectDelay: 1000,
  });
  client.on('connected', (ctx) => onConnected(ctx.client));
  client.on('connecting', (ctx) => out({ ev: 'connecting', code: ctx.code, reason: ctx.reason }));
  client.on('disconnected', (ctx) => out({ ev: 'disconnected', code: ctx.code, reason: ctx.reason }));
  client.on('error', (ctx) => out({ ev: 'error', message: String(ctx.error && ctx.error.message) }));
  // Server-side subscriptions.
  client.on('subscribed', (ctx) => {
    const line = { ev: 'subscribed', channel: ctx.channel, server: true };
    if (ctx.data !== undefined) line.data = ctx.data;
    out(line);
  });
  client.on('publication', (ctx) => out(pubLine(ctx.channel, true, ctx)));
  client.on('unsubscribed', (ctx) => out({ ev: 'unsubscribed', channel: ctx.channel, server: true }));
  for (const channel of opts.channels || []) {
    const sub = client.newSubscription(channel);
    sub.on('subscribed', () => {
      out({ ev: 'subscribed', channel, server: false });
      subscribed(channel);
    });
    sub.on('publication', (ctx) => out(pubLine(channel, false, ctx)));
    sub.on('unsubscribed', (ctx) => out({ ev: 'unsubscribed', channel, server: false, code: ctx.code, reason: ctx.reason }));
    sub.on('error', (ctx) => out({ ev: 'error', message: `subscribe ${channel}: ${String(ctx.error && ctx.error.message)}` }));
    sub.subscribe();
  }
  client.connect();
}

process.stdin.resume();
process.stdin.on('end', () => {
  client.disconnect();
  setTimeout(() => process.exit(0), 50);
});
