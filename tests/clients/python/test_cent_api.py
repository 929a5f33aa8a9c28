"""cent 5.2.0 (the current server API client, `POST /api/<method>` with X-API-Key) calling every
method of the Step 1 API against the server under test, with a connected centrifuge-python client
as the subject, and asserting cent's typed results (PROTOCOL.md §8.2, §10.8 #11–12)."""

from __future__ import annotations

import pytest

from cent import (
    AsyncClient,
    BroadcastRequest,
    BroadcastResult,
    CentUnauthorizedError,
    ChannelsRequest,
    ChannelsResult,
    ClientInfo,
    DisconnectRequest,
    DisconnectResult,
    HistoryRemoveRequest,
    HistoryRemoveResult,
    HistoryRequest,
    HistoryResult,
    InfoRequest,
    InfoResult,
    PresenceRequest,
    PresenceResult,
    PresenceStatsRequest,
    PresenceStatsResult,
    PublishRequest,
    PublishResult,
    UnsubscribeRequest,
    UnsubscribeResult,
)

from conftest import next_event, unique

CONN_INFO = {"name": "Py", "lang": "python"}


async def test_publish(api, connect):
    c = await connect("u-pub", CONN_INFO)
    ch = unique("news")
    rec = await c.subscribe(ch)
    data = {"text": "hello from cent", "n": 1, "list": [1, "two", None, True]}
    res = await api.publish(PublishRequest(channel=ch, data=data))
    assert isinstance(res, PublishResult)
    # History is on for every channel in this config: the result carries the position.
    assert res.offset > 0
    assert res.epoch != ""
    ctx = await next_event(rec.publications, "publication")
    assert ctx.pub.data == data
    assert ctx.pub.offset == res.offset
    assert ctx.pub.info is None


async def test_broadcast(api, connect):
    c = await connect("u-bcast")
    ch1, ch2 = unique("b1"), unique("b2")
    r1 = await c.subscribe(ch1)
    r2 = await c.subscribe(ch2)
    data = {"broadcast": True}
    res = await api.broadcast(BroadcastRequest(channels=[ch1, ch2], data=data))
    assert isinstance(res, BroadcastResult)
    assert len(res.responses) == 2
    for resp in res.responses:
        assert resp.error is None
        assert isinstance(resp.result, PublishResult)
        assert resp.result.offset > 0
    assert (await next_event(r1.publications, f"publication on {ch1}")).pub.data == data
    assert (await next_event(r2.publications, f"publication on {ch2}")).pub.data == data


async def test_presence(api, connect):
    c = await connect("u-presence", CONN_INFO)
    ch = unique("room")
    await c.subscribe(ch)
    res = await api.presence(PresenceRequest(channel=ch))
    assert isinstance(res, PresenceResult)
    assert list(res.presence.keys()) == [c.client_id]
    info = res.presence[c.client_id]
    assert isinstance(info, ClientInfo)
    assert info.client == c.client_id
    assert info.user == "u-presence"
    assert info.conn_info == CONN_INFO
    assert info.chan_info is None


async def test_presence_of_empty_channel(api, server):
    res = await api.presence(PresenceRequest(channel=unique("nobody")))
    assert isinstance(res, PresenceResult)
    assert res.presence == {}


async def test_presence_stats(api, connect):
    a = await connect("u-stats-a")
    b = await connect("u-stats-b")
    b2 = await connect("u-stats-b")
    ch = unique("stats")
    for c in (a, b, b2):
        await c.subscribe(ch)
    res = await api.presence_stats(PresenceStatsRequest(channel=ch))
    assert isinstance(res, PresenceStatsResult)
    assert res.num_clients == 3
    assert res.num_users == 2


