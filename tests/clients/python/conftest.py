"""Fixtures for the Python real-client tests.

`server` starts the server under test once per session: the rotor binary from ROTOR_BIN (default
<repo>/target/debug/rotor) with `-c <tmp>/config.json`, a Centrifugo 2.x flat JSON config on a
free port of 127.0.0.1. ROTOR_TEST_SERVER=ref (the reference server, protocol v1 and `/api` only)
skips this suite: both clients here speak the current protocol and API.

Tokens are HS256 JWTs minted here with hmac/hashlib (no JWT library).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import pytest_asyncio

import centrifuge
from cent import AsyncClient

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVER_KIND = "ref" if os.environ.get("ROTOR_TEST_SERVER") == "ref" else "rotor"

UUID_V4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


def pytest_collection_modifyitems(config, items):
    if SERVER_KIND == "ref":
        skip = pytest.mark.skip(reason="the reference server speaks client protocol v1 and /api only")
        for item in items:
            item.add_marker(skip)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(claims: Dict[str, Any], secret: str) -> str:
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    config: Dict[str, Any]
    log_path: Path
    proc: subprocess.Popen

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def api_key(self) -> str:
        return self.config["api_key"]

    def token(self, claims: Dict[str, Any]) -> str:
        return hs256(claims, self.config["token_hmac_secret_key"])

    def output_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _wait_listening(port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited early with {proc.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not listen on {port} within {timeout} s:\n"
                    f"{log_path.read_text(errors='replace')[-4000:]}"
                )
            time.sleep(0.05)


@pytest.fixture(scope="session")
def server():
    if SERVER_KIND == "ref":
        pytest.skip("the reference server speaks client protocol v1 and /api only")
    binary = os.environ.get("ROTOR_BIN") or str(REPO_ROOT / "target" / "debug" / "rotor")
    port = free_port()
    config = {
        "address": "127.0.0.1",
        "port": port,
        "token_hmac_secret_key": f"secret-{uuid.uuid4()}",
        "api_key": f"api-{uuid.uuid4()}",
        "presence": True,
        "join_leave": True,
        "history_size": 10,
        "history_lifetime": 300,
        "history_recover": True,
    }
    with tempfile.TemporaryDirectory(prefix="rotor-py-test-") as tmp:
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, append the tail of the server's output to the report."""
    outcome = yield
    report = outcome.get_result()
    funcargs = getattr(item, "funcargs", {})
    for name in ("server", "srv"):  # `srv`: test_grpc_api.py's server with the gRPC API
        if report.failed and name in funcargs:
            report.sections.append(("server output (tail)", funcargs[name].output_tail()))


@pytest_asyncio.fixture
async def api(server):
    client = AsyncClient(server.api_url, server.api_key, timeout=5.0)
    try:
        yield client
    finally:
        await client.close()


# ---------- centrifuge-python helpers ----------


class Recorder(centrifuge.ClientEventHandler):
    """Client events into queues/lists (every handler must be async)."""

    def __init__(self) -> None:
        self.connected: asyncio.Queue = asyncio.Queue()
        self.disconnected: asyncio.Queue = asyncio.Queue()
        self.connecting: List[Any] = []
        self.errors: List[Any] = []

    async def on_connected(self, ctx):
        await self.connected.put(ctx)

    async def on_disconnected(self, ctx):
        await self.disconnected.put(ctx)

    async def on_connecting(self, ctx):
        self.connecting.append(ctx)

    async def on_error(self, ctx):
        self.errors.append(ctx)


class SubRecorder(centrifuge.SubscriptionEventHandler):
    def __init__(self) -> None:
        self.subscribed: asyncio.Queue = asyncio.Queue()
        self.unsubscribed: asyncio.Queue = asyncio.Queue()
        self.publications: asyncio.Queue = asyncio.Queue()
        self.joins: List[Any] = []
        self.errors: List[Any] = []

    async def on_subscribed(self, ctx):
        await self.subscribed.put(ctx)

    async def on_unsubscribed(self, ctx):
        await self.unsubscribed.put(ctx)

    async def on_publication(self, ctx):
        await self.publications.put(ctx)

    async def on_join(self, ctx):
        self.joins.append(ctx)

    async def on_error(self, ctx):
        self.errors.append(ctx)


async def next_event(queue: asyncio.Queue, what: str, timeout: float = 5.0):
    try:
        return await asyncio.wait_for(queue.get(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


@dataclass
class Connected:
    client: centrifuge.Client
    events: Recorder
    client_id: str
    user: str
    conn_info: Any
    subs: Dict[str, Any] = field(default_factory=dict)

    async def subscribe(self, channel: str, **kwargs) -> "SubRecorder":
        rec = SubRecorder()
        sub = self.client.new_subscription(channel, events=rec, **kwargs)
        self.subs[channel] = sub
        await sub.subscribe()
        await next_event(rec.subscribed, f"subscribed to {channel}")
        rec.sub = sub
        return rec


@pytest_asyncio.fixture
async def connect(server):
    """connect(user, conn_info) -> Connected: a centrifuge-python client connected with a token."""
    made: List[centrifuge.Client] = []

    async def _connect(user: str = "u-py", conn_info: Optional[Any] = None, token: Optional[str] = None) -> Connected:
        claims: Dict[str, Any] = {"sub": user}
        if conn_info is not None:
            claims["info"] = conn_info
        events = Recorder()
        client = centrifuge.Client(
            server.ws_url,
            events=events,
            token=token if token is not None else server.token(claims),
            proxy=None,
            min_reconnect_delay=0.1,
            max_reconnect_delay=1.0,
        )
        made.append(client)
        await client.connect()
        ctx = await next_event(events.connected, f"connected as {user}")
        return Connected(client=client, events=events, client_id=ctx.client, user=user, conn_info=conn_info)

    try:
        yield _connect
    finally:
        for c in made:
            await c.disconnect()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
