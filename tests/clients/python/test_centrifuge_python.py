"""centrifuge-python 0.7.0 (client protocol v2) against the server under test: connect with a
token, subscribe to a public channel and to a `$` channel with a subscription-token getter
(claims sub, channel, info), receive publications published through cent, presence."""

from __future__ import annotations

import re

from cent import PublishRequest

from conftest import UUID_V4, SubRecorder, next_event, unique

CONN_INFO = {"device": "pytest"}


async def test_connect_with_token(connect):
    c = await connect("u-connect", CONN_INFO)
    assert re.match(UUID_V4, c.client_id), c.client_id
    assert c.client.state.value == "connected"
    assert c.events.errors == []


async def test_public_channel_receives_cent_publication(api, connect):
    c = await connect("u-public")
    ch = unique("public")
    rec = await c.subscribe(ch)
    assert rec.sub.state.value == "subscribed"
    data = {"msg": "to everyone", "n": 7}
    res = await api.publish(PublishRequest(channel=ch, data=data))
    ctx = await next_event(rec.publications, f"publication on {ch}")
    assert ctx.pub.data == data
    assert ctx.pub.offset == res.offset
    assert rec.errors == []


async def test_private_channel_with_token_getter(api, connect, server):
    c = await connect("u-private", CONN_INFO)
    ch = "$" + unique("secret")
    chan_info = {"role": "member", "since": 2024}
    asked = []

    async def get_token(channel: str) -> str:
        asked.append(channel)
        return server.token({"sub": "u-private", "channel": channel, "info": chan_info})

    rec = await c.subscribe(ch, get_token=get_token)
    assert asked == [ch]
    assert rec.errors == []

    data = {"secret": "psst"}
    res = await api.publish(PublishRequest(channel=ch, data=data))
    ctx = await next_event(rec.publications, f"publication on {ch}")
    assert ctx.pub.data == data
    assert ctx.pub.offset == res.offset

    presence = await rec.sub.presence()
    assert set(presence.clients.keys()) == {c.client_id}
    me = presence.clients[c.client_id]
    assert me.client == c.client_id
    assert me.user == "u-private"
    assert me.conn_info == CONN_INFO
    assert me.chan_info == chan_info

    stats = await rec.sub.presence_stats()
    assert (stats.num_clients, stats.num_users) == (1, 1)


async def test_private_channel_needs_a_token(connect):
    c = await connect("u-no-token")
    ch = "$" + unique("locked")
    rec = SubRecorder()
    sub = c.client.new_subscription(ch, events=rec)
    await sub.subscribe()
    ctx = await next_event(rec.unsubscribed, f"refusal of {ch} without a token")
    # §10.8 #6: `$` without token → 103, not temporary: the subscription ends unsubscribed.
    assert ctx.code == 103, ctx
    assert c.client.state.value == "connected"


async def test_two_clients_see_each_other_in_presence(connect, server):
    a = await connect("u-a", {"n": "a"})
    b = await connect("u-b", {"n": "b"})
    ch = "$" + unique("pair")

    def getter(user):
        async def get_token(channel: str) -> str:
            return server.token({"sub": user, "channel": channel, "info": {"who": user}})

        return get_token

    ra = await a.subscribe(ch, get_token=getter("u-a"))
    await b.subscribe(ch, get_token=getter("u-b"))
    presence = await ra.sub.presence()
    assert set(presence.clients.keys()) == {a.client_id, b.client_id}
    assert presence.clients[b.client_id].chan_info == {"who": "u-b"}
    assert presence.clients[b.client_id].conn_info == {"n": "b"}
