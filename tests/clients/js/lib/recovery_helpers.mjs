// Helpers for recovery.test.mjs: a WebSocket class whose network link the test can cut and
// restore, so a real client loses its connection the way a phone does (the socket dies without a
// close frame) and reconnects by itself when the link is back.

import WebSocket from 'ws';

/** A URL nothing listens on: while the link is cut, every connect attempt fails fast. */
const DEAD_URL = 'ws://127.0.0.1:1/connection/websocket';

/**
 * A link for one client. `link.WebSocket` is the class to give the client; `link.sent` records
 * every command the client sends (decoded JSON); `link.cut()` terminates the live socket and makes
 * new connect attempts fail until `link.restore()`.
 */
export function makeLink() {
  const link = {
    sockets: [],
    sent: [],
    offline: false,
    attemptsWhileOffline: 0,
  };
  link.WebSocket = class CuttableWebSocket extends WebSocket {
    constructor(url, ...rest) {
      const offline = link.offline;
      super(offline ? DEAD_URL : url, ...rest);
      if (offline) link.attemptsWhileOffline += 1;
      link.sockets.push(this);
    }

    send(data, ...rest) {
      if (typeof data === 'string') {
        for (const line of data.split('\n')) {
          if (line.trim() !== '') link.sent.push(JSON.parse(line));
        }
      }
      return super.send(data, ...rest);
    }
  };
  /** Kills the live socket (no close frame: the client sees an abnormal closure). */
  link.cut = () => {
    link.offline = true;
    for (const s of link.sockets) {
      if (s.readyState === WebSocket.CONNECTING || s.readyState === WebSocket.OPEN) s.terminate();
    }
  };
  link.restore = () => {
    link.offline = false;
  };
  return link;
}

/** The subscribe commands (v1 method 1 or v2 `subscribe`) the client sent for `channel`. */
export function subscribeCommands(link, channel) {
  return link.sent
    .map((c) => (c.method === 1 ? c.params : c.subscribe))
    .filter((p) => p && p.channel === channel);
}
