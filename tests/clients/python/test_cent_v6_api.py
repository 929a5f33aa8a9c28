"""cent 5.2.0 against the current HTTP server API's v6 additions (GRPC-API.md §3.2): batch,
refresh, publish with tags / idempotency_key / b64data / delta, broadcast, subscribe, unsubscribe
of one client, disconnect with a whitelist and a custom code, history with limit / since /
reverse, channels with a pattern, info. Both the async and the sync client; each assertion is on
the typed result cent returns, and the effect is checked on connected centrifuge-python clients.
"""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from cent import (
    BatchRequest,
    BatchResult,
    BroadcastRequest,
    BroadcastResult,
    CentApiResponseError,
    ChannelsRequest,
    ChannelsResult,
    Client,
    Disconnect,
    DisconnectRequest,
    DisconnectResult,
    HistoryRequest,
    HistoryResult,
    InfoRequest,
    InfoResult,
    PresenceStatsRequest,
    PresenceStatsResult,
    PublishRequest,
    PublishResult,
    RefreshRequest,
    RefreshResult,
    StreamPosition,
    SubscribeRequest,
    SubscribeResult,
    UnsubscribeRequest,
    UnsubscribeResult,
)

from conftest import next_event, unique


async def eventually(check, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_publish_with_tags_and_b64data(api, connect):
    c = await connect("u6-pub")
    ch = unique("tags")
    rec = await c.subscribe(ch)
    res = await api.publish(PublishRequest(channel=ch, data={"n": 1}, tags={"kind": "news"}))
    assert isinstance(res, PublishResult)
    assert res.offset == 1 and res.epoch != ""
    ctx = await next_event(rec.publications, "tagged publication")
    assert ctx.pub.data == {"n": 1}
    assert ctx.pub.tags == {"kind": "news"}

    b64 = base64.b64encode(b'{"bin":true}').decode()
    res2 = await api.publish(PublishRequest(channel=ch, data=None, b64data=b64))
    assert res2.offset == 2 and res2.epoch == res.epoch
    ctx = await next_event(rec.publications, "b64 publication")
    assert ctx.pub.data == {"bin": True}

    hist = await api.history(HistoryRequest(channel=ch, limit=-1))
    assert isinstance(hist, HistoryResult)
    assert [p.tags for p in hist.publications] == [{"kind": "news"}, None]
    assert [p.data for p in hist.publications] == [{"n": 1}, {"bin": True}]


async def test_publish_skip_history_and_delta(api, connect):
    c = await connect("u6-skip")
    ch = unique("skip")
    rec = await c.subscribe(ch)
    res = await api.publish(PublishRequest(channel=ch, data={"a": 1}, skip_history=True))
    assert res == PublishResult()
    assert (await next_event(rec.publications, "publication")).pub.data == {"a": 1}
    # delta (not a cent 5.2.0 field: passed through as an extra) — this subscriber did not
    # negotiate delta compression, so it gets the full data.
    res = await api.publish(PublishRequest(channel=ch, data={"a": 2}, delta=True))
    assert res.offset == 1
    assert (await next_event(rec.publications, "delta publication")).pub.data == {"a": 2}
    hist = await api.history(HistoryRequest(channel=ch, limit=-1))
    assert [p.data for p in hist.publications] == [{"a": 2}]


async def test_publish_idempotency_key(api, connect):
    c = await connect("u6-idem")
    ch = unique("idem")
    rec = await c.subscribe(ch)
    first = await api.publish(PublishRequest(channel=ch, data={"n": 1}, idempotency_key="k"))
    again = await api.publish(PublishRequest(channel=ch, data={"n": 1}, idempotency_key="k"))
    assert again == first
    assert (await next_event(rec.publications, "publication")).pub.data == {"n": 1}
    with pytest.raises(AssertionError):
        await next_event(rec.publications, "no second publication", timeout=0.5)
    hist = await api.history(HistoryRequest(channel=ch, limit=-1))
    assert len(hist.publications) == 1


async def test_broadcast_with_tags_and_idempotency(api, connect):
    c = await connect("u6-bcast")
    a, b = unique("ba"), unique("bb")
    ra = await c.subscribe(a)
    rb = await c.subscribe(b)
    req = BroadcastRequest(channels=[a, b, "nope:x"], data={"x": 1}, tags={"t": "v"}, idempotency_key="bk")
    res = await api.broadcast(req)
    assert isinstance(res, BroadcastResult)
    assert [r.result.offset if r.result else None for r in res.responses] == [1, 1, None]
    assert res.responses[2].error is not None and res.responses[2].error.code == 102
    for rec in (ra, rb):
        ctx = await next_event(rec.publications, "broadcast publication")
        assert ctx.pub.data == {"x": 1} and ctx.pub.tags == {"t": "v"}
    again = await api.broadcast(req)
    assert [r.result.offset if r.result else None for r in again.responses] == [1, 1, None]
    with pytest.raises(AssertionError):
        await next_event(ra.publications, "no repeat", timeout=0.5)


async def test_subscribe_and_unsubscribe_one_client(api, connect):
    user = unique("u6-sub")
    c1 = await connect(user)
    c2 = await connect(user)
    ch = unique("srv")
    res = await api.subscribe(SubscribeRequest(user=user, channel=ch))
    assert isinstance(res, SubscribeResult)

    async def clients_in(channel):
        r = await api.channels(ChannelsRequest(pattern=channel))
        info = r.channels.get(channel)
        return info.num_clients if info else 0

    await eventually(lambda: _eq(clients_in(ch), 2), "both connections subscribed")
    res = await api.unsubscribe(UnsubscribeRequest(user=user, channel=ch, client=c1.client_id))
    assert isinstance(res, UnsubscribeResult)
    await eventually(lambda: _eq(clients_in(ch), 1), "one connection left")
    stats = await api.presence_stats(PresenceStatsRequest(channel=ch))
    assert isinstance(stats, PresenceStatsResult)
    assert (stats.num_clients, stats.num_users) == (1, 1)
    assert c2.client_id != c1.client_id


async def _eq(awaitable, want):
    return (await awaitable) == want


async def test_disconnect_with_whitelist_and_custom_code(api, connect):
    user = unique("u6-dis")
    keep = await connect(user)
    gone = await connect(user)
    res = await api.disconnect(
        DisconnectRequest(
            user=user,
            whitelist=[keep.client_id],
            disconnect=Disconnect(code=4501, reason="custom reason"),
        )
    )
    assert isinstance(res, DisconnectResult)
    ctx = await next_event(gone.events.disconnected, "custom disconnect")
    assert (ctx.code, ctx.reason) == (4501, "custom reason")
    with pytest.raises(AssertionError):
        await next_event(keep.events.disconnected, "whitelisted stays", timeout=0.5)


async def test_refresh(api, connect):
    user = unique("u6-ref")
    c = await connect(user)
    res = await api.refresh(RefreshRequest(user=user, expire_at=int(time.time()) + 3600))
    assert isinstance(res, RefreshResult)
    res = await api.refresh(RefreshRequest(user=user, client=c.client_id, expired=True))
    assert isinstance(res, RefreshResult)

    async def closed_expired():
        return any(getattr(ctx, "code", None) == 3005 for ctx in c.events.connecting)

    await eventually(closed_expired, "connection closed as expired (3005)")


async def test_history_limit_since_reverse(api):
    ch = unique("hist")
    offsets = [(await api.publish(PublishRequest(channel=ch, data={"n": n}))).offset for n in range(5)]
    assert offsets == [1, 2, 3, 4, 5]
    top = await api.history(HistoryRequest(channel=ch))
    assert top.publications == [] and top.offset == 5 and top.epoch != ""
    two = await api.history(HistoryRequest(channel=ch, limit=2))
    assert [p.offset for p in two.publications] == [1, 2]
    rev = await api.history(HistoryRequest(channel=ch, limit=2, reverse=True))
    assert [p.offset for p in rev.publications] == [5, 4]
    since = await api.history(
        HistoryRequest(channel=ch, limit=-1, since=StreamPosition(offset=2, epoch=top.epoch))
    )
    assert [p.data["n"] for p in since.publications] == [2, 3, 4]
    with pytest.raises(CentApiResponseError) as e:
        await api.history(HistoryRequest(channel=ch, limit=-1, since=StreamPosition(offset=1, epoch="x")))
    assert e.value.code == 112


async def test_channels_pattern_and_info(api, connect):
    c = await connect("u6-chan")
    base = unique("pat")
    for suffix in ("one", "two"):
        await c.subscribe(f"{base}-{suffix}")
    await c.subscribe(unique("other"))
    res = await api.channels(ChannelsRequest(pattern=f"{base}-*"))
    assert isinstance(res, ChannelsResult)
    assert sorted(res.channels) == [f"{base}-one", f"{base}-two"]
    assert all(v.num_clients == 1 for v in res.channels.values())
    info = await api.info(InfoRequest())
    assert isinstance(info, InfoResult)
    node = info.nodes[0]
    assert node.uid and node.name and node.version
    assert node.num_clients >= 1 and node.num_subs >= 3 and node.num_channels >= 3


async def test_batch_async_sequential_and_parallel(api):
    ch = unique("batch")
    for parallel in (False, True):
        res = await api.batch(
            BatchRequest(
                requests=[
                    PublishRequest(channel=ch, data={"p": parallel}),
                    HistoryRequest(channel=ch, limit=-1),
                    InfoRequest(),
                    ChannelsRequest(pattern=ch),
                ],
                parallel=parallel,
            )
        )
        assert isinstance(res, BatchResult)
        pub, hist, info, chans = res.replies
        assert isinstance(pub, PublishResult) and pub.offset >= 1
        assert isinstance(hist, HistoryResult)
        assert isinstance(info, InfoResult) and len(info.nodes) == 1
        assert isinstance(chans, ChannelsResult) and chans.channels == {}
        if not parallel:
            # In order: the history already holds the publication before it.
            assert [p.offset for p in hist.publications] == [pub.offset]


def test_sync_client_batch_publish_history(server):
    client = Client(server.api_url, server.api_key, timeout=5.0)
    ch = unique("sync")
    res = client.publish(PublishRequest(channel=ch, data={"s": 1}, tags={"k": "v"}))
    assert isinstance(res, PublishResult) and res.offset == 1
    batch = client.batch(
        BatchRequest(
            requests=[
                PublishRequest(channel=ch, data={"s": 2}, idempotency_key="one"),
                PublishRequest(channel=ch, data={"s": 2}, idempotency_key="one"),
                HistoryRequest(channel=ch, limit=-1, reverse=True),
            ]
        )
    )
    first, second, hist = batch.replies
    assert first.offset == 2 and second == first
    assert [(p.data, p.tags) for p in hist.publications] == [({"s": 2}, None), ({"s": 1}, {"k": "v"})]
    assert client.refresh(RefreshRequest(user=unique("nobody"))) == RefreshResult()
    with pytest.raises(CentApiResponseError) as e:
        client.publish(PublishRequest(channel="nope:x", data={}))
    assert (e.value.code, e.value.message) == (102, "unknown channel")