async def test_history(api, connect):
    c = await connect("u-history")
    ch = unique("hist")
    await c.subscribe(ch)
    published = []
    for i in range(3):
        data = {"i": i}
        r = await api.publish(PublishRequest(channel=ch, data=data))
        published.append((r.offset, data))

    everything = await api.history(HistoryRequest(channel=ch, limit=-1))
    assert isinstance(everything, HistoryResult)
    assert [p.data for p in everything.publications] == [d for _, d in published]
    assert [p.offset for p in everything.publications] == [o for o, _ in published]
    offsets = [p.offset for p in everything.publications]
    assert offsets == list(range(offsets[0], offsets[0] + 3)), "consecutive offsets, oldest first"
    assert everything.offset == published[-1][0]
    assert everything.epoch != ""

    # No limit: only the stream top (§10.8 #8).
    top = await api.history(HistoryRequest(channel=ch))
    assert top.publications == []
    assert top.offset == published[-1][0]
    assert top.epoch == everything.epoch

    # since + limit: what came after the first one.
    since = await api.history(
        HistoryRequest(channel=ch, limit=-1, since={"offset": published[0][0], "epoch": everything.epoch})
    )
    assert [p.offset for p in since.publications] == [o for o, _ in published[1:]]


async def test_history_remove(api, connect):
    c = await connect("u-history-remove")
    ch = unique("hrm")
    await c.subscribe(ch)
    await api.publish(PublishRequest(channel=ch, data={"x": 1}))
    await api.publish(PublishRequest(channel=ch, data={"x": 2}))
    before = await api.history(HistoryRequest(channel=ch, limit=-1))
    assert len(before.publications) == 2
    res = await api.history_remove(HistoryRemoveRequest(channel=ch))
    assert isinstance(res, HistoryRemoveResult)
    after = await api.history(HistoryRequest(channel=ch, limit=-1))
    assert after.publications == []


async def test_channels(api, connect):
    a = await connect("u-channels-a")
    b = await connect("u-channels-b")
    ch = unique("active")
    await a.subscribe(ch)
    await b.subscribe(ch)
    res = await api.channels(ChannelsRequest())
    assert isinstance(res, ChannelsResult)
    assert ch in res.channels
    assert res.channels[ch].num_clients == 2


async def test_info(api, connect):
    c = await connect("u-info")
    await c.subscribe(unique("info"))
    res = await api.info(InfoRequest())
    assert isinstance(res, InfoResult)
    assert len(res.nodes) == 1
    node = res.nodes[0]
    assert node.uid != ""
    assert isinstance(node.name, str)
    assert node.num_clients >= 1
    assert node.num_users >= 1
    assert node.num_channels >= 1
    assert node.uptime >= 0


async def test_unsubscribe(api, connect):
    c = await connect("u-unsub")
    ch = unique("kick")
    rec = await c.subscribe(ch)
    res = await api.unsubscribe(UnsubscribeRequest(user="u-unsub", channel=ch))
    assert isinstance(res, UnsubscribeResult)
    ctx = await next_event(rec.unsubscribed, "unsubscribed by the server")
    assert ctx.code == 2000, f"server unsubscribe code, got {ctx}"
    presence = await api.presence(PresenceRequest(channel=ch))
    assert presence.presence == {}
    assert c.client.state.value == "connected", "only the subscription ended"


async def test_disconnect(api, connect):
    c = await connect("u-disc")
    other = await connect("u-stays")
    res = await api.disconnect(DisconnectRequest(user="u-disc"))
    assert isinstance(res, DisconnectResult)
    ctx = await next_event(c.events.disconnected, "disconnected by the server")
    # The API's default disconnect is "force disconnect", terminal for a v2 client (§10.5).
    assert ctx.code == 3503, f"got {ctx}"
    assert c.client.state.value == "disconnected"
    assert other.client.state.value == "connected"


async def test_wrong_api_key_is_unauthorized(server):
    async with AsyncClient(server.api_url, "not-the-key", timeout=5.0) as bad:
        with pytest.raises(CentUnauthorizedError):
            await bad.info(InfoRequest())
        with pytest.raises(CentUnauthorizedError):
            await bad.publish(PublishRequest(channel="news", data={"x": 1}))

