"""The gRPC server API of both generations (GRPC-API.md §1, §2, §4, §5) with real grpcio clients.

The stubs are generated at test time by grpcio-tools from the project's own schemas,
crates/server/proto/api_v1.proto (package `api`, services `Centrifugo` and its pre-2.2.1 name
`Centrifuge`) and api_v6.proto (package `centrifugal.centrifugo.api`, service `CentrifugoApi`).
Every method of both services is called against the rotor binary, and centrifuge-js 2.8.5
(client protocol v1) and 5.8.0 (protocol v2) subscribers, run by js/subscriber.mjs, show what a
browser app sees: gRPC publications (with tags for v2), server-side subscribe pushes,
unsubscribes and disconnects with their codes.

One server with the 2.x flat keys (`grpc_api`, `grpc_api_port`, `grpc_api_key`) serves most
tests; the v6 section (`grpc_api: {enabled, address, port, key, error_mode, ...}`) gets its own
server. The listener logs "grpc_api listening on ADDR" once bound.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
import uuid
from typing import Any, List

import grpc
import pytest
import requests

from conftest import free_port
from grpc_api_support import (
    TIMEOUT,
    V6,
    J,
    JsSub,
    Pb,
    compile_stubs,
    err,
    ok,
    raw,
    run_server,
    status_of,
    transport_error,
    uniq,
)


@pytest.fixture(scope="module")
def pb(tmp_path_factory) -> Pb:
    return compile_stubs(tmp_path_factory.mktemp("api_stubs"))


@pytest.fixture(scope="module")
def srv():
    """2.x flat keys: grpc_api, grpc_api_port, grpc_api_key."""
    grpc_port = free_port()
    key = f"grpc-{uuid.uuid4()}"
    with tempfile.TemporaryDirectory(prefix="rotor-py-grpc-api-") as tmp:
        yield from run_server(tmp, {"grpc_api": True, "grpc_api_port": grpc_port, "grpc_api_key": key}, grpc_port, key)


@pytest.fixture(scope="module")
def chan(srv):
    with grpc.insecure_channel(srv.grpc_addr) as ch:
        yield ch


@pytest.fixture
def v1(pb, chan):
    return pb.v1g.CentrifugoStub(chan)


@pytest.fixture
def v6(pb, chan):
    return pb.v6g.CentrifugoApiStub(chan)


@pytest.fixture(params=["Centrifugo", "Centrifuge"])
def v1any(request, pb, chan):
    """The 2.x service under its name and under its 2.0-2.2.0 name."""
    return getattr(pb.v1g, f"{request.param}Stub")(chan)


@pytest.fixture
def js(srv):
    made: List[JsSub] = []

    def start(version: int, user: str, channels: List[str], info: Any = None) -> JsSub:
        s = JsSub(version, srv, user, channels, info)
        made.append(s)
        return s

    try:
        yield start
    finally:
        for s in made:
            s.close()


# ======================= 2.x: api.Centrifugo / api.Centrifuge =======================


def test_v1_publish_and_broadcast_reach_js_clients(pb, srv, v1any, js):
    a, b = uniq("v1pub"), uniq("v1pub")
    subs = [js(2, "u-v1pub-2", [a, b]), js(5, "u-v1pub-5", [a, b])]
    for s in subs:
        s.ready()
    md = srv.md
    ok(v1any.Publish(pb.v1.PublishRequest(channel=a, data=J({"n": 1})), metadata=md, timeout=TIMEOUT), result=False)
    for s in subs:
        e = s.wait("publication", channel=a)
        assert e["data"] == {"n": 1} and "info" not in e, e
    ok(v1any.Broadcast(pb.v1.BroadcastRequest(channels=[a, b], data=J({"n": 2})), metadata=md, timeout=TIMEOUT), result=False)
    for s in subs:
        s.wait("publication", channel=b, data={"n": 2})
        s.wait("publication", channel=a, data={"n": 2})
        assert s.pubs(a) == [{"n": 1}, {"n": 2}], s.events


def test_v1_error_codes_and_texts(pb, srv, v1any):
    m, md = pb.v1, srv.md
    ch = uniq("v1err")
    cases = [
        ("Publish", m.PublishRequest(channel="", data=b"{}"), 107, "bad request"),
        ("Publish", m.PublishRequest(channel=ch), 107, "bad request"),
        ("Publish", m.PublishRequest(channel="nope:x", data=b"{}"), 102, "namespace not found"),
        # 2.x checks the payload before the namespace (trap 7).
        ("Publish", m.PublishRequest(channel="nope:x"), 107, "bad request"),
        ("Broadcast", m.BroadcastRequest(channels=[], data=b"{}"), 107, "bad request"),
        ("Broadcast", m.BroadcastRequest(channels=[ch]), 107, "bad request"),
        ("Broadcast", m.BroadcastRequest(channels=[""], data=b"{}"), 107, "bad request"),
        ("Broadcast", m.BroadcastRequest(channels=["nope:x"], data=b"{}"), 102, "namespace not found"),
        ("Unsubscribe", m.UnsubscribeRequest(channel=ch, user=""), 107, "bad request"),
        ("Unsubscribe", m.UnsubscribeRequest(channel="nope:x", user="u"), 102, "namespace not found"),
        ("Disconnect", m.DisconnectRequest(user=""), 107, "bad request"),
        ("RPC", m.RPCRequest(method=""), 107, "bad request"),
        ("RPC", m.RPCRequest(method="getUser", params=b"{}"), 104, "method not found"),
    ]
    for method, req_t in (
        ("Presence", m.PresenceRequest),
        ("PresenceStats", m.PresenceStatsRequest),
        ("History", m.HistoryRequest),
        ("HistoryRemove", m.HistoryRemoveRequest),
    ):
        cases += [
            (method, req_t(channel=""), 107, "bad request"),
            (method, req_t(channel="nope:x"), 102, "namespace not found"),
            (method, req_t(channel="bare:x"), 108, "not available"),
        ]
    for method, req, code, message in cases:
        resp = getattr(v1any, method)(req, metadata=md, timeout=TIMEOUT)
        try:
            err(resp, code, message)
        except AssertionError as e:
            raise AssertionError(f"{method}({req}): {e}") from None


def test_v1_broadcast_stops_at_first_bad_channel(pb, srv, v1, js):
    a, b = uniq("v1bc"), uniq("v1bc")
    s = js(5, "u-v1bc", [a, b]).ready()
    resp = v1.Broadcast(pb.v1.BroadcastRequest(channels=[a, "nope:x", b], data=J({"bc": 1})), metadata=srv.md, timeout=TIMEOUT)
    err(resp, 102, "namespace not found")
    s.wait("publication", channel=a, data={"bc": 1})
    # `b` came after the bad channel: not published. A later publication is the first on `b`.
    ok(v1.Publish(pb.v1.PublishRequest(channel=b, data=J({"marker": 1})), metadata=srv.md, timeout=TIMEOUT), result=False)
    s.wait("publication", channel=b, data={"marker": 1})
    assert s.pubs(b) == [{"marker": 1}], s.events


def test_v1_presence_history_channels_info(pb, srv, v1any, js):
    v1 = v1any
    m, md = pb.v1, srv.md
    ch = uniq("v1state")
    s2 = js(2, "u-v1state-2", [ch], info={"name": "two"})
    s5 = js(5, "u-v1state-5", [ch], info={"name": "five"})
    s2.ready(), s5.ready()

    pres = ok(v1.Presence(m.PresenceRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
    assert set(pres.presence) == {s2.client, s5.client}, pres
    for s, name in ((s2, "two"), (s5, "five")):
        ci = pres.presence[s.client]
        assert (ci.user, ci.client) == (s.user, s.client), ci
        assert json.loads(ci.conn_info) == {"name": name} and ci.chan_info == b"", ci
    stats = ok(v1.PresenceStats(m.PresenceStatsRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
    assert (stats.num_clients, stats.num_users) == (2, 2), stats

    for i in range(3):
        ok(v1.Publish(m.PublishRequest(channel=ch, data=J({"i": i})), metadata=md, timeout=TIMEOUT), result=False)
    s2.wait("publication", channel=ch, data={"i": 2})
    hist = ok(v1.History(m.HistoryRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
    # 2.x: every retained publication (no limit), oldest first, no uid, no info for API ones.
    assert [json.loads(p.data) for p in hist.publications] == [{"i": 0}, {"i": 1}, {"i": 2}], hist
    for p in hist.publications:
        assert p.uid == "" and not p.HasField("info"), p

    chans = ok(v1.Channels(m.ChannelsRequest(), metadata=md, timeout=TIMEOUT), result=True)
    assert ch in list(chans.channels), chans  # a list of names in 2.x (trap 6)

    info = ok(v1.Info(m.InfoRequest(), metadata=md, timeout=TIMEOUT), result=True)
    assert len(info.nodes) == 1, info
    node = info.nodes[0]
    assert node.uid and node.name and node.version, node
    assert node.num_clients >= 2 and node.num_users >= 2 and node.num_channels >= 1, node

    ok(v1.HistoryRemove(m.HistoryRemoveRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=False)
    hist = v1.History(m.HistoryRequest(channel=ch), metadata=md, timeout=TIMEOUT)
    assert not hist.HasField("error") and list(hist.result.publications) == [], hist


def test_v1_unsubscribe_and_disconnect_reach_js_clients(pb, srv, v1any, js):
    v1 = v1any
    m, md = pb.v1, srv.md
    ch = uniq("v1unsub")
    s2 = js(2, uniq("u-v1unsub-2"), [ch]).ready()
    s5 = js(5, uniq("u-v1unsub-5"), [ch]).ready()

    ok(v1.Unsubscribe(m.UnsubscribeRequest(channel=ch, user=s2.user), metadata=md, timeout=TIMEOUT), result=False)
    s2.wait("unsubscribed", channel=ch, server=False)
    assert s5.find("unsubscribed") == [], s5.events
    ok(v1.Unsubscribe(m.UnsubscribeRequest(channel=ch, user=s5.user), metadata=md, timeout=TIMEOUT), result=False)
    e = s5.wait("unsubscribed", channel=ch, server=False)
    assert (e["code"], e["reason"]) == (2000, "server unsubscribe"), e

    ok(v1.Disconnect(m.DisconnectRequest(user=s2.user), metadata=md, timeout=TIMEOUT), result=False)
    # Protocol v1: close 3012 with the 2.x JSON reason, no reconnect (PROTOCOL.md §2.x codes).
    close = s2.wait("close")
    assert close["code"] == 3012 and json.loads(close["reason"]) == {"reason": "force disconnect", "reconnect": False}, close
    d = s2.wait("disconnected")
    assert (d["reason"], d["reconnect"]) == ("force disconnect", False), d
    assert s5.find("disconnected") == [], s5.events

    ok(v1.Disconnect(m.DisconnectRequest(user=s5.user), metadata=md, timeout=TIMEOUT), result=False)
    d = s5.wait("disconnected")
    assert (d["code"], d["reason"]) == (3503, "force disconnect"), d


def test_v1_unsubscribe_empty_channel_removes_nothing(pb, srv, v1, js):
    """PROTOCOL.md §8 (2.x `unsubscribe`): an empty channel skips the namespace check and does
    not mean "all channels" in centrifuge v0.14: nothing is unsubscribed (the connections get an
    UNSUB push with an empty channel, which centrifuge-js ignores)."""
    m, md = pb.v1, srv.md
    a, b = uniq("v1unsub-empty"), uniq("v1unsub-empty")
    s2 = js(2, uniq("u-v1unsub-empty-2"), [a, b]).ready()
    s5 = js(5, uniq("u-v1unsub-empty-5"), [a, b]).ready()
    for s in (s2, s5):
        ok(v1.Unsubscribe(m.UnsubscribeRequest(channel="", user=s.user), metadata=md, timeout=TIMEOUT), result=False)
    ok(v1.Broadcast(m.BroadcastRequest(channels=[a, b], data=J({"still": "subscribed"})), metadata=md, timeout=TIMEOUT), result=False)
    for s in (s2, s5):
        for c in (a, b):
            s.wait("publication", channel=c, data={"still": "subscribed"})
        assert s.find("unsubscribed") == [], s.events


# ======================= v6: centrifugal.centrifugo.api.CentrifugoApi =======================


def test_v6_publish_reaches_js_clients_with_tags(pb, srv, v6, js):
    m, md = pb.v6, srv.md
    ch, other = uniq("v6pub"), uniq("v6pub")
    s2 = js(2, "u-v6pub-2", [ch, other])
    s5 = js(5, "u-v6pub-5", [ch, other])
    s2.ready(), s5.ready()

    r = ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"n": 1}), tags={"kind": "greeting"}), metadata=md, timeout=TIMEOUT), result=True)
    assert r.offset == 1 and r.epoch, r
    e5 = s5.wait("publication", channel=ch)
    assert (e5["data"], e5.get("tags"), e5.get("offset")) == ({"n": 1}, {"kind": "greeting"}, 1), e5
    e2 = s2.wait("publication", channel=ch)
    assert e2["data"] == {"n": 1} and "tags" not in e2, e2  # protocol v1 has no tags

    # b64data wins over data.
    b64 = base64.b64encode(J({"b": 64})).decode()
    r2 = ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"lost": 1}), b64data=b64), metadata=md, timeout=TIMEOUT), result=True)
    assert (r2.offset, r2.epoch) == (2, r.epoch), r2
    for s in (s2, s5):
        s.wait("publication", channel=ch, data={"b": 64})

    # skip_history: delivered, not kept.
    ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"skip": 1}), skip_history=True), metadata=md, timeout=TIMEOUT), result=True)
    s5.wait("publication", channel=ch, data={"skip": 1})

    # A repeated idempotency key: the first result again, one delivery.
    key = uniq("idem")
    r3 = ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"idem": 1}), idempotency_key=key), metadata=md, timeout=TIMEOUT), result=True)
    r4 = ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"idem": 1}), idempotency_key=key), metadata=md, timeout=TIMEOUT), result=True)
    assert (r4.offset, r4.epoch) == (r3.offset, r3.epoch) and r3.offset == 3, (r3, r4)

    # `version`: a version not above the last one is dropped, the stream top is returned.
    r5 = ok(v6.Publish(m.PublishRequest(channel=other, data=J({"v": 5}), version=5), metadata=md, timeout=TIMEOUT), result=True)
    r6 = ok(v6.Publish(m.PublishRequest(channel=other, data=J({"v": "5 again"}), version=5), metadata=md, timeout=TIMEOUT), result=True)
    r7 = ok(v6.Publish(m.PublishRequest(channel=other, data=J({"v": 6}), version=6), metadata=md, timeout=TIMEOUT), result=True)
    assert (r5.offset, r6.offset, r7.offset) == (1, 1, 2), (r5, r6, r7)
    s5.wait("publication", channel=other, data={"v": 6})
    assert s5.pubs(other) == [{"v": 5}, {"v": 6}], s5.events

    # Broadcast: one response per channel, each with its own position.
    bc = ok(v6.Broadcast(m.BroadcastRequest(channels=[ch, other], data=J({"bc": 1}), tags={"t": "b"}), metadata=md, timeout=TIMEOUT), result=True)
    assert len(bc.responses) == 2, bc
    assert [(x.HasField("error"), x.result.offset) for x in bc.responses] == [(False, 4), (False, 3)], bc
    for c in (ch, other):
        e = s5.wait("publication", channel=c, data={"bc": 1})
        assert e.get("tags") == {"t": "b"}, e
        s2.wait("publication", channel=c, data={"bc": 1})
    assert s5.pubs(ch) == [{"n": 1}, {"b": 64}, {"skip": 1}, {"idem": 1}, {"bc": 1}], s5.events
    assert s2.pubs(ch) == [{"n": 1}, {"b": 64}, {"skip": 1}, {"idem": 1}, {"bc": 1}], s2.events

    hist = ok(v6.History(m.HistoryRequest(channel=ch, limit=-1), metadata=md, timeout=TIMEOUT), result=True)
    assert [json.loads(p.data) for p in hist.publications] == [{"n": 1}, {"b": 64}, {"idem": 1}, {"bc": 1}], hist
    assert [p.offset for p in hist.publications] == [1, 2, 3, 4], hist
    assert dict(hist.publications[0].tags) == {"kind": "greeting"}, hist

    # `delta`: subscribers that did not ask for deltas get the full data.
    ok(v6.Publish(m.PublishRequest(channel=other, data=J({"full": 1}), delta=True), metadata=md, timeout=TIMEOUT), result=True)
    ok(v6.Publish(m.PublishRequest(channel=other, data=J({"full": 2}), delta=True), metadata=md, timeout=TIMEOUT), result=True)
    for s in (s2, s5):
        s.wait("publication", channel=other, data={"full": 2})
        assert s.pubs(other)[-2:] == [{"full": 1}, {"full": 2}], s.events


def test_v6_broadcast_per_channel_errors(pb, srv, v6, js):
    m, md = pb.v6, srv.md
    a, b = uniq("v6bc"), uniq("v6bc")
    s5 = js(5, "u-v6bc", [a, b]).ready()
    bc = ok(v6.Broadcast(m.BroadcastRequest(channels=[a, "", "nope:x", b], data=J({"x": 1})), metadata=md, timeout=TIMEOUT), result=True)
    got = [(x.error.code, x.error.message) if x.HasField("error") else ("ok", x.result.offset) for x in bc.responses]
    assert got == [("ok", 1), (107, "bad request"), (102, "unknown channel"), ("ok", 1)], bc
    for c in (a, b):
        s5.wait("publication", channel=c, data={"x": 1})
    err(v6.Broadcast(m.BroadcastRequest(channels=[], data=b"{}"), metadata=md, timeout=TIMEOUT), 107, "bad request")
    err(v6.Broadcast(m.BroadcastRequest(channels=[a], b64data="!!not base64"), metadata=md, timeout=TIMEOUT), 107, "bad request")
    # An empty payload is a per-channel error.
    bc = ok(v6.Broadcast(m.BroadcastRequest(channels=[a]), metadata=md, timeout=TIMEOUT), result=True)
    assert [(x.error.code, x.error.message) for x in bc.responses] == [(107, "bad request")], bc


def test_v6_error_codes_and_texts(pb, srv, v6):
    m, md = pb.v6, srv.md
    ch = uniq("v6err")
    ok(v6.Publish(m.PublishRequest(channel=ch, data=b"{}"), metadata=md, timeout=TIMEOUT), result=True)
    cases = [
        ("Publish", m.PublishRequest(channel="", data=b"{}"), 107, "bad request"),
        # v6 checks the namespace before the payload (trap 7).
        ("Publish", m.PublishRequest(channel="nope:x"), 102, "unknown channel"),
        ("Publish", m.PublishRequest(channel=ch), 107, "bad request"),
        ("Publish", m.PublishRequest(channel=ch, b64data="!!not base64"), 107, "bad request"),
        ("Subscribe", m.SubscribeRequest(channel="", user="u"), 107, "bad request"),
        ("Subscribe", m.SubscribeRequest(channel="nope:x", user="u"), 102, "unknown channel"),
        ("Subscribe", m.SubscribeRequest(channel=ch, user="u", b64data="!!not base64"), 107, "bad request"),
        ("Subscribe", m.SubscribeRequest(channel=ch, user="u", b64info="!!not base64"), 107, "bad request"),
        ("Unsubscribe", m.UnsubscribeRequest(channel="nope:x", user="u"), 102, "unknown channel"),
        ("History", m.HistoryRequest(channel=ch, limit=-1, since=m.StreamPosition(offset=0, epoch="wrong-epoch")), 112, "unrecoverable position"),
        ("RPC", m.RPCRequest(method=""), 107, "bad request"),
        ("RPC", m.RPCRequest(method="getUser", params=b"{}"), 104, "not found"),
        ("Channels", m.ChannelsRequest(pattern="[unclosed"), 100, "internal server error"),
    ]
    for method, req_t in (
        ("Presence", m.PresenceRequest),
        ("PresenceStats", m.PresenceStatsRequest),
        ("History", m.HistoryRequest),
        ("HistoryRemove", m.HistoryRemoveRequest),
    ):
        cases += [
            (method, req_t(channel=""), 107, "bad request"),
            (method, req_t(channel="nope:x"), 102, "unknown channel"),
            (method, req_t(channel="bare:x"), 108, "not available"),
        ]
    for method, req, code, message in cases:
        resp = getattr(v6, method)(req, metadata=md, timeout=TIMEOUT)
        try:
            err(resp, code, message)
        except AssertionError as e:
            raise AssertionError(f"{method}({req}): {e}") from None
    # History off: a result with the zero position.
    r = ok(v6.Publish(m.PublishRequest(channel="bare:x", data=b"{}"), metadata=md, timeout=TIMEOUT), result=True)
    assert (r.offset, r.epoch) == (0, ""), r
    # No user check on v6 Unsubscribe / Disconnect (2.x answered 107).
    ok(v6.Unsubscribe(m.UnsubscribeRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
    ok(v6.Disconnect(m.DisconnectRequest(user=""), metadata=md, timeout=TIMEOUT), result=True)


def test_v6_subscribe_push_and_server_side_subscription(pb, srv, v6, js):
    m, md = pb.v6, srv.md
    ch = uniq("v6srvsub")
    user = uniq("u-v6srvsub")
    s5 = js(5, user, []).ready()
    other = js(5, user, []).ready()  # the same user's second connection
    b64info = base64.b64encode(J({"role": "listener"})).decode()
    req = m.SubscribeRequest(channel=ch, user=s5.user, client=s5.client, data=J({"welcome": True}), b64info=b64info)
    ok(v6.Subscribe(req, metadata=md, timeout=TIMEOUT), result=True)
    e = s5.wait("subscribed", channel=ch, server=True)
    assert e.get("data") == {"welcome": True}, e
    ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"to": "server-sub"}), tags={"a": "1"}), metadata=md, timeout=TIMEOUT), result=True)
    p = s5.wait("publication", channel=ch, server=True)
    assert (p["data"], p.get("tags")) == ({"to": "server-sub"}, {"a": "1"}), p
    pres = ok(v6.Presence(m.PresenceRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
    assert list(pres.presence) == [s5.client], pres
    assert json.loads(pres.presence[s5.client].chan_info) == {"role": "listener"}, pres
    assert other.find("subscribed") == [] and other.find("publication") == [], other.events  # `client` filter
    ok(v6.Unsubscribe(m.UnsubscribeRequest(channel=ch, user=s5.user), metadata=md, timeout=TIMEOUT), result=True)
    s5.wait("unsubscribed", channel=ch, server=True)

    # override: presence off for this subscription only.
    quiet = uniq("v6srvsub-quiet")
    over = m.SubscribeOptionOverride(presence=m.BoolValue(value=False))
    ok(v6.Subscribe(m.SubscribeRequest(channel=quiet, user=s5.user, override=over), metadata=md, timeout=TIMEOUT), result=True)
    s5.wait("subscribed", channel=quiet, server=True)
    pres = ok(v6.Presence(m.PresenceRequest(channel=quiet), metadata=md, timeout=TIMEOUT), result=True)
    assert dict(pres.presence) == {}, pres


def test_v6_subscribe_expire_at(pb, srv, v6, js):
    """A server-side subscription with `expire_at` and no way to refresh it: the connection is
    closed with 3006 `subscription expired` (a reconnect code) once it expires."""
    m, md = pb.v6, srv.md
    ch = uniq("v6expire")
    s5 = js(5, uniq("u-v6expire"), []).ready()
    req = m.SubscribeRequest(channel=ch, user=s5.user, expire_at=int(time.time()) + 1)
    ok(v6.Subscribe(req, metadata=md, timeout=TIMEOUT), result=True)
    s5.wait("subscribed", channel=ch, server=True)
    c = s5.wait("connecting", code=3006, timeout=8)
    assert c["reason"] == "subscription expired", c
    # Reconnected without the server-side subscription.
    deadline = time.monotonic() + TIMEOUT
    while len(s5.find("connected")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(s5.find("connected")) == 2, s5.events
    assert len(s5.find("subscribed", channel=ch)) == 1, s5.events


def test_v6_subscribe_push_to_centrifuge2(pb, srv, v6, js):
    """Protocol v1 has the SUB push (2.4+): centrifuge-js 2.8.5 reports a server-side subscribe."""
    m, md = pb.v6, srv.md
    ch = uniq("v6srvsub2")
    s2 = js(2, uniq("u-v6srvsub2"), []).ready()
    ok(v6.Subscribe(m.SubscribeRequest(channel=ch, user=s2.user), metadata=md, timeout=TIMEOUT), result=True)
    s2.wait("subscribed", channel=ch, server=True)
    ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"v1": "server-sub"})), metadata=md, timeout=TIMEOUT), result=True)
    s2.wait("publication", channel=ch, server=True, data={"v1": "server-sub"})
    ok(v6.Unsubscribe(m.UnsubscribeRequest(channel=ch, user=s2.user), metadata=md, timeout=TIMEOUT), result=True)
    s2.wait("unsubscribed", channel=ch, server=True)


def test_v6_unsubscribe_by_client_and_disconnect_codes(pb, srv, v6, js):
    m, md = pb.v6, srv.md
    ch = uniq("v6disc")
    user = uniq("u-v6disc")
    a = js(5, user, [ch])
    b = js(5, user, [ch])
    s2 = js(2, uniq("u-v6disc-2"), [ch])
    a.ready(), b.ready(), s2.ready()

    # An empty channel removes nothing (an unsubscribe push with an empty channel, ignored).
    ok(v6.Unsubscribe(m.UnsubscribeRequest(channel="", user=user), metadata=md, timeout=TIMEOUT), result=True)
    ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"after": "empty"})), metadata=md, timeout=TIMEOUT), result=True)
    for s in (a, b):
        s.wait("publication", channel=ch, data={"after": "empty"})
        assert s.find("unsubscribed") == [], s.events

    # By client ID: only that connection.
    ok(v6.Unsubscribe(m.UnsubscribeRequest(channel=ch, user=user, client=a.client), metadata=md, timeout=TIMEOUT), result=True)
    e = a.wait("unsubscribed", channel=ch, server=False)
    assert (e["code"], e["reason"]) == (2000, "server unsubscribe"), e
    ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"after": "unsub"})), metadata=md, timeout=TIMEOUT), result=True)
    b.wait("publication", channel=ch, data={"after": "unsub"})
    s2.wait("publication", channel=ch, data={"after": "unsub"})
    assert b.find("unsubscribed") == [] and a.pubs(ch) == [{"after": "empty"}], (a.events, b.events)

    # A custom code and reason; the whitelisted connection stays.
    ok(
        v6.Disconnect(
            m.DisconnectRequest(user=user, disconnect=m.Disconnect(code=4501, reason="custom bye"), whitelist=[b.client]),
            metadata=md,
            timeout=TIMEOUT,
        ),
        result=True,
    )
    d = a.wait("disconnected")
    assert (d["code"], d["reason"]) == (4501, "custom bye"), d
    ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"after": "disc"})), metadata=md, timeout=TIMEOUT), result=True)
    b.wait("publication", channel=ch, data={"after": "disc"})
    assert b.find("disconnected") == [], b.events

    # Without `disconnect`: 3503 force disconnect; by client ID only that connection (a
    # client ID of no connection of the user touches nobody).
    ok(v6.Disconnect(m.DisconnectRequest(user=user, client=s2.client), metadata=md, timeout=TIMEOUT), result=True)
    ok(v6.Disconnect(m.DisconnectRequest(user=user, client=b.client), metadata=md, timeout=TIMEOUT), result=True)
    d = b.wait("disconnected")
    assert (d["code"], d["reason"]) == (3503, "force disconnect"), d

    assert s2.find("close") == [], s2.events
    ok(v6.Unsubscribe(m.UnsubscribeRequest(channel=ch, user=s2.user), metadata=md, timeout=TIMEOUT), result=True)
    s2.wait("unsubscribed", channel=ch, server=False)
    # A protocol v1 client: the custom code is the WebSocket close code.
    ok(v6.Disconnect(m.DisconnectRequest(user=s2.user, disconnect=m.Disconnect(code=4502, reason="bye two")), metadata=md, timeout=TIMEOUT), result=True)
    close = s2.wait("close")
    assert close["code"] == 4502 and json.loads(close["reason"])["reason"] == "bye two", close
    assert s2.wait("disconnected")["reason"] == "bye two"


def test_v6_refresh(pb, srv, v6, js):
    m, md = pb.v6, srv.md
    ch = uniq("v6refresh")
    s5 = js(5, uniq("u-v6refresh"), [ch], info={"v": "old"}).ready()
    s2 = js(2, uniq("u-v6refresh-2"), []).ready()
    # New expiry in the future and new connection info: the connection stays, and presence
    # shows the new info from its next update on.
    req = m.RefreshRequest(user=s5.user, expire_at=int(time.time()) + 3600, info=J({"v": "new"}))
    ok(v6.Refresh(req, metadata=md, timeout=TIMEOUT), result=True)
    deadline = time.monotonic() + 4
    while True:
        pres = ok(v6.Presence(m.PresenceRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
        got = json.loads(pres.presence[s5.client].conn_info)
        if got == {"v": "new"} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got == {"v": "new"}, pres
    assert s5.find("close") == [], s5.events
    ok(v6.Refresh(m.RefreshRequest(user=s5.user, expired=True), metadata=md, timeout=TIMEOUT), result=True)
    # 3005 is a reconnect code: the client reconnects with its token (it has no exp).
    c = s5.wait("connecting", code=3005)
    assert c["reason"] == "connection expired", c
    assert s5.wait("close")["code"] == 3005
    deadline = time.monotonic() + TIMEOUT
    while len(s5.find("connected")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(s5.find("connected")) == 2 and s5.find("disconnected") == [], s5.events
    ok(v6.Refresh(m.RefreshRequest(user=s2.user, expired=True), metadata=md, timeout=TIMEOUT), result=True)
    close = s2.wait("close")
    assert close["code"] == 3005 and json.loads(close["reason"]) == {"reason": "expired", "reconnect": True}, close


def test_v6_history_presence_channels_info(pb, srv, v6, js):
    m, md = pb.v6, srv.md
    prefix = uniq("v6state")
    ch = f"{prefix}-main"
    s5 = js(5, "u-v6state-5", [ch], info={"n": 5})
    s2 = js(2, "u-v6state-2", [ch], info={"n": 2})
    s5.ready(), s2.ready()
    for i in range(3):
        tags = {"first": "yes"} if i == 0 else {}
        ok(v6.Publish(m.PublishRequest(channel=ch, data=J({"i": i}), tags=tags), metadata=md, timeout=TIMEOUT), result=True)
    s5.wait("publication", channel=ch, data={"i": 2})

    def hist(**kw):
        return ok(v6.History(m.HistoryRequest(channel=ch, **kw), metadata=md, timeout=TIMEOUT), result=True)

    top = hist()  # limit 0: the stream top only (trap 5)
    assert list(top.publications) == [] and top.offset == 3 and top.epoch, top
    all_ = hist(limit=-1)
    assert [(p.offset, json.loads(p.data)) for p in all_.publications] == [(1, {"i": 0}), (2, {"i": 1}), (3, {"i": 2})], all_
    assert dict(all_.publications[0].tags) == {"first": "yes"} and dict(all_.publications[1].tags) == {}, all_
    assert not all_.publications[0].HasField("info"), all_
    assert [p.offset for p in hist(limit=2).publications] == [1, 2]
    since1 = m.StreamPosition(offset=1, epoch=top.epoch)
    assert [p.offset for p in hist(limit=-1, since=since1).publications] == [2, 3]
    assert list(hist(limit=0, since=since1).publications) == []
    assert [p.offset for p in hist(limit=-1, reverse=True).publications] == [3, 2, 1]
    assert [p.offset for p in hist(limit=-1, since=m.StreamPosition(offset=3, epoch=top.epoch), reverse=True).publications] == [2, 1]
    # reverse from offset 0: the engine's bad request, reported as 100.
    e = v6.History(m.HistoryRequest(channel=ch, limit=-1, reverse=True, since=m.StreamPosition(offset=0, epoch=top.epoch)), metadata=md, timeout=TIMEOUT)
    err(e, 100, "internal server error")
    ok(v6.HistoryRemove(m.HistoryRemoveRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
    after = hist(limit=-1)
    assert list(after.publications) == [] and (after.offset, after.epoch) == (3, top.epoch), after

    pres = ok(v6.Presence(m.PresenceRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
    assert set(pres.presence) == {s5.client, s2.client}, pres
    assert json.loads(pres.presence[s5.client].conn_info) == {"n": 5} and pres.presence[s5.client].user == s5.user
    stats = ok(v6.PresenceStats(m.PresenceStatsRequest(channel=ch), metadata=md, timeout=TIMEOUT), result=True)
    assert (stats.num_clients, stats.num_users) == (2, 2), stats

    # Only channels with subscribers are listed.
    ok(v6.Publish(m.PublishRequest(channel=f"{prefix}-nobody", data=b"{}"), metadata=md, timeout=TIMEOUT), result=True)
    chans = ok(v6.Channels(m.ChannelsRequest(), metadata=md, timeout=TIMEOUT), result=True)
    assert chans.channels[ch].num_clients == 2, chans  # a map in v6 (trap 6)
    only = ok(v6.Channels(m.ChannelsRequest(pattern=f"{prefix}-*"), metadata=md, timeout=TIMEOUT), result=True)
    assert {k: v.num_clients for k, v in only.channels.items()} == {ch: 2}, only
    none = ok(v6.Channels(m.ChannelsRequest(pattern=f"{prefix}-x?"), metadata=md, timeout=TIMEOUT), result=True)
    assert dict(none.channels) == {}, none

    info = ok(v6.Info(m.InfoRequest(), metadata=md, timeout=TIMEOUT), result=True)
    assert len(info.nodes) == 1, info
    node = info.nodes[0]
    assert node.uid and node.name and node.version, node
    assert node.num_clients >= 2 and node.num_subs >= 2 and node.num_channels >= 1, node
    assert not node.HasField("process"), node


def test_v6_batch(pb, srv, v6, chan, js):
    m, md = pb.v6, srv.md
    a, b = uniq("v6batch"), uniq("v6batch")
    s5 = js(5, uniq("u-v6batch"), [a, b]).ready()
    C = m.Command
    resp = v6.Batch(
        m.BatchRequest(
            commands=[
                C(publish=m.PublishRequest(channel=a, data=J({"batch": 1}))),
                C(broadcast=m.BroadcastRequest(channels=[a, b], data=J({"batch": 2}))),
                C(presence_stats=m.PresenceStatsRequest(channel=a)),
                C(),  # no field set
                C(rpc=m.RPCRequest(method="m")),
                C(publish=m.PublishRequest(channel="nope:x", data=b"{}")),
                C(history=m.HistoryRequest(channel=a, limit=-1)),
                C(info=m.InfoRequest()),
            ]
        ),
        metadata=md,
        timeout=TIMEOUT,
    )
    r = list(resp.replies)
    assert len(r) == 8, resp
    assert r[0].HasField("publish") and r[0].publish.offset == 1 and not r[0].HasField("error"), r[0]
    assert [x.result.offset for x in r[1].broadcast.responses] == [2, 1], r[1]
    assert r[2].presence_stats.num_clients == 1, r[2]
    assert (r[3].error.code, r[3].error.message) == (104, "not found"), r[3]
    assert (r[4].error.code, r[4].error.message) == (104, "not found"), r[4]
    assert (r[5].error.code, r[5].error.message) == (102, "unknown channel"), r[5]
    assert [p.offset for p in r[6].history.publications] == [1, 2], r[6]
    assert r[7].HasField("info") and len(r[7].info.nodes) == 1, r[7]
    s5.wait("publication", channel=b, data={"batch": 2})
    assert s5.pubs(a) == [{"batch": 1}, {"batch": 2}], s5.events

    par = v6.Batch(
        m.BatchRequest(commands=[C(publish=m.PublishRequest(channel=b, data=J({"p": i}))) for i in range(5)], parallel=True),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert len(par.replies) == 5 and all(x.HasField("publish") for x in par.replies), par
    assert sorted(x.publish.offset for x in par.replies) == [2, 3, 4, 5, 6], par
    deadline = time.monotonic() + TIMEOUT
    while len(s5.pubs(b)) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(d.get("p", -1) for d in s5.pubs(b)) == [-1, 0, 1, 2, 3, 4], s5.events

    # A command with only a PRO field (17: connections) set: 104. Built by hand, Rotor's
    # schema does not declare it: BatchRequest{commands: [Command{17: {}}]}.
    out = raw(chan, f"{V6}/Batch")(b"\x0a\x03\x8a\x01\x00", metadata=md, timeout=TIMEOUT)
    pro = m.BatchResponse.FromString(out)
    assert [(x.error.code, x.error.message) for x in pro.replies] == [(104, "not found")], pro
    # An empty batch: no replies.
    assert list(v6.Batch(m.BatchRequest(), metadata=md, timeout=TIMEOUT).replies) == []


def test_v6_transport_error_mode_metadata(pb, srv, v6, v1):
    m = pb.v6
    md = srv.md + (("x-centrifugo-error-mode", "transport"),)
    ch = uniq("v6transport")
    S = grpc.StatusCode
    cases = [
        ("Publish", m.PublishRequest(channel="nope:x", data=b"{}"), S.NOT_FOUND, 102, "unknown channel"),
        ("Publish", m.PublishRequest(channel="", data=b"{}"), S.INVALID_ARGUMENT, 107, "bad request"),
        ("History", m.HistoryRequest(channel="bare:x"), S.INVALID_ARGUMENT, 108, "not available"),
        ("RPC", m.RPCRequest(method="m"), S.NOT_FOUND, 104, "not found"),
        ("Channels", m.ChannelsRequest(pattern="[unclosed"), S.INTERNAL, 100, "internal server error"),
        ("Broadcast", m.BroadcastRequest(channels=[], data=b"{}"), S.INVALID_ARGUMENT, 107, "bad request"),
    ]
    for method, req, status, code, message in cases:
        e = status_of(getattr(v6, method), req, metadata=md, timeout=TIMEOUT)
        assert transport_error(pb, e) == (status, message, (code, message)), (method, req)
    ok(v6.Publish(m.PublishRequest(channel=ch, data=b"{}"), metadata=md, timeout=TIMEOUT), result=True)
    e = status_of(v6.History, m.HistoryRequest(channel=ch, since=m.StreamPosition(offset=1, epoch="wrong")), metadata=md, timeout=TIMEOUT)
    assert transport_error(pb, e) == (S.OUT_OF_RANGE, "unrecoverable position", (112, "unrecoverable position"))
    # Broadcast keeps per-channel errors inside; Batch is never converted (trap 11).
    bc = ok(v6.Broadcast(m.BroadcastRequest(channels=[ch, "nope:x"], data=b"{}"), metadata=md, timeout=TIMEOUT), result=True)
    assert [x.HasField("error") for x in bc.responses] == [False, True] and bc.responses[1].error.code == 102, bc
    batch = v6.Batch(m.BatchRequest(commands=[m.Command(), m.Command(publish=m.PublishRequest(channel="nope:x", data=b"{}"))]), metadata=md, timeout=TIMEOUT)
    assert [x.error.code for x in batch.replies] == [104, 102], batch
    # Only the exact value switches the mode; the 2.x service never has it.
    err(v6.Publish(m.PublishRequest(channel="nope:x", data=b"{}"), metadata=srv.md + (("x-centrifugo-error-mode", "custom"),), timeout=TIMEOUT), 102, "unknown channel")
    err(v1.Publish(pb.v1.PublishRequest(channel="nope:x", data=b"{}"), metadata=md, timeout=TIMEOUT), 102, "namespace not found")


def test_auth_and_unimplemented_methods(pb, srv, chan):
    stubs = [
        (pb.v1g.CentrifugoStub(chan).Info, pb.v1.InfoRequest()),
        (pb.v1g.CentrifugeStub(chan).Info, pb.v1.InfoRequest()),
        (pb.v6g.CentrifugoApiStub(chan).Info, pb.v6.InfoRequest()),
        (pb.v6g.CentrifugoApiStub(chan).Publish, pb.v6.PublishRequest(channel="auth", data=b"{}")),
    ]
    bad = [
        (),
        (("authorization", "apikey wrong"),),
        (("authorization", f"Apikey {srv.key}"),),
        (("authorization", f"apikey  {srv.key}"),),
        (("authorization", f"bearer {srv.key}"),),
        (("authorization", srv.key),),
        # Only the first value counts.
        (("authorization", "apikey wrong"), ("authorization", f"apikey {srv.key}")),
    ]
    for call, req in stubs:
        for md in bad:
            e = status_of(call, req, metadata=md, timeout=TIMEOUT)
            assert (e.code(), e.details()) == (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated"), (call, md, e)
        assert not call(req, metadata=srv.md, timeout=TIMEOUT).HasField("error")
        two = srv.md + (("authorization", "apikey wrong"),)
        assert not call(req, metadata=two, timeout=TIMEOUT).HasField("error")
    # PRO methods of v6 and methods 2.x never had: UNIMPLEMENTED, not error 108 (trap 9).
    for path in (f"{V6}/Connections", f"{V6}/RevokeToken", f"{V6}/DeviceRegister", "/api.Centrifugo/Subscribe", "/api.Centrifugo/Batch"):
        e = status_of(raw(chan, path), b"", metadata=srv.md, timeout=TIMEOUT)
        assert e.code() == grpc.StatusCode.UNIMPLEMENTED, (path, e)
    e = status_of(raw(chan, f"{V6}/Connections"), b"", metadata=srv.md, timeout=TIMEOUT)
    assert e.details() == "method Connections not implemented", e


def test_malformed_and_oversize_requests(pb, srv, chan, v6):
    md = srv.md
    for path in (f"{V6}/Publish", "/api.Centrifugo/Publish", f"{V6}/Batch"):
        # Field 1 (channel) declared as 100 bytes long, with 2 present.
        e = status_of(raw(chan, path), b"\x0a\x64ab", metadata=md, timeout=TIMEOUT)
        assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL), (path, e)
    big = pb.v6.PublishRequest(channel=uniq("big"), data=b'"' + b"x" * (4 * 1024 * 1024 + 10) + b'"')
    e = status_of(v6.Publish, big, metadata=md, timeout=10)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    # Still healthy on the same connection.
    ok(v6.Publish(pb.v6.PublishRequest(channel=uniq("after"), data=b"{}"), metadata=md, timeout=TIMEOUT), result=True)


def test_grpc_calls_in_api_metrics(pb, srv, v6, v1):
    ok(v6.Publish(pb.v6.PublishRequest(channel=uniq("metrics"), data=b"{}"), metadata=srv.md, timeout=TIMEOUT), result=True)
    ok(v1.Info(pb.v1.InfoRequest(), metadata=srv.md, timeout=TIMEOUT), result=True)
    text = requests.get(f"{srv.http}/metrics", timeout=5).text
    lines = [l for l in text.splitlines() if l.startswith("centrifugo_api_command_duration_seconds_count")]
    grpc_lines = [l for l in lines if 'protocol="grpc"' in l]
    assert any('method="publish"' in l for l in grpc_lines), lines
    assert any('method="info"' in l for l in grpc_lines), lines


# ======================= the v6 config section =======================


def test_v6_config_section_global_transport_mode_and_receive_limit(pb):
    grpc_port = free_port()
    key = f"grpc6-{uuid.uuid4()}"
    section = {
        "enabled": True,
        "address": "127.0.0.1",
        "port": grpc_port,
        "key": key,
        "error_mode": "transport",
        "max_receive_message_size": 2000,
    }
    with tempfile.TemporaryDirectory(prefix="rotor-py-grpc-api-v6-") as tmp:
        gen = run_server(tmp, {"grpc_api": section}, grpc_port, key)
        s = next(gen)
        try:
            log = s.log_path.read_text(errors="replace")
            assert f"grpc_api listening on 127.0.0.1:{grpc_port}" in log, log[-2000:]
            with grpc.insecure_channel(s.grpc_addr) as chan:
                v6 = pb.v6g.CentrifugoApiStub(chan)
                v1 = pb.v1g.CentrifugoStub(chan)
                ok(v6.Publish(pb.v6.PublishRequest(channel="v6cfg", data=b"{}"), metadata=s.md, timeout=TIMEOUT), result=True)
                ok(v1.Publish(pb.v1.PublishRequest(channel="v6cfg", data=b"{}"), metadata=s.md, timeout=TIMEOUT), result=False)
                # error_mode: transport for the v6 service only.
                e = status_of(v6.Publish, pb.v6.PublishRequest(channel="nope:x", data=b"{}"), metadata=s.md, timeout=TIMEOUT)
                assert transport_error(pb, e) == (grpc.StatusCode.NOT_FOUND, "unknown channel", (102, "unknown channel"))
                err(v1.Publish(pb.v1.PublishRequest(channel="nope:x", data=b"{}"), metadata=s.md, timeout=TIMEOUT), 102, "namespace not found")
                e = status_of(v6.Info, pb.v6.InfoRequest(), metadata=(("authorization", "apikey other"),), timeout=TIMEOUT)
                assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
                # max_receive_message_size.
                big = pb.v6.PublishRequest(channel="v6cfg", data=b'"' + b"y" * 3000 + b'"')
                e = status_of(v6.Publish, big, metadata=s.md, timeout=TIMEOUT)
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        finally:
            gen.close()


def test_empty_key_accepts_loopback_calls(pb):
    """Rotor's decision (README): without a key the API accepts calls from loopback and
    private-network peers (Centrifugo: from everybody), so a 2.x config without a key works."""
    grpc_port = free_port()
    with tempfile.TemporaryDirectory(prefix="rotor-py-grpc-api-nokey-") as tmp:
        gen = run_server(tmp, {"grpc_api": True, "grpc_api_port": grpc_port}, grpc_port, "")
        s = next(gen)
        try:
            with grpc.insecure_channel(s.grpc_addr) as chan:
                ok(pb.v1g.CentrifugoStub(chan).Info(pb.v1.InfoRequest(), timeout=TIMEOUT), result=True)
                v6 = pb.v6g.CentrifugoApiStub(chan)
                ok(v6.Publish(pb.v6.PublishRequest(channel="nokey", data=b"{}"), timeout=TIMEOUT), result=True)
                # A key sent anyway changes nothing.
                ok(v6.Info(pb.v6.InfoRequest(), metadata=(("authorization", "apikey whatever"),), timeout=TIMEOUT), result=True)
        finally:
            gen.close()
