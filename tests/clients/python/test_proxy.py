"""centrifuge-python 0.7.0 (client protocol v2) through Rotor's proxies to an application backend,
with a Centrifugo v6 nested config (`client.proxy.connect` with `http_headers: ["Cookie"]`,
`rpc.proxy`, `channel.proxy.subscribe` / `publish`, namespace `*_proxy_enabled`).

The backend is an aiohttp web server started here on a free port, in its own thread (so that one
backend and one rotor serve the whole module while every test has its own event loop). It
records every request (path, headers, JSON body) and answers by the `case` cookie (connect), the
method (rpc), the channel (subscribe), or by replacing the data (publish). Clients connect WITHOUT
a token: the connect proxy decides who they are. Each test checks what the client sees and what
the backend received (PROXY.md §3.2 request fields).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
import pytest_asyncio
from aiohttp import web

import centrifuge
from centrifuge.exceptions import ReplyError

from conftest import (
    REPO_ROOT,
    UUID_V4,
    Recorder,
    Server,
    SubRecorder,
    _wait_listening,
    free_port,
    next_event,
    unique,
)

SLOW_S = 2.5  # how long the backend takes for rpc method "slow"; the proxy timeout is 1 s


# ---------------------------------------------------------------- the backend


class Backend:
    """An aiohttp server in a background thread; `policy(record) -> answer` decides each reply.

    An answer is {"body": ..., "status": 200, "delay": seconds}. Requests are recorded as
    {"path", "headers" (lower-case names), "body"}.
    """

    def __init__(self, policy: Callable[[Dict[str, Any]], Dict[str, Any]]) -> None:
        self.policy = policy
        self.requests: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: Optional[web.AppRunner] = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy-backend", daemon=True)
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"unparsable": raw.decode(errors="replace")}
        record = {
            "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
        }
        with self._lock:
            self.requests.append(record)
        try:
            answer = self.policy(record)
        except Exception as e:  # an assertion in the policy becomes a 500 the test will see
            answer = {"status": 500, "body": {"error": repr(e)}}
        if answer.get("delay"):
            await asyncio.sleep(answer["delay"])
        return web.json_response(answer.get("body", {}), status=answer.get("status", 200))

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> "Backend":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still waiting (a "slow" answer nobody waits for any more) end here.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str, pred: Callable[[Dict[str, Any]], bool] = lambda r: True) -> List[Dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path and pred(r)]


def cookie_case(record: Dict[str, Any]) -> Optional[str]:
    for part in record["headers"].get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "case":
            return value
    return None


def policy(record: Dict[str, Any]) -> Dict[str, Any]:
    body = record["body"] or {}
    path = record["path"]
    if path == "/connect":
        case = cookie_case(record)
        if case == "main":
            return {"body": {"result": {"user": "42", "info": {"name": "Ann"}, "data": {"welcome": "hello 42"}}}}
        if case == "peer":
            return {"body": {"result": {"user": "43"}}}
        return {"body": {"error": {"code": 1000, "message": "no session"}}}
    if path == "/rpc":
        method = body.get("method")
        if method == "getPrice":
            return {"body": {"result": {"data": {"price": 2019, "id": (body.get("data") or {}).get("id")}}}}
        if method == "slow":
            return {"delay": SLOW_S, "body": {"result": {"data": {"late": True}}}}
        return {"body": {"error": {"code": 1002, "message": "unknown method"}}}
    if path == "/subscribe":
        if body.get("channel") == "sp:denied":
            return {"body": {"error": {"code": 1001, "message": "denied"}}}
        return {"body": {"result": {"info": {"role": "reader"}, "data": {"hello": body.get("channel")}}}}
    if path == "/publish":
        text = str((body.get("data") or {}).get("text", ""))
        return {"body": {"result": {"data": {"text": text.upper(), "moderated": True}}}}
    return {"status": 404, "body": {"error": "no such path"}}


def cookie_of(case: str) -> str:
    return f"case={case}; session=s-{case}"


def assert_head(body: Dict[str, Any], client_id: str) -> None:
    """The §3.2 fields every request has, for a JSON WebSocket client."""
    assert body["client"] == client_id, body
    assert body["transport"] == "websocket", body
    assert body["protocol"] == "json", body
    assert body["encoding"] == "json", body


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def backend():
    b = Backend(policy).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def server(backend):
    """Rotor with a v6 nested proxy config on `backend` (overrides conftest's `server` here, so a
    failure report shows this server's output)."""
    binary = os.environ.get("ROTOR_BIN") or str(REPO_ROOT / "target" / "debug" / "rotor")
    port = free_port()

    def proxy(path: str) -> Dict[str, Any]:
        return {"endpoint": backend.url(path), "timeout": "1s"}

    config = {
        "address": "127.0.0.1",
        "port": port,
        "token_hmac_secret_key": f"secret-{uuid.uuid4()}",
        "api_key": f"api-{uuid.uuid4()}",
        "client": {"proxy": {"connect": {**proxy("/connect"), "enabled": True, "http_headers": ["Cookie"]}}},
        "channel": {
            "proxy": {"subscribe": proxy("/subscribe"), "publish": proxy("/publish")},
            "namespaces": [
                {"name": "sp", "subscribe_proxy_enabled": True, "presence": True, "allow_presence_for_subscriber": True},
                {"name": "pp", "publish_proxy_enabled": True, "allow_subscribe_for_client": True},
            ],
        },
        "rpc": {"proxy": proxy("/rpc"), "without_namespace": {"proxy_enabled": True}},
    }
    with tempfile.TemporaryDirectory(prefix="rotor-py-proxy-") as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(config, indent=2))
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [binary, "-c", str(cfg_path)],
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        srv = Server(port=port, config=config, log_path=log_path, proc=proc)
        try:
            _wait_listening(port, proc, log_path)
            yield srv
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest_asyncio.fixture
async def proxied(server):
    """proxied(case) -> (client, events, connected ctx): a client connected without a token,
    sending the `case` cookie on the WebSocket upgrade."""
    made: List[centrifuge.Client] = []

    async def _connect(case: str, data: Any = None):
        events = Recorder()
        client = centrifuge.Client(
            server.ws_url,
            events=events,
            headers={"Cookie": cookie_of(case)},
            data=data,
            proxy=None,
            min_reconnect_delay=0.1,
            max_reconnect_delay=1.0,
        )
        made.append(client)
        await client.connect()
        ctx = await next_event(events.connected, f"connected through the proxy as case {case}")
        return client, events, ctx

    try:
        yield _connect
    finally:
        for c in made:
            await c.disconnect()


