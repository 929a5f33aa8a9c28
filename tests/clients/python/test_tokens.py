"""centrifuge-python 0.7.0 with RS256 tokens minted by PyJWT + cryptography (an independent JWT
implementation, not Rotor's), against a Centrifugo v6 nested config with
`client.token.rsa_public_key` (PEM `PUBLIC KEY`), TOKENS.md §1.2, §5.

Cases: connect with an RS256 token and subscribe to a private (`$`) channel with an RS256
subscription token (static `token` and `get_token`), a publication from the HTTP API arrives;
a connection token signed by another RSA key ends disconnected with 3500 `invalid token` and no
reconnect; a subscription token signed by another key is refused with 103.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, List

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import centrifuge
from cent import AsyncClient, PublishRequest

from conftest import REPO_ROOT, UUID_V4, Recorder, Server, SubRecorder, _wait_listening, free_port, next_event, unique


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA_KEY = _rsa_key()
OTHER_RSA_KEY = _rsa_key()


def rs256(claims: Dict[str, Any], key: rsa.RSAPrivateKey = RSA_KEY) -> str:
    return jwt.encode(claims, key, algorithm="RS256")


@pytest.fixture(scope="module")
def server():
    """Rotor with a v6 nested config holding only an RSA public key for tokens (overrides
    conftest's `server`, so a failure report shows this server's output)."""
    binary = os.environ.get("ROTOR_BIN") or str(REPO_ROOT / "target" / "debug" / "rotor")
    port = free_port()
    config = {
        "http_server": {"address": "127.0.0.1", "port": port},
        "http_api": {"key": f"api-{uuid.uuid4()}"},
        "client": {"token": {"rsa_public_key": _public_pem(RSA_KEY)}},
    }
    with tempfile.TemporaryDirectory(prefix="rotor-py-tokens-") as tmp:
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
        # Server.api_key reads config["api_key"]; give it the nested value under that name.
        srv = Server(port=port, config={**config, "api_key": config["http_api"]["key"]}, log_path=log_path, proc=proc)
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
async def api(server):
    client = AsyncClient(server.api_url, server.api_key, timeout=5.0)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture
async def clients(server):
    made: List[centrifuge.Client] = []

    def _new(token: str) -> "tuple[centrifuge.Client, Recorder]":
        events = Recorder()
        client = centrifuge.Client(
            server.ws_url,
            events=events,
            token=token,
            proxy=None,
            min_reconnect_delay=0.1,
            max_reconnect_delay=1.0,
        )
        made.append(client)
        return client, events

    try:
        yield _new
    finally:
        for c in made:
            await c.disconnect()


def test_the_rsa_key_is_taken(server):
    log = server.output_tail(20000)
    bad = [l for l in log.splitlines() if "rsa_public_key" in l and re.search(r"not supported|ignored|unknown", l)]
    assert bad == [], bad


async def test_rs256_connect_and_private_subscribe_with_pyjwt_tokens(clients, api):
    user = unique("u-py-rs")
    client, events = clients(rs256({"sub": user, "info": {"lib": "pyjwt"}}))
    await client.connect()
    ctx = await next_event(events.connected, "connected with an RS256 token")
    assert re.match(UUID_V4, ctx.client), ctx
    assert events.errors == []

    # A static subscription token.
    ch = f"${unique('py-rs')}"
    rec = SubRecorder()
    sub = client.new_subscription(ch, events=rec, token=rs256({"sub": user, "channel": ch}))
    await sub.subscribe()
    await next_event(rec.subscribed, f"subscribed to {ch}")
    data = {"text": "RS256 from PyJWT", "n": 7}
    await api.publish(PublishRequest(channel=ch, data=data))
    pub = await next_event(rec.publications, f"publication on {ch}")
    assert pub.pub.data == data

    # A subscription token from get_token.
    calls: List[str] = []

    async def get_token(channel: str) -> str:
        calls.append(channel)
        return rs256({"sub": user, "channel": channel})

    ch2 = f"${unique('py-rs-get')}"
    rec2 = SubRecorder()
    sub2 = client.new_subscription(ch2, events=rec2, get_token=get_token)
    await sub2.subscribe()
    await next_event(rec2.subscribed, f"subscribed to {ch2}")
    assert calls == [ch2]
    await api.publish(PublishRequest(channel=ch2, data={"via": "get_token"}))
    pub2 = await next_event(rec2.publications, f"publication on {ch2}")
    assert pub2.pub.data == {"via": "get_token"}
    assert rec.errors == [] and rec2.errors == []


async def test_rs256_connection_token_signed_by_another_key_is_refused_with_3500(clients):
    client, events = clients(rs256({"sub": "u-mallory"}, OTHER_RSA_KEY))
    await client.connect()
    ctx = await next_event(events.disconnected, "disconnected for an invalid token")
    assert (ctx.code, ctx.reason) == (3500, "invalid token"), ctx
    await asyncio.sleep(0.5)  # past max_reconnect_delay / 2: a reconnect would be under way
    assert client.state.value == "disconnected"
    assert events.connected.empty()
    assert len(events.connecting) == 1, "no reconnect attempt"


async def test_rs256_subscription_token_signed_by_another_key_is_refused_with_103(clients):
    user = unique("u-py-rs")
    client, events = clients(rs256({"sub": user}))
    await client.connect()
    await next_event(events.connected, "connected")
    ch = f"${unique('py-forged')}"
    rec = SubRecorder()
    sub = client.new_subscription(ch, events=rec, token=rs256({"sub": user, "channel": ch}, OTHER_RSA_KEY))
    await sub.subscribe()
    un = await next_event(rec.unsubscribed, f"{ch} refused")
    assert (un.code, un.reason) == (103, "permission denied"), un
    assert rec.subscribed.empty()
    assert client.state.value == "connected"