# ---------------------------------------------------------------- tests


async def test_connect_through_the_proxy_with_a_cookie(proxied, backend):
    client, events, ctx = await proxied("main", data={"device": "pytest"})
    assert re.match(UUID_V4, ctx.client), ctx
    assert ctx.data == {"welcome": "hello 42"}, "the backend's data is in the connected event"
    assert client.state.value == "connected"
    assert events.errors == []
    reqs = backend.to("/connect", lambda r: r["body"] and r["body"].get("client") == ctx.client)
    assert len(reqs) == 1, backend.requests
    req = reqs[0]
    assert req["headers"]["cookie"] == cookie_of("main"), "Cookie is listed in http_headers"
    assert req["headers"]["content-type"].startswith("application/json")
    assert_head(req["body"], ctx.client)
    assert req["body"]["name"] == "python"
    assert req["body"]["data"] == {"device": "pytest"}


async def test_rpc_round_trip(proxied, backend):
    client, _, ctx = await proxied("main")
    res = await client.rpc("getPrice", {"id": 12})
    assert res.data == {"price": 2019, "id": 12}
    req = backend.to("/rpc", lambda r: r["body"].get("client") == ctx.client)[-1]
    assert_head(req["body"], ctx.client)
    assert req["body"]["user"] == "42", "the user the connect proxy gave"
    assert req["body"]["method"] == "getPrice"
    assert req["body"]["data"] == {"id": 12}
    assert "cookie" not in req["headers"], "rpc.proxy lists no http_headers"


async def test_subscribe_refused_by_the_backend(proxied, backend):
    client, _, ctx = await proxied("main")
    rec = SubRecorder()
    sub = client.new_subscription("sp:denied", events=rec, min_resubscribe_delay=0.1)
    await sub.subscribe()
    un = await next_event(rec.unsubscribed, "sp:denied refused")
    assert (un.code, un.reason) == (1001, "denied")
    await asyncio.sleep(0.3)
    assert sub.state.value == "unsubscribed", "a non-temporary error is not retried"
    assert rec.subscribed.empty()
    reqs = backend.to("/subscribe", lambda r: r["body"].get("client") == ctx.client)
    assert len(reqs) == 1
    assert_head(reqs[0]["body"], ctx.client)
    assert reqs[0]["body"]["user"] == "42"
    assert reqs[0]["body"]["channel"] == "sp:denied"
    assert client.state.value == "connected"

    ch = f"sp:{unique('open')}"
    rec2 = SubRecorder()
    sub2 = client.new_subscription(ch, events=rec2, data={"want": "all"})
    await sub2.subscribe()
    sctx = await next_event(rec2.subscribed, f"subscribed to {ch}")
    assert sctx.data == {"hello": ch}, "the backend's result data is in the subscribed event"
    req = backend.to("/subscribe", lambda r: r["body"].get("channel") == ch)[-1]
    assert req["body"]["data"] == {"want": "all"}
    presence = await sub2.presence()
    assert presence.clients[ctx.client].chan_info == {"role": "reader"}
    assert presence.clients[ctx.client].user == "42"


async def test_publication_replaced_by_the_publish_proxy(proxied, backend):
    main, _, main_ctx = await proxied("main")
    peer, _, _ = await proxied("peer")
    ch = f"pp:{unique('room')}"
    rec = SubRecorder()
    sub = peer.new_subscription(ch, events=rec)
    await sub.subscribe()
    await next_event(rec.subscribed, f"peer subscribed to {ch}")
    await main.publish(ch, {"text": "hi there"})
    pub = await next_event(rec.publications, f"publication on {ch}")
    assert pub.pub.data == {"text": "HI THERE", "moderated": True}
    req = backend.to("/publish", lambda r: r["body"].get("channel") == ch)[-1]
    assert_head(req["body"], main_ctx.client)
    assert req["body"]["user"] == "42"
    assert req["body"]["data"] == {"text": "hi there"}


async def test_backend_slower_than_the_proxy_timeout(proxied):
    client, events, _ = await proxied("main")
    t0 = time.monotonic()
    with pytest.raises(ReplyError) as err:
        await client.rpc("slow", {})
    took = time.monotonic() - t0
    assert (err.value.code, err.value.message, err.value.temporary) == (100, "internal server error", True)
    assert 0.8 <= took < SLOW_S, f"error at the proxy timeout (1 s), took {took:.2f} s"
    assert client.state.value == "connected"
    res = await client.rpc("getPrice", {"id": 3})
    assert res.data == {"price": 2019, "id": 3}, "the connection still works"
    assert events.disconnected.empty()
